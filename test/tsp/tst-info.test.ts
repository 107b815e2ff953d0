// parseTstInfo reads the TSTInfo with the strict DER reader (no schema library). These tests pin its
// strictness: every field checked, DER required (RFC 3161 2.4.2), and, on mutated input, nothing
// accepted that the asn1-tsp schema (what it replaced) would refuse, and nothing thrown but
// Asn1FormatError.

import { AsnParser } from '@peculiar/asn1-schema';
import { TSTInfo } from '@peculiar/asn1-tsp';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Asn1FormatError, generalizedTimeMillis } from '../../src/core/cms/asn1.ts';
import {
  explicit,
  implicitPrimitive,
  integer,
  NULL,
  octetString,
  oid,
  printableString,
  sequence,
  set,
  TRUE,
  tlv,
} from '../../src/core/der.ts';
import { OID } from '../../src/core/oids.ts';
import { parseTstInfo } from '../../src/core/tsp/index.ts';

const SCALE = Number(process.env.JPKI_FUZZ_SCALE ?? 1);
const genTime = new Date('2026-11-25T10:20:30.125Z');
const digest = Buffer.alloc(32, 0xab);
const imprint = sequence(sequence(oid(OID.sha256), NULL), octetString(digest));
const tsaName = explicit(
  0,
  explicit(
    4,
    sequence(
      set(sequence(oid('2.5.4.6'), printableString('JP'))),
      set(sequence(oid('2.5.4.3'), printableString('TSA'))),
    ),
  ),
);
const extension = (critical: boolean) =>
  tlv(0xa1, sequence(oid('1.2.3.4'), ...(critical ? [TRUE] : []), octetString(Buffer.from([5, 0]))));

function tstInfo(
  opts: { version?: Buffer; serial?: Buffer; tsa?: Buffer; extensions?: Buffer; accuracy?: Buffer } = {},
): Buffer {
  return sequence(
    opts.version ?? integer(1),
    oid('1.2.392.200149.8.5.99.1'),
    imprint,
    opts.serial ?? integer(0x1234567890n),
    generalizedTimeMillis(genTime),
    opts.accuracy ?? sequence(integer(1), implicitPrimitive(0, Buffer.from([0x01, 0xf4]))),
    integer(0x0102030405n), // nonce
    ...(opts.tsa ? [opts.tsa] : []),
    ...(opts.extensions ? [opts.extensions] : []),
  );
}

const schemaAccepts = (der: Buffer): boolean => {
  try {
    AsnParser.parse(der, TSTInfo);
    return true;
  } catch {
    return false;
  }
};

describe('parseTstInfo', () => {
  it('reads every field of a well-formed TSTInfo', () => {
    const t = parseTstInfo(tstInfo({ tsa: tsaName, extensions: extension(false) }));
    expect(t.policy).toBe('1.2.392.200149.8.5.99.1');
    expect(t.imprint).toEqual({ algorithm: 'sha256', digest });
    expect(t.serial.toString('hex')).toBe('1234567890');
    expect(t.genTime.toISOString()).toBe(genTime.toISOString());
    expect(t.accuracy).toEqual({ seconds: 1, millis: 500 });
    expect(t.nonce?.toString('hex')).toBe('0102030405');
    expect(t.ordering).toBe(false);
    expect(t.tsaName?.[0]).toBe(0xa4);
  });

  it('refuses what RFC 3161 does not allow, each with its reason', () => {
    const refused: [Buffer, RegExp][] = [
      [tstInfo({ version: integer(2) }), /version/],
      [tstInfo({ extensions: extension(true) }), /critical TSTInfo extension 1\.2\.3\.4/],
      [tstInfo({ serial: tlv(0x02, Buffer.from([0x80, 1])) }), /negative/],
      [tstInfo({ serial: tlv(0x02, Buffer.from([0, 1])) }), /not DER|non-minimal/],
      // tsa [0] holding something that is not a GeneralName
      [tstInfo({ tsa: explicit(0, sequence(oid('1.2.3'))) }), /not a GeneralName/],
      [tstInfo({ tsa: explicit(0, explicit(4, set())) }), /directoryName/],
      [tstInfo({ tsa: explicit(0, tlv(0x82, Buffer.from('a')), tlv(0x82, Buffer.from('b'))) }), /tsa/],
      [tstInfo({ extensions: tlv(0xa1) }), /empty TSTInfo extensions/],
      [tstInfo({ extensions: tlv(0xa1, sequence(oid('1.2.3'), NULL)) }), /malformed TSTInfo extension/],
    ];
    for (const [der, why] of refused) {
      expect(() => parseTstInfo(der), why.source).toThrow(Asn1FormatError);
      expect(() => parseTstInfo(der)).toThrow(why);
    }
  });

  it('requires DER: a long-form length where the short one fits is refused', () => {
    const good = tstInfo();
    // re-encode the outer SEQUENCE length in long form (0x81 nn)
    const body = good.subarray(2);
    expect(good[1]! < 0x80).toBe(true);
    const longForm = Buffer.concat([Buffer.from([0x30, 0x81, body.length]), body]);
    expect(() => parseTstInfo(longForm)).toThrow(/not DER/);
    // and an indefinite length (BER) likewise
    const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), body, Buffer.from([0, 0])]);
    expect(() => parseTstInfo(indefinite)).toThrow(/not DER/);
  });

  it('on mutated input: only Asn1FormatError, and nothing the asn1-tsp schema refuses', () => {
    const samples = [tstInfo(), tstInfo({ tsa: tsaName, extensions: extension(false) })];
    const mutation = fc.record({
      at: fc.nat(),
      op: fc.constantFrom('flip', 'set', 'delete', 'insert', 'truncate'),
      value: fc.integer({ min: 0, max: 255 }),
    });
    let accepted = 0;
    fc.assert(
      fc.property(fc.constantFrom(0, 1), fc.array(mutation, { minLength: 1, maxLength: 4 }), (which, ms) => {
        let b = Buffer.from(samples[which]!);
        for (const m of ms) {
          if (b.length === 0) break;
          const at = m.at % b.length;
          if (m.op === 'flip') b[at]! ^= 1 << (m.value % 8);
          else if (m.op === 'set') b[at] = m.value;
          else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          else if (m.op === 'insert')
            b = Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
          else b = b.subarray(0, at);
        }
        let ok = false;
        try {
          parseTstInfo(b);
          ok = true;
        } catch (e) {
          if (!(e instanceof Asn1FormatError)) throw e;
        }
        if (ok) {
          accepted++;
          expect(schemaAccepts(b)).toBe(true);
        }
      }),
      { numRuns: 3000 * SCALE },
    );
    // the property must have been exercised on accepted input too (mutations inside values)
    expect(accepted).toBeGreaterThan(50);
  });
});
