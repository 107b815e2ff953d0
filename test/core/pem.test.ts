import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePem, decodePemAll, derFromPemOrDer, encodePem, PemError } from '../../src/core/pem.ts';

const DER = Buffer.from('3003020101', 'hex');
const block = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;

function pemError(f: () => unknown): PemError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PemError);
    return e as PemError;
  }
  throw new Error('expected a PemError');
}

describe('encodePem', () => {
  it('wraps base64 at 64 characters with the label on both ends', () => {
    const der = Buffer.alloc(100, 0xab);
    const text = encodePem('CERTIFICATE', der);
    const lines = text.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines[1]).toHaveLength(64);
    expect(lines[2]).toHaveLength(64);
    expect(lines[3]).toHaveLength(136 - 128);
    expect(lines[4]).toBe('-----END CERTIFICATE-----');
    expect(lines[5]).toBe('');
    expect(text.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
  });

  it('round-trips through decodePem for any non-empty DER (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), (bytes) => {
        const text = encodePem('X509 CRL', bytes);
        expect(decodePem(text, ['X509 CRL'])).toEqual(Buffer.from(bytes));
        expect(text.split('\n').every((l) => l.length <= 64)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('decodePem', () => {
  it('decodes a block, with CRLF, with text around it, with the body in odd-length lines', () => {
    const b64 = DER.toString('base64');
    expect(decodePem(block('CERTIFICATE', b64), ['CERTIFICATE'])).toEqual(DER);
    expect(decodePem(block('CERTIFICATE', b64).replaceAll('\n', '\r\n'), ['CERTIFICATE'])).toEqual(DER);
    expect(decodePem(`Subject: CN=x\nnotes\n${block('CERTIFICATE', b64)}trailer\n`, ['CERTIFICATE'])).toEqual(
      DER,
    );
    const long = Buffer.alloc(90, 7);
    const body = long
      .toString('base64')
      .match(/.{1,10}/g)!
      .join('\n  ');
    expect(decodePem(block('CERTIFICATE', body), ['CERTIFICATE'])).toEqual(long);
  });

  it('refuses damaged base64 instead of skipping the bad characters as Buffer.from does', () => {
    const good = Buffer.alloc(30, 0x5a).toString('base64'); // 40 characters, no padding
    for (const body of [
      `${good.slice(0, 10)}!${good.slice(11)}`, // a character outside the alphabet
      `${good.slice(0, 10)}*${good.slice(10, 39)}`, // same length, one bad character
      good.slice(0, 39), // not a multiple of 4
      `${good.slice(0, 36)}A===`, // three padding characters
      `${good.slice(0, 20)}==${good.slice(22)}`, // padding in the middle
      `${good}-_AA`, // base64url characters
      '====',
    ]) {
      const e = pemError(() => decodePem(block('CERTIFICATE', body), ['CERTIFICATE']));
      expect(e.message, body).toBe('the CERTIFICATE PEM block has damaged base64');
    }
  });

  it('refuses an empty block', () => {
    expect(pemError(() => decodePem(block('CERTIFICATE', ''), ['CERTIFICATE'])).message).toBe(
      'the CERTIFICATE PEM block is empty',
    );
    expect(
      pemError(() => decodePem('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', ['CERTIFICATE']))
        .message,
    ).toMatch(/empty/);
  });

  it('refuses text without a block of a wanted label, naming the first label', () => {
    const b64 = DER.toString('base64');
    expect(pemError(() => decodePem(block('CERTIFICATE', b64), ['CERTIFICATE REQUEST'])).message).toBe(
      'no CERTIFICATE REQUEST PEM block found',
    );
    // labels are exact: case, spacing, and BEGIN/END must agree
    for (const text of [
      block('certificate', b64),
      block('CERTIFICATE ', b64),
      `-----BEGIN CERTIFICATE-----\n${b64}\n-----END X509 CRL-----\n`,
      `-----BEGIN CERTIFICATE-----\n${b64}\n`, // no END line
      `-----BEGIN CERTIFICATE----- ${b64} -----END CERTIFICATE-----`, // no line break after BEGIN
      '',
      DER.toString('latin1'),
    ]) {
      expect(pemError(() => decodePem(text, ['CERTIFICATE'])).message, JSON.stringify(text)).toBe(
        'no CERTIFICATE PEM block found',
      );
    }
  });

  it('with several blocks: the first with a wanted label, skipping others (even damaged ones)', () => {
    const a = Buffer.from('3003020101', 'hex');
    const b = Buffer.from('3003020102', 'hex');
    const text = [
      block('PRIVATE KEY', '!!not base64!!'),
      block('CERTIFICATE', a.toString('base64')),
      block('CERTIFICATE', b.toString('base64')),
    ].join('');
    expect(decodePem(text, ['CERTIFICATE'])).toEqual(a);
    expect(decodePem(text, ['X509 CRL', 'CERTIFICATE'])).toEqual(a);
    expect(decodePemAll(text, 'CERTIFICATE')).toEqual([a, b]);
    expect(decodePemAll(text, 'X509 CRL')).toEqual([]);
    // a damaged first block of the wanted label is an error, not a reason to take the second
    const damagedFirst = block('CERTIFICATE', 'AB!C') + block('CERTIFICATE', b.toString('base64'));
    expect(() => decodePem(damagedFirst, ['CERTIFICATE'])).toThrow(PemError);
    expect(() => decodePemAll(damagedFirst, 'CERTIFICATE')).toThrow(PemError);
  });

  it('throws only PemError on arbitrary text and on mutated PEM (property)', () => {
    const valid = encodePem('CERTIFICATE', Buffer.alloc(200, 0x42));
    const textLike = fc.string({
      unit: fc.constantFrom(...'-BEGINDCRTAF =\n\r/+ab01'.split('')),
      maxLength: 200,
    });
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), textLike),
        fc.nat(),
        fc.nat({ max: 5 }),
        (junk, at, del) => {
          for (const text of [
            junk,
            valid.slice(0, at % valid.length) + junk + valid.slice((at % valid.length) + del),
          ]) {
            try {
              const der = decodePem(text, ['CERTIFICATE']);
              expect(der.length).toBeGreaterThan(0);
            } catch (e) {
              expect(e).toBeInstanceOf(PemError);
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('derFromPemOrDer', () => {
  it('takes PEM by its armour and anything else as DER', () => {
    const pem = encodePem('X509 CRL', DER);
    expect(derFromPemOrDer(Buffer.from(pem), 'X509 CRL')).toEqual(DER);
    expect(derFromPemOrDer(DER, 'X509 CRL')).toEqual(DER);
    expect(() => derFromPemOrDer(Buffer.from(pem), 'CERTIFICATE')).toThrow(PemError);
  });
});
