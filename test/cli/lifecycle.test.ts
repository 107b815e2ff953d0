// `jpki issue`, `revoke` and `crl` over an authority's life, on SQLite and (when
// JPKI_TEST_POSTGRES_URL is set) on PostgreSQL through DATABASE_URL, checked with openssl verify.

import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePem } from '../../src/core/pem.ts';
import { createTestPostgresDatabase, type TestPostgresDatabase } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import { jpki, mustOpenssl as mustOpensslIn, ok, oneLineFailure } from './jpki.ts';

const tmp = tempDir('jpki-cli-life-');
const data = tmp.path('data');
const cert = (id: string) => join(data, 'certs', `${id}.pem`);
const mustOpenssl = (args: readonly string[]) => mustOpensslIn(args, tmp.dir);

beforeAll(async () => {
  const init = jpki(['init', '--data', data]);
  opensslCsr(tmp.dir, 'rsa', 'rsa:2048');
  opensslCsr(tmp.dir, 'ec', 'ec');
  ok(await init);
});

afterAll(() => tmp.cleanup());

describe.each(testStores())('jpki revoke and crl (%s)', (backend) => {
  let pgDb: TestPostgresDatabase | undefined;
  let env: NodeJS.ProcessEnv = {};
  const f = (name: string) => tmp.path(`${backend}-${name}`);

  beforeAll(async () => {
    if (backend === 'postgres') {
      pgDb = await createTestPostgresDatabase();
      env = { DATABASE_URL: pgDb.url };
    }
  });
  afterAll(async () => {
    await pgDb?.drop();
  });

  const run = (args: readonly string[]) => jpki([...args, '--data', data], env);

  function verify(certFile: string, crlDer: string) {
    const crlPem = `${crlDer}.pem`;
    mustOpenssl(['crl', '-inform', 'DER', '-in', crlDer, '-out', crlPem]);
    return openssl([
      'verify',
      '-CAfile',
      cert('root'),
      '-untrusted',
      cert('sign'),
      '-crl_check',
      '-CRLfile',
      crlPem,
      certFile,
    ]);
  }

  it('a certificate verifies against a CRL built before its revocation and fails against one built after', async () => {
    const issued = ok(
      await run([
        'issue',
        '--kind',
        'sign',
        '--csr',
        tmp.path('rsa.csr'),
        '--name',
        '佐藤 花子',
        '--birth',
        '1985-12-24',
        '--sex',
        'F',
        '--address',
        '大阪府大阪市北区中之島1-3-20',
      ]),
    );
    writeFileSync(f('ee.pem'), issued.stdout);
    const serial = /serial ([0-9a-f]+)/.exec(issued.stderr)![1]!;
    const hex = new X509Certificate(issued.stdout).serialNumber;

    const before = ok(await run(['crl', '--ca', 'sign', '--out', f('before.crl')]));
    expect(before.stderr).toMatch(/^full CRL #\d+ of sign with \d+ entries, next update /);
    expect(verify(f('ee.pem'), f('before.crl')).output).toMatch(/: OK/);

    const revoked = ok(await run(['revoke', '--serial', hex, '--reason', 'keyCompromise']));
    expect(revoked.stdout).toMatch(new RegExp(`^revoked ${serial} \\(keyCompromise\\) at \\d{4}-`));
    // again, spelled differently: the first record is kept
    const again = ok(await run(['revoke', '--serial', hex.toLowerCase(), '--reason', 'superseded']));
    expect(again.stdout).toMatch(new RegExp(`^already revoked ${serial} at .*the first record is kept`));

    const after = ok(await run(['crl', '--ca', 'sign', '--out', f('after.crl')]));
    expect(after.stderr).toMatch(/with [1-9]\d* entries/);
    const v = verify(f('ee.pem'), f('after.crl'));
    expect(v.status).not.toBe(0);
    expect(v.output).toMatch(/certificate revoked/);
    const text = mustOpenssl(['crl', '-inform', 'DER', '-in', f('after.crl'), '-noout', '-text']);
    expect(text).toContain(`Serial Number: ${hex}`);
    expect(text).toMatch(/Key Compromise/);
    expect(text).not.toMatch(/Superseded/);
    // signed by the sign CA
    const signed = openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      f('after.crl'),
      '-noout',
      '-CAfile',
      cert('sign'),
    ]);
    expect(signed.output).toMatch(/verify OK/);
  });

  it('crl --delta lists what was revoked since the full CRL', async () => {
    const [issued, early] = await Promise.all([
      run(['issue', '--kind', 'auth', '--csr', tmp.path('ec.csr')]),
      // no full auth CRL yet on this store: a delta has nothing to be based on
      run(['crl', '--ca', 'auth', '--delta', '--out', f('auth-delta0.crl')]),
    ]);
    oneLineFailure(early, /no full CRL of auth/);
    expect(existsSync(f('auth-delta0.crl'))).toBe(false);
    const hex = new X509Certificate(ok(issued).stdout).serialNumber;

    ok(await run(['crl', '--ca', 'auth', '--out', f('auth-full.crl')]));
    ok(
      await run([
        'revoke',
        '--serial',
        hex,
        '--reason',
        'cessationOfOperation',
        '--time',
        '2020-01-02T03:04:05Z',
      ]),
    );
    const d = ok(await run(['crl', '--ca', 'auth', '--delta', '--out', f('auth-delta.crl')]));
    expect(d.stderr).toMatch(/^delta CRL #\d+ of auth with 1 entries/);
    const text = mustOpenssl(['crl', '-inform', 'DER', '-in', f('auth-delta.crl'), '-noout', '-text']);
    expect(text).toMatch(/X509v3 Delta CRL Indicator: critical/);
    expect(text).toContain(`Serial Number: ${hex}`);
    expect(text).toMatch(/Revocation Date: Jan {2}2 03:04:05 2020 GMT/);
    expect(text).toMatch(/Cessation Of Operation/);
    const full = mustOpenssl(['crl', '-inform', 'DER', '-in', f('auth-full.crl'), '-noout', '-text']);
    expect(full).not.toContain(hex);
    // the file is DER, not PEM
    expect(readFileSync(f('auth-delta.crl'))[0]).toBe(0x30);
    expect(() => decodePem(readFileSync(f('auth-delta.crl'), 'latin1'), ['X509 CRL'])).toThrow();
  });

  it('revoke: unknown serial → one line (and, checked once, garbage serial and future time)', async () => {
    const results = await Promise.all([
      run(['revoke', '--serial', '0123456789abcdef']),
      // these two are refused before the store is asked: once is enough
      ...(backend === 'sqlite'
        ? [
            run(['revoke', '--serial', 'not-hex']),
            run(['revoke', '--serial', '0123456789abcdef', '--time', '2999-01-01T00:00:00Z']),
          ]
        : []),
    ]);
    oneLineFailure(results[0]!, /no certificate with serial/);
    if (backend === 'sqlite') {
      oneLineFailure(results[1]!, /not a serial number/);
      oneLineFailure(results[2]!, /in the future/);
    }
  });
});
