import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvParser, type CsvRecord, parseCsvStream } from '../../src/register/csv.ts';

function parseAll(text: string, chunk = text.length || 1): CsvRecord[] {
  const p = new CsvParser();
  const out: CsvRecord[] = [];
  for (let i = 0; i < text.length; i += chunk) out.push(...p.push(text.slice(i, i + chunk)));
  out.push(...p.end());
  return out;
}

describe('CSV parser (RFC 4180)', () => {
  it('parses quoted fields, doubled quotes, embedded commas and line breaks', () => {
    const text = 'a,b,c\r\n1,"x, y","say ""hi"""\r\n2,"line1\nline2",\r\n3,,last';
    const recs = parseAll(text);
    expect(recs.map((r) => r.fields)).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', 'say "hi"'],
      ['2', 'line1\nline2', ''],
      ['3', '', 'last'],
    ]);
    expect(recs.map((r) => r.line)).toEqual([1, 2, 3, 5]);
    expect(recs.every((r) => r.error === undefined)).toBe(true);
  });

  it('gives the same records whatever the chunk boundaries (CR LF and "" split too)', () => {
    const text = '\ufeffid,name\r\n1,"山田 ""太郎"""\r\n2,"改\r\n行"\r3,plain\n\n4,"end"';
    const whole = parseAll(text);
    for (const chunk of [1, 2, 3, 5, 7]) expect(parseAll(text, chunk)).toEqual(whole);
    expect(whole[0]!.fields).toEqual(['id', 'name']); // BOM dropped
    expect(whole.map((r) => r.fields[0])).toEqual(['id', '1', '2', '3', '4']); // blank line skipped
  });

  it('flags malformed records and goes on', () => {
    const recs = parseAll('a,b\n1,x"y\n2,"ok"z\n3,fine\n4,"never closed\n');
    expect(recs[1]!.error).toMatch(/double quote inside an unquoted field/);
    expect(recs[2]!.error).toMatch(/after the closing quote/);
    expect(recs[3]).toEqual({ fields: ['3', 'fine'], line: 4 });
    expect(recs[4]!.error).toMatch(/not closed/);
  });

  it('caps field length and field count', () => {
    const p = new CsvParser({ maxFieldLength: 10, maxFields: 3 });
    const recs = [...p.push(`${'x'.repeat(11)},b\n1,2,3,4\nok,1\n`), ...p.end()];
    expect(recs[0]!.error).toMatch(/longer than 10/);
    expect(recs[1]!.error).toMatch(/more than 3 fields/);
    expect(recs[2]).toEqual({ fields: ['ok', '1'], line: 3 });
  });

  it('decodes UTF-8 split across byte chunks', async () => {
    const bytes = Buffer.from('name\n山田\n', 'utf8');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const out: string[][] = [];
    for await (const batch of parseCsvStream(Readable.from(chunks))) out.push(...batch.map((r) => r.fields));
    expect(out).toEqual([['name'], ['山田']]);
  });

  it('round-trips arbitrary fields (property)', () => {
    const field = fc.string({ unit: fc.constantFrom('a', ',', '"', '\n', '\r', ' ', '名') });
    fc.assert(
      fc.property(
        fc.array(fc.array(field, { minLength: 2, maxLength: 4 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 9 }),
        (rows, chunk) => {
          const text = rows.map((r) => r.map((f) => `"${f.replaceAll('"', '""')}"`).join(',')).join('\r\n');
          expect(parseAll(text, chunk).map((r) => r.fields)).toEqual(rows);
        },
      ),
    );
  });
});
