import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bitString,
  content,
  DerError,
  encodeLength,
  enumerated,
  explicit,
  generalizedTime,
  header,
  integer,
  integerContent,
  NULL,
  octetString,
  oid,
  printableString,
  readChildren,
  readTlv,
  sequence,
  slice,
  type Tlv,
  tlv,
  unsignedInteger,
  utcTime,
  utf8String,
  x509Time,
} from '../../src/core/der.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';

const hex = (b: Buffer) => b.toString('hex');

/** Runs f and returns what it threw (failing if it threw nothing or something other than DerError). */
function derError(f: () => unknown): DerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DerError);
    return e as DerError;
  }
  throw new Error('expected a DerError');
}

const tmp = tempDir('jpki-der-');
afterAll(() => tmp.cleanup());

/** DER of `asn1=SEQUENCE:seq` with the given fields, encoded by `openssl asn1parse -genconf`. */
function opensslSequence(fields: readonly string[]): Buffer {
  const conf = tmp.path(`gen-${fields.length}-${Math.random().toString(36).slice(2)}.cnf`);
  writeFileSync(conf, `asn1=SEQUENCE:seq\n[seq]\n${fields.map((f, i) => `f${i}=${f}`).join('\n')}\n`);
  const out = `${conf}.der`;
  const r = openssl(['asn1parse', '-genconf', conf, '-noout', '-out', out]);
  if (r.status !== 0) throw new Error(`openssl asn1parse failed:\n${r.output}`);
  return readFileSync(out);
}

