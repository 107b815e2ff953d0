// Random and mutated DER never crashes the core: parsing either succeeds or throws PathParseError,
// and validatePath always returns a report.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PathParseError,
  PkiCache,
  parseCertificate,
  parseCrl,
  parseOcspResponse,
  validatePath,
} from '../../src/core/path/index.ts';

const NIST = join(import.meta.dirname, '../fixtures/nist-x509');
const root = readFileSync(join(NIST, 'root.crt'));
const rootCrl = readFileSync(join(NIST, 'root.crl'));
const ee = readFileSync(join(NIST, 'test04/end.crt'));
const int1 = readFileSync(join(NIST, 'test04/int1.crt'));
const int2 = readFileSync(join(NIST, 'test04/int2.crt'));
const crl1 = readFileSync(join(NIST, 'test04/int1.crl'));

/** A copy of `der` with some bytes changed, a piece cut out or inserted, or truncated. */
const mutated = (der: Buffer) =>
  fc
    .tuple(
      fc.array(fc.tuple(fc.nat({ max: der.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.option(fc.tuple(fc.nat({ max: der.length - 1 }), fc.nat({ max: 40 }))),
      fc.option(fc.tuple(fc.nat({ max: der.length }), fc.uint8Array({ maxLength: 16 }))),
      fc.option(fc.nat({ max: der.length })),
    )
    .map(([flips, cut, insert, truncate]) => {
      let b = Buffer.from(der);
      for (const [i, v] of flips) b[i] = v;
      if (cut) b = Buffer.concat([b.subarray(0, cut[0]), b.subarray(cut[0] + cut[1])]);
      if (insert)
        b = Buffer.concat([b.subarray(0, insert[0]), Buffer.from(insert[1]), b.subarray(insert[0])]);
      if (truncate !== null) b = b.subarray(0, truncate);
      return b;
    });

const input = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  mutated(ee),
  mutated(int1),
  mutated(crl1),
  mutated(rootCrl),
);

function parsesOrTyped(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PathParseError);
  }
}

describe('malformed input', () => {
  it('parsers accept or throw PathParseError, never anything else', () => {
    fc.assert(
      fc.property(input, (b) => {
        parsesOrTyped(() => parseCertificate(b));
        parsesOrTyped(() => parseCrl(b));
        parsesOrTyped(() => parseOcspResponse(b));
      }),
      { numRuns: 1500 },
    );
  });

  it('validatePath returns a report for mutated targets, intermediates and CRLs', () => {
    const at = new Date('2018-04-01T09:30:33Z');
    fc.assert(
      fc.property(mutated(ee), mutated(int2), mutated(crl1), (target, badInt, badCrl) => {
        const cache = new PkiCache();
        const r = validatePath({
          target,
          intermediates: [int1, badInt, int2],
          trustAnchors: [root],
          crls: [rootCrl, badCrl, crl1],
          at,
          options: { cache },
        });
        expect(['TOTAL_PASSED', 'TOTAL_FAILED', 'INDETERMINATE']).toContain(r.indication);
        expect(typeof r.message).toBe('string');
        if (r.indication === 'TOTAL_PASSED') expect(r.chain[0]!.equals(target)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a mutated certificate that still parses never validates with a changed signed part', () => {
    const at = new Date('2018-04-01T09:30:33Z');
    fc.assert(
      fc.property(mutated(ee), (target) => {
        const r = validatePath({
          target,
          intermediates: [int1, int2],
          trustAnchors: [root],
          crls: [rootCrl, crl1, readFileSync(join(NIST, 'test04/int2.crl'))],
          at,
        });
        if (r.indication === 'TOTAL_PASSED') {
          // only changes outside the signed TBSCertificate bytes can keep it valid (e.g. none at all)
          const parsed = parseCertificate(target);
          expect(parsed.tbs.equals(parseCertificate(ee).tbs)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
