// NIST PKITS (Public Key Interoperability Test Suite) through the same function as `jpki validate`.
//
// The data comes from the Debian/Ubuntu package python3-cryptography-vectors
// (…/cryptography_vectors/x509/PKITS_data). Every test uses the same inputs, as a relying party
// that has collected everything would: all certificates of certs/ as untrusted intermediates, all
// CRLs of crls/, TrustAnchorRootCertificate as the trust anchor; the end-entity certificate and the
// suite's relying-party settings per (sub)test are listed in pkits-cases.ts. The certificates are
// valid from 2010 to 2030; the validation time is 2020-06-01.
//
// Without the package the suite is skipped, unless JPKI_TEST_PKITS=1 (set it in CI, where the
// package is installed) makes a missing package a failure.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RevocationSource } from '../../src/verifier/revocation-source.ts';
import { validateCertificate } from '../../src/verifier/validate-certificate.ts';
import { nistTestPolicy, PKITS_CASES, PKITS_SECTIONS } from './pkits-cases.ts';

const DATA =
  process.env.JPKI_PKITS_DIR ?? '/usr/lib/python3/dist-packages/cryptography_vectors/x509/PKITS_data';
const AT = new Date('2020-06-01T00:00:00Z');
const present = existsSync(join(DATA, 'certs')) && existsSync(join(DATA, 'crls'));
const required = process.env.JPKI_TEST_PKITS === '1';

describe('PKITS data', () => {
  it.runIf(required)('is installed (JPKI_TEST_PKITS=1)', () => {
    expect(present, `PKITS data not found in ${DATA}: install python3-cryptography-vectors`).toBe(true);
  });
});

describe.skipIf(!present)('NIST PKITS', () => {
  const read = (sub: string, f: string) => readFileSync(join(DATA, sub, f));
  const certFiles = present ? readdirSync(join(DATA, 'certs')).filter((f) => f.endsWith('.crt')) : [];
  const untrusted = certFiles
    .filter((f) => f !== 'TrustAnchorRootCertificate.crt')
    .map((f) => read('certs', f));
  const trust = present ? [read('certs', 'TrustAnchorRootCertificate.crt')] : [];
  // one source for all cases: every CRL parsed once
  const source = new RevocationSource();
  if (present) for (const f of readdirSync(join(DATA, 'crls'))) source.addCrl(read('crls', f));

  const tally = new Map<string, { pass: number; total: number }>();
  for (const c of PKITS_CASES) {
    const section = c.number.split('.').slice(0, 2).join('.');
    if (!tally.has(section)) tally.set(section, { pass: 0, total: 0 });
    tally.get(section)!.total++;
  }
  afterAll(() => {
    let pass = 0;
    let total = 0;
    for (const [section, t] of tally) {
      console.log(`PKITS ${section} ${PKITS_SECTIONS[section]}: ${t.pass}/${t.total}`);
      pass += t.pass;
      total += t.total;
    }
    console.log(`PKITS total: ${pass}/${total}`);
  });

  for (const c of PKITS_CASES) {
    const section = c.number.split('.').slice(0, 2).join('.');
    const settings = [
      c.policies ? `initial-policy-set {${c.policies.map((p) => `test-policy-${p}`).join(', ')}}` : '',
      c.explicit ? 'explicit policy' : '',
      c.inhibitMapping ? 'policy mapping inhibited' : '',
      c.inhibitAny ? 'anyPolicy inhibited' : '',
    ].filter(Boolean);
    it(`${c.number}${c.part ?? ''} ${c.ee}${settings.length ? ` (${settings.join(', ')})` : ''}: ${c.valid ? 'valid' : 'invalid'}`, async () => {
      const r = await validateCertificate({
        target: read('certs', `${c.ee}.crt`),
        untrusted,
        trust,
        at: AT,
        source,
        options: {
          ...(c.policies ? { initialPolicySet: c.policies.map(nistTestPolicy) } : {}),
          requireExplicitPolicy: c.explicit ?? false,
          inhibitPolicyMapping: c.inhibitMapping ?? false,
          inhibitAnyPolicy: c.inhibitAny ?? false,
        },
      });
      expect(r.indication === 'TOTAL_PASSED', r.message).toBe(c.valid);
      if (!c.valid) expect(r.message.length).toBeGreaterThan(0);
      tally.get(section)!.pass++;
    });
  }
});