describe('encoders: known encodings', () => {
  it('encodeLength: short form below 128, minimal long form above', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [1, '01'],
      [127, '7f'],
      [128, '8180'],
      [255, '81ff'],
      [256, '820100'],
      [65535, '82ffff'],
      [65536, '83010000'],
      [16777215, '83ffffff'],
      [16777216, '8401000000'],
      [2 ** 32 - 1, '84ffffffff'],
    ];
    for (const [n, expected] of cases) expect(hex(encodeLength(n)), String(n)).toBe(expected);
    expect(hex(header(0x30, 300))).toBe('3082012c');
  });

  it('oid', () => {
    expect(hex(oid('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(oid('2.5.29.17'))).toBe('0603551d11');
    expect(hex(oid('1.3.6.1.5.5.7.48.1.2'))).toBe('06092b0601050507300102');
    expect(hex(oid('1.2.840.10045.3.1.7'))).toBe('06082a8648ce3d030107');
    expect(hex(oid('2.999.3'))).toBe('0603883703'); // X.690 8.19.5 example
    expect(hex(oid('0.0'))).toBe('060100');
    // the JPKI arc: 392 = 0x83 0x08, 200149 = 0x8c 0x9b 0x55
    expect(hex(oid('1.2.392.200149.8.5.5.1'))).toBe('060a2a83088c9b5508050501');
    // cached values are not corrupted by callers
    expect(oid('2.5.29.17')).toBe(oid('2.5.29.17'));
    for (const bad of ['', '1', 'a.b', '1..2', '1.2.', '.1.2', '1.-2', '1.2 .3'])
      expect(derError(() => oid(bad)).message, bad).toMatch(/bad OID/);
  });

  it('integer and unsignedInteger: minimal, positive, 0x00 before a set top bit', () => {
    const cases: [number | bigint, string][] = [
      [0, '020100'],
      [1, '020101'],
      [127, '02017f'],
      [128, '02020080'],
      [255, '020200ff'],
      [256, '02020100'],
      [32767, '02027fff'],
      [32768, '0203008000'],
      [2 ** 31, '02050080000000'],
      [2n ** 64n, '0209010000000000000000'],
      [2n ** 127n, `02110080${'00'.repeat(15)}`],
    ];
    for (const [n, expected] of cases) expect(hex(integer(n)), String(n)).toBe(expected);
    expect(derError(() => integer(-1)).message).toMatch(/negative/);
    expect(hex(unsignedInteger(Buffer.from('000080', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from('0000', 'hex')))).toBe('020100');
    expect(hex(unsignedInteger(Buffer.alloc(0)))).toBe('020100');
    expect(hex(unsignedInteger(Buffer.from('7f', 'hex')))).toBe('02017f');
    expect(hex(integerContent(Buffer.from('00ff', 'hex')))).toBe('00ff');
    expect(hex(enumerated(1))).toBe('0a0101');
  });

  it('x509Time: UTCTime from 1950 through 2049, GeneralizedTime outside, whole seconds', () => {
    const ascii = (b: Buffer) => ({ tag: b[0], len: b[1], text: b.subarray(2).toString('ascii') });
    expect(ascii(x509Time(new Date('2049-12-31T23:59:59.999Z')))).toEqual({
      tag: 0x17,
      len: 13,
      text: '491231235959Z',
    });
    expect(hex(x509Time(new Date('2049-12-31T23:59:59Z')))).toBe('170d3439313233313233353935395a');
    expect(hex(x509Time(new Date('2050-01-01T00:00:00Z')))).toBe('180f32303530303130313030303030305a');
    expect(ascii(x509Time(new Date('1950-01-01T00:00:00Z'))).text).toBe('500101000000Z');
    expect(ascii(x509Time(new Date('1949-12-31T23:59:59Z')))).toEqual({
      tag: 0x18,
      len: 15,
      text: '19491231235959Z',
    });
    expect(ascii(x509Time(new Date('2024-02-29T03:04:05.678Z'))).text).toBe('240229030405Z');
    expect(ascii(x509Time(new Date('9999-12-31T23:59:59Z'))).text).toBe('99991231235959Z');
    expect(ascii(utcTime(new Date('2000-01-01T00:00:00Z'))).text).toBe('000101000000Z');
    expect(ascii(generalizedTime(new Date('2000-01-01T00:00:00Z'))).text).toBe('20000101000000Z');
  });

  it('strings and constructed values', () => {
    expect(hex(NULL)).toBe('0500');
    expect(hex(octetString(Buffer.from('0102', 'hex')))).toBe('04020102');
    expect(hex(bitString(Buffer.from('ff', 'hex')))).toBe('030200ff');
    expect(hex(bitString(Buffer.from('80', 'hex'), 7))).toBe('03020780');
    expect(hex(utf8String('日本'))).toBe('0c06e697a5e69cac');
    expect(hex(printableString('JP'))).toBe('13024a50');
    expect(hex(sequence())).toBe('3000');
    expect(hex(explicit(0, integer(2)))).toBe('a003020102');
    expect(hex(tlv(0x30, Buffer.alloc(200)).subarray(0, 3))).toBe('3081c8');
  });
});

describe('encoders agree with openssl (properties)', () => {
  it('oid on random OIDs', () => {
    const arcs = fc.oneof(
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 0, max: 2 ** 32 }),
      fc.bigInt({ min: 0n, max: 2n ** 80n }),
    );
    const oids = fc.sample(
      fc
        .tuple(
          fc.integer({ min: 0, max: 2 }),
          fc.integer({ min: 0, max: 39 }),
          fc.array(arcs, { maxLength: 8 }),
        )
        .map(([a, b, rest]) => [a, b, ...rest].join('.')),
      { numRuns: 200, seed: 20261125 },
    );
    const expected = opensslSequence(oids.map((o) => `OID:${o}`));
    expect(hex(sequence(...oids.map((o) => oid(o))))).toBe(hex(expected));
  });

  it('integer on random non-negative integers', () => {
    const values = fc.sample(
      fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.bigInt({ min: 0n, max: 2n ** 160n })),
      { numRuns: 200, seed: 20261125 },
    );
    const expected = opensslSequence(values.map((v) => `INTEGER:${v}`));
    expect(hex(sequence(...values.map((v) => integer(v))))).toBe(hex(expected));
  });
});

