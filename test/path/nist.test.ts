// NIST "Conformance Testing of Relying Party Client Certificate Path Processing Logic" (the X.509
// path validation test suite of 2001, 76 cases; test/fixtures/nist-x509/README.md), run through the
// same function as `jpki validate`, at the time and with the revocation checking the README gives.
//
// Relying-party policy settings: the suite's policy cases (TE:PP.06.xx, tests 43-47) have expected
// results per user-initial-policy-set. expected.tsv records test 46 (TE:PP.06.04: requireExplicitPolicy
// 0 in the first CA, every certificate asserting test-policy-1) as invalid, which is the suite's
// answer for an initial policy set that does not include test-policy-1; with any-policy the suite
// (and RFC 5280) accept it. So the cases run with user-initial-policy-set = {test-policy-2 … 5}, the
// suite's "set not including test-policy-1", under which every expected.tsv result is the suite's
// own. The separate block below checks PP.06.04 under its other settings.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateCertificate } from '../../src/verifier/validate-certificate.ts';

const DIR = join(import.meta.dirname, '../fixtures/nist-x509');
const AT = new Date('2018-04-01T09:30:33Z');
const policy = (n: number) => `2.16.840.1.101.3.1.48.${n}`;
const NOT_POLICY_1 = [2, 3, 4, 5].map(policy);

const cases = readFileSync(join(DIR, 'expected.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => {
    const [test, outcome, reason] = line.split('\t');
    return { test: test!, valid: outcome === 'valid', reason: reason ?? '' };
  });

function load(test: string) {
  const dir = join(DIR, test);
  const files = readdirSync(dir);
  return {
    target: readFileSync(join(dir, 'end.crt')),
    untrusted: files
      .filter((f) => f.endsWith('.crt') && f !== 'end.crt')
      .map((f) => readFileSync(join(dir, f))),
    trust: [readFileSync(join(DIR, 'root.crt'))],
    crls: [
      readFileSync(join(DIR, 'root.crl')),
      ...files.filter((f) => f.endsWith('.crl')).map((f) => readFileSync(join(dir, f))),
    ],
  };
}

describe('NIST X.509 path validation test suite', () => {
  let agree = 0;
  afterAll(() => {
    console.log(`NIST X.509: ${agree}/${cases.length} cases agree`);
  });

  it('has the 76 cases', () => {
    expect(cases).toHaveLength(76);
  });

  for (const c of cases) {
    it(`${c.test}: ${c.valid ? 'valid' : `invalid (${c.reason})`}`, async () => {
      const r = await validateCertificate({
        ...load(c.test),
        at: AT,
        options: { initialPolicySet: NOT_POLICY_1 },
      });
      expect(r.indication === 'TOTAL_PASSED', r.message).toBe(c.valid);
      expect(r.warnings).toEqual([]);
      if (c.valid) expect(r.revocation.every((s) => s.status === 'good')).toBe(true);
      else expect(r.subIndication).toBeDefined();
      agree++;
    });
  }
});

describe('NIST TE:PP.06.04 (test46) under each of its relying-party settings', () => {
  const run = (initialPolicySet: string[] | undefined, requireExplicitPolicy: boolean) =>
    validateCertificate({
      ...load('test46'),
      at: AT,
      options: { ...(initialPolicySet ? { initialPolicySet } : {}), requireExplicitPolicy },
    });
  it.each([
    ['any-policy', undefined, false, true],
    ['any-policy', undefined, true, true],
    ['{test-policy-1}', [policy(1)], true, true],
    ['{test-policy-1}', [policy(1)], false, true],
    ['a set without test-policy-1', NOT_POLICY_1, true, false],
    ['a set without test-policy-1', NOT_POLICY_1, false, false],
  ])('ipolset %s, explicit %s', async (_name, set, explicit, valid) => {
    const r = await run(set, explicit);
    expect(r.indication === 'TOTAL_PASSED', r.message).toBe(valid);
    if (!valid) expect(r.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
  });
});
