import { describe, expect, it } from 'vitest';
import {
  Asn1FormatError,
  BerReader,
  checkDer,
  generalizedTimeMillis,
  readTime,
  readWhole,
  setOf,
} from '../../src/core/cms/asn1.ts';
import { tlv } from '../../src/core/der.ts';

const time = (tag: number, s: string) => {
  const { reader, root } = readWhole(tlv(tag, Buffer.from(s, 'latin1')), 'time');
  return readTime(reader, root);
};

describe('asn1 helpers', () => {
  it('reads UTCTime and GeneralizedTime', () => {
    expect(time(0x17, '491231235959Z')).toEqual(new Date('2049-12-31T23:59:59Z'));
    expect(time(0x17, '500101000000Z')).toEqual(new Date('1950-01-01T00:00:00Z'));
    expect(time(0x18, '20260506070809.12Z')).toEqual(new Date('2026-05-06T07:08:09.120Z'));
    expect(time(0x18, '20260506070809.1239Z')).toEqual(new Date('2026-05-06T07:08:09.123Z'));
    expect(time(0x18, '00500101000000Z').getUTCFullYear()).toBe(50);
    for (const [tag, s] of [
      [0x17, '4912312359Z'], // no seconds
      [0x17, '491231235959+0900'],
      [0x18, '20260230000000Z'], // 30 February
      [0x18, '20261301000000Z'],
      [0x18, '20260101240000Z'],
      [0x18, '20260101000000'],
      [0x18, '20260101000000.Z'],
      [0x04, '20260101000000Z'],
    ] as const)
      expect(() => time(tag, s), s).toThrow(Asn1FormatError);
  });

  it('writes GeneralizedTime with milliseconds only when needed, no trailing zeros', () => {
    expect(generalizedTimeMillis(new Date('2026-05-06T07:08:09Z')).subarray(2).toString()).toBe(
      '20260506070809Z',
    );
    expect(generalizedTimeMillis(new Date('2026-05-06T07:08:09.120Z')).subarray(2).toString()).toBe(
      '20260506070809.12Z',
    );
    expect(generalizedTimeMillis(new Date('2026-05-06T07:08:09.005Z')).subarray(2).toString()).toBe(
      '20260506070809.005Z',
    );
  });

  it('sorts SET OF as DER requires', () => {
    const a = Buffer.from([0x30, 0x01, 0x02]);
    const b = Buffer.from([0x30, 0x01]);
    const c = Buffer.from([0x06, 0x01, 0xff]);
    expect(setOf([a, b, c])).toEqual(
      Buffer.from([0x31, 0x08, 0x06, 0x01, 0xff, 0x30, 0x01, 0x30, 0x01, 0x02]),
    );
  });

  it('reads BER: indefinite lengths and constructed OCTET STRINGs', () => {
    // [0] indefinite { OCTET STRING constructed indefinite { "ab", "cd" } }
    const ber = Buffer.from('a0802480040261620402636400000000', 'hex');
    const { reader, root } = readWhole(ber, 'test');
    expect(root.indefinite).toBe(true);
    const [os] = reader.children(root);
    expect(reader.octets(os!).toString()).toBe('abcd');
    expect(() => checkDer(reader, root)).toThrow(/indefinite/);
    // a primitive with the indefinite form, a missing EOC, a segment of the wrong type
    for (const hex of ['0480', '30800500', '2480020100000000'])
      expect(() => {
        const r = new BerReader(Buffer.from(hex, 'hex'));
        const n = r.read(0);
        r.octets(n);
      }, hex).toThrow(Asn1FormatError);
  });

  it('checkDer refuses non-minimal lengths and integers, constructed strings, bad BOOLEAN', () => {
    for (const hex of ['3081020500', '0202007f', '0202ff80', '24020400', '010101'])
      expect(() => {
        const { reader, root } = readWhole(Buffer.from(hex, 'hex'), 'test');
        checkDer(reader, root);
      }, hex).toThrow(Asn1FormatError);
    const { reader, root } = readWhole(Buffer.from('3007020200ff0101ff', 'hex'), 'ok');
    expect(() => checkDer(reader, root)).not.toThrow();
  });
});
