// `jpki validate` as a user runs it: exit status 0/1/2/3 and the report, text or JSON.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '../../bin/jpki.js');
const NIST = join(import.meta.dirname, '../fixtures/nist-x509');
const AT = '2018-04-01T09:30:33Z';

function jpki(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'validate', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const t = (test: string, f: string) => join(NIST, test, f);

describe('jpki validate', () => {
  it('exits 0 on a valid path, printing the indication and revocation statuses', () => {
    const r = jpki(
      '--trust',
      join(NIST, 'root.crt'),
      '--untrusted',
      t('test04', 'int1.crt'),
      '--untrusted',
      t('test04', 'int2.crt'),
      '--crl',
      join(NIST, 'root.crl'),
      '--crl',
      t('test04', 'int1.crl'),
      '--crl',
      t('test04', 'int2.crl'),
      '--at',
      AT,
      t('test04', 'end.crt'),
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^TOTAL_PASSED\n/);
    expect(r.stdout).toContain(
      '#0 C=US, O=U.S. Government, OU=DoD, OU=Testing, CN=User1-CP.02.01: good (crl #1)',
    );
  });

  it('exits 1 on a revoked certificate, with --json', () => {
    const r = jpki(
      '--trust',
      join(NIST, 'root.crt'),
      '--untrusted',
      t('test21', 'int.crt'),
      '--crl',
      join(NIST, 'root.crl'),
      '--crl',
      t('test21', 'int.crl'),
      '--at',
      AT,
      '--json',
      t('test21', 'end.crt'),
    );
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ indication: 'TOTAL_FAILED', subIndication: 'REVOKED', failedAt: 0 });
    expect(report.chain[0]).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(report.revocation[0]).toMatchObject({ source: 'crl', status: 'revoked', reason: 'keyCompromise' });
    expect(report.validationTime).toBe('2018-04-01T09:30:33.000Z');
  });

  it('exits 2 without revocation data, and 0 with --no-revocation-check (saying so)', () => {
    const args = [
      '--trust',
      join(NIST, 'root.crt'),
      '--untrusted',
      t('test04', 'int1.crt'),
      '--untrusted',
      t('test04', 'int2.crt'),
      '--at',
      AT,
      t('test04', 'end.crt'),
    ];
    const r = jpki(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^INDETERMINATE\/TRY_LATER\n/);
    const skipped = jpki('--no-revocation-check', ...args);
    expect(skipped.status).toBe(0);
    expect(skipped.stdout).toContain('Revocation checking was skipped');
  });

  it('exits 3 on usage errors', () => {
    expect(jpki(t('test04', 'end.crt')).status).toBe(3); // no --trust
    expect(jpki('--trust', join(NIST, 'root.crt'), '--at', 'yesterday', t('test04', 'end.crt')).status).toBe(
      3,
    );
    const missing = jpki('--trust', join(NIST, 'nope.crt'), t('test04', 'end.crt'));
    expect(missing.status).toBe(3);
    expect(missing.stderr).toContain('cannot read trust anchor');
    expect(jpki('--trust').status).toBe(3);
    expect(jpki('--bogus-option', 'x').status).toBe(3);
  });
});