describe('readTlv and readChildren', () => {
  it('refuses truncation, indefinite and oversized lengths, multi-byte tags', () => {
    const cases: [string, RegExp][] = [
      ['', /truncated/],
      ['30', /truncated/],
      ['3001', /truncated/],
      ['300501020304', /truncated/],
      ['308201', /truncated/],
      ['3082010000', /truncated/],
      ['3080', /indefinite length/],
      ['30850100000000', /too large/],
      ['1f0100', /multi-byte tags/],
      ['3f0100', /multi-byte tags/],
    ];
    for (const [input, message] of cases)
      expect(derError(() => readTlv(Buffer.from(input, 'hex'))).message, input).toMatch(message);
    // an offset at or past the end
    expect(derError(() => readTlv(Buffer.from('3000', 'hex'), 2)).message).toMatch(/truncated/);
    expect(derError(() => readTlv(Buffer.from('3000', 'hex'), 1)).message).toMatch(/truncated/);
  });

  it('reads nested values and their children', () => {
    const buf = sequence(integer(1), sequence(octetString(Buffer.from('ab', 'hex'))), NULL);
    const root = readTlv(buf);
    expect(root).toEqual({ tag: 0x30, start: 0, contentStart: 2, end: buf.length });
    const kids = readChildren(buf, root);
    expect(kids.map((k) => k.tag)).toEqual([0x02, 0x30, 0x05]);
    expect(hex(slice(buf, kids[0]!))).toBe('020101');
    expect(hex(content(buf, readChildren(buf, kids[1]!)[0]!))).toBe('ab');
    expect(readChildren(buf, kids[2]!)).toEqual([]);
    // a child that runs past its parent's end
    // a child whose length runs past the buffer, or past its parent's end
    const short = Buffer.from('3003020201', 'hex');
    expect(derError(() => readChildren(short, readTlv(short))).message).toMatch(/truncated/);
    const overrun = Buffer.from('3003020201ff', 'hex');
    expect(derError(() => readChildren(overrun, readTlv(overrun))).message).toMatch(/overruns/);
  });

  it('round-trips tlv() for any content length, through 1-, 2- and 3-byte lengths (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xff }).filter((t) => (t & 0x1f) !== 0x1f),
        fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 60000, max: 70000 })),
        fc.integer({ min: 0, max: 255 }),
        (tag, length, fill) => {
          const body = Buffer.alloc(length, fill);
          const encoded = tlv(tag, body);
          const t = readTlv(encoded);
          expect(t.tag).toBe(tag);
          expect(t.end).toBe(encoded.length);
          expect(t.contentStart).toBe(1 + encodeLength(length).length);
          expect(content(encoded, t).equals(body)).toBe(true);
          // minimal lengths: a long form never starts with 0x00 and is never used below 128
          const len = encodeLength(length);
          if (length < 128) expect(len).toHaveLength(1);
          else expect(len[1]).not.toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  /** Walks every constructed value under t; returns how many TLVs it saw. */
  function walk(buf: Uint8Array, t: Tlv, depth = 0): number {
    expect(t.start).toBeLessThan(t.contentStart);
    expect(t.contentStart).toBeLessThanOrEqual(t.end);
    expect(t.end).toBeLessThanOrEqual(buf.length);
    if (!(t.tag & 0x20) || depth > 50) return 1;
    let n = 1;
    let pos = t.contentStart;
    for (const child of readChildren(buf, t)) {
      expect(child.start).toBe(pos);
      pos = child.end;
      n += walk(buf, child, depth + 1);
    }
    expect(pos).toBe(t.end);
    return n;
  }

  it('on random bytes: a consistent result or a DerError, nothing else (property)', () => {
    const derLike = fc
      .array(
        fc.oneof(
          fc.uint8Array({ maxLength: 8 }),
          fc.constantFrom(
            Buffer.from([0x30]),
            Buffer.from([0xa0]),
            Buffer.from([0x81]),
            Buffer.from([0x82, 0x00]),
            Buffer.from([0x84, 0xff]),
            Buffer.from([0x80]),
          ),
        ),
        { maxLength: 40 },
      )
      .map((parts) => Buffer.concat(parts));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), derLike), fc.nat(), (bytes, at) => {
        const offset = bytes.length ? at % (bytes.length + 1) : 0;
        try {
          walk(bytes, readTlv(bytes, offset));
        } catch (e) {
          if (!(e instanceof DerError)) throw e;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
