// The `jpki` command as an operator runs it: the real bin/jpki.js in a child process, a temporary
// data directory, real keys, and openssl checking what comes out. init, ca show and issue here;
// revoke and crl (on each store backend) in lifecycle.test.ts, so that vitest can run the two
// files side by side (every command starts Node and loads the sources: about half a second).

import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import {
  type CliResult,
  jpki,
  mustOpenssl as mustOpensslIn,
  ok,
  oneLineFailure,
  snapshot,
  usageError,
} from './jpki.ts';

const CA_IDS = ['root', 'sign', 'auth', 'sign-ocsp', 'auth-ocsp'] as const;

const tmp = tempDir('jpki-cli-');
const data = tmp.path('data');
const cert = (id: string) => join(data, 'certs', `${id}.pem`);
let init: CliResult;

const mustOpenssl = (args: readonly string[]) => mustOpensslIn(args, tmp.dir);

/** What init wrote and nothing may touch again: keys, certificates, secrets, configuration. */
function authorityFiles(dir: string): Map<string, Buffer> {
  const all = snapshot(dir);
  for (const p of all.keys()) if (p.startsWith('jpki.sqlite')) all.delete(p);
  return all;
}

function expectUnchanged(before: Map<string, Buffer>, after: Map<string, Buffer>) {
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [p, bytes] of before) expect(after.get(p)!.equals(bytes), p).toBe(true);
}

beforeAll(async () => {
  const running = jpki(['init', '--data', data, '--base-url', 'https://jpki.example.jp']);
  opensslCsr(tmp.dir, 'rsa', 'rsa:2048');
  opensslCsr(tmp.dir, 'ec', 'ec');
  opensslCsr(tmp.dir, 'weak', 'rsa:1024');
  mustOpenssl(['req', '-in', 'ec.csr', '-outform', 'DER', '-out', 'ec.csr.der']);
  init = await running;
});

afterAll(() => tmp.cleanup());

describe('jpki init', () => {
  it('creates the authority: encrypted keys, CA and OCSP certificates, operator token', () => {
    ok(init);
    expect(init.stdout).toBe(`authority created in ${data} (rsa-2048)\n`);
    // The passphrase came from the environment: no note about it; revocation data is for verifiers only.
    expect(init.stderr).toBe(
      'OCSP, CRLs and /verify answer authorised verifiers only: register one with "jpki verifier add" and give it a key with "jpki verifier key"\n',
    );
    expect(JSON.parse(readFileSync(join(data, 'authority.json'), 'utf8')).revocationAccess).toBe('verifiers');
    expect(JSON.parse(readFileSync(join(data, 'authority.json'), 'utf8'))).toMatchObject({
      version: 1,
      algorithm: 'rsa-2048',
      baseUrl: 'https://jpki.example.jp',
      keyStore: { type: 'software' },
    });
    for (const id of CA_IDS) {
      const key = readFileSync(join(data, 'keys', `jpki-${id}.key.pem`), 'utf8');
      expect(key).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      expect(new X509Certificate(readFileSync(cert(id))).publicKey.asymmetricKeyType).toBe('rsa');
    }
    const token = join(data, 'secrets', 'operator-token');
    expect(readFileSync(token, 'utf8').trim().length).toBeGreaterThanOrEqual(32);
    expect(statSync(token).mode & 0o077).toBe(0);
    expect(existsSync(join(data, 'secrets', 'key-passphrase'))).toBe(false);
    // the chain holds together, and the base URL went into the certificates
    const v = openssl(['verify', '-CAfile', cert('root'), '-untrusted', cert('sign'), cert('sign-ocsp')]);
    expect(v.output).toMatch(/: OK/);
    expect(mustOpenssl(['x509', '-in', cert('sign'), '-noout', '-ext', 'crlDistributionPoints'])).toContain(
      'https://jpki.example.jp/crl/root.crl',
    );
  });

  it('refuses a second init with one line on stderr and leaves every file byte-identical', async () => {
    const before = authorityFiles(data);
    const r = await jpki(['init', '--data', data, '--algorithm', 'ecdsa-p256']);
    oneLineFailure(r, /already exists.*refusing to overwrite/);
    expect(r.stdout).toBe('');
    expectUnchanged(before, authorityFiles(data));
  });

  it('refuses to init where keys exist even without authority.json, or with a bad base URL', async () => {
    const other = tmp.path('keys-only');
    cpSync(join(data, 'keys'), join(other, 'keys'), { recursive: true });
    const before = snapshot(other);
    const fresh = tmp.path('bad-url');
    const [keysOnly, badUrl] = await Promise.all([
      jpki(['init', '--data', other]),
      jpki(['init', '--data', fresh, '--base-url', 'ftp://example.jp']),
    ]);
    oneLineFailure(keysOnly, /already holds keys/);
    expectUnchanged(before, snapshot(other));
    oneLineFailure(badUrl, /--base-url: not an http\(s\) URL/);
    expect(existsSync(join(fresh, 'keys'))).toBe(false);
  });

  it('init --algorithm ecdsa-p256 makes EC CA certificates signed with ecdsa-with-SHA256', async () => {
    const ec = tmp.path('ec-data');
    const r = ok(await jpki(['init', '--data', ec, '--algorithm', 'ecdsa-p256']));
    expect(r.stdout).toContain('(ecdsa-p256)');
    for (const id of CA_IDS) {
      const text = mustOpenssl(['x509', '-in', join(ec, 'certs', `${id}.pem`), '-noout', '-text']);
      expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey/);
      expect(text).toMatch(/NIST CURVE: P-256|ASN1 OID: prime256v1/);
    }
    // and it issues with those keys (an RSA request under an EC CA)
    const issued = ok(await jpki(['issue', '--data', ec, '--kind', 'auth', '--csr', tmp.path('rsa.csr')]));
    writeFileSync(tmp.path('ec-ee.pem'), issued.stdout);
    const ecCerts = join(ec, 'certs');
    const v = openssl([
      'verify',
      '-CAfile',
      join(ecCerts, 'root.pem'),
      '-untrusted',
      join(ecCerts, 'auth.pem'),
      tmp.path('ec-ee.pem'),
    ]);
    expect(v.output).toMatch(/: OK/);
    expect(mustOpenssl(['x509', '-in', tmp.path('ec-ee.pem'), '-noout', '-text'])).toMatch(
      /Signature Algorithm: ecdsa-with-SHA256/,
    );
  });
});

describe('jpki ca show', () => {
  it('prints each CA certificate as PEM, equal to the file (--data or JPKI_DATA)', async () => {
    const [root, sign, auth] = await Promise.all([
      jpki(['ca', 'show', '--ca', 'root'], { JPKI_DATA: data }),
      jpki(['ca', 'show', '--data', data, '--ca', 'sign']),
      jpki(['ca', 'show', '--data', data, '--ca', 'auth']),
    ]);
    expect(ok(root).stdout).toBe(readFileSync(cert('root'), 'utf8'));
    expect(ok(sign).stdout).toBe(readFileSync(cert('sign'), 'utf8'));
    expect(ok(auth).stdout).toBe(readFileSync(cert('auth'), 'utf8'));
  });

  it('says what is wrong when there is no authority or --ca is missing', async () => {
    const [none, missing] = await Promise.all([
      jpki(['ca', 'show', '--data', tmp.path('nothing-here'), '--ca', 'root']),
      jpki(['ca', 'show', '--data', data]),
    ]);
    oneLineFailure(none, /no authority in .*run "jpki init" first/);
    usageError(missing, /required option '--ca <id>'/);
  });
});

describe('jpki issue', () => {
  it('issues a signature certificate with a Japanese name and prints its PEM', async () => {
    const r = ok(
      await jpki([
        'issue',
        '--data',
        data,
        '--kind',
        'sign',
        '--csr',
        tmp.path('rsa.csr'),
        '--name',
        '山田 太郎',
        '--birth',
        '1990-04-01',
        '--sex',
        'F',
        '--address',
        '北海道札幌市中央区北1条西2丁目',
        '--counter',
        'sapporo1',
      ]),
    );
    expect(r.stdout).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    const x = new X509Certificate(r.stdout);
    const printed = /^issued sign certificate serial ([0-9a-f]+)\n$/.exec(r.stderr)?.[1];
    expect(printed?.replace(/^00/, '')).toBe(x.serialNumber.toLowerCase());
    expect(x.issuer).toBe(new X509Certificate(readFileSync(cert('sign'))).subject);
    expect(x.subject).toContain('L=北海道');
    expect(x.subject).toContain('L=札幌市中央区');
    expect(x.subject).toMatch(/CN=\d{14}SAPPORO1[0-9A-F]{10}/);
    writeFileSync(tmp.path('sign-ee.pem'), r.stdout);
    const text = mustOpenssl(['x509', '-in', tmp.path('sign-ee.pem'), '-noout', '-ext', 'subjectAltName']);
    expect(text).toContain('1.2.392.200149.8.5.5.1::山田\u3000太郎');
    expect(text).toContain('1.2.392.200149.8.5.5.3::2');
    expect(text).toContain('1.2.392.200149.8.5.5.5::北海道札幌市中央区北1条西2丁目');
    const v = openssl([
      'verify',
      '-CAfile',
      cert('root'),
      '-untrusted',
      cert('sign'),
      tmp.path('sign-ee.pem'),
    ]);
    expect(v.output).toMatch(/: OK/);
  });

  it('issues an authentication certificate from a PEM file, or a DER request on stdin to --out', async () => {
    const out = tmp.path('auth-from-der.pem');
    const [pem, der] = await Promise.all([
      jpki(['issue', '--data', data, '--kind', 'auth', '--csr', tmp.path('ec.csr')]),
      jpki(
        ['issue', '--data', data, '--kind', 'auth', '--csr', '-', '--out', out],
        {},
        readFileSync(tmp.path('ec.csr.der')),
      ),
    ]);
    const a = new X509Certificate(ok(pem).stdout);
    expect(a.issuer).toBe(new X509Certificate(readFileSync(cert('auth'))).subject);
    expect(a.subjectAltName).toBeUndefined();
    ok(der);
    expect(der.stdout).toBe('');
    expect(der.stderr).toMatch(/^issued auth certificate serial [0-9a-f]+\n$/);
    const b = new X509Certificate(readFileSync(out));
    expect(b.publicKey.export({ type: 'spki', format: 'der' })).toEqual(
      a.publicKey.export({ type: 'spki', format: 'der' }),
    );
    expect(b.serialNumber).not.toBe(a.serialNumber);
  });

  it('a bad request file: one line and exit 1; --debug adds the stack trace', async () => {
    writeFileSync(tmp.path('garbage.csr'), 'this is not a certificate request\n');
    const args = ['issue', '--data', data, '--kind', 'auth', '--csr', tmp.path('garbage.csr')];
    const [plain, debug] = await Promise.all([jpki(args), jpki(['--debug', ...args])]);
    oneLineFailure(plain, /not valid PKCS#10/);
    expect(plain.status).toBe(1);
    expect(plain.stdout).toBe('');
    expect(debug.status).toBe(1);
    expect(debug.stderr.split('\n')[0]).toBe('jpki: the certificate request is not valid PKCS#10 DER');
    expect(debug.stderr).toMatch(/CsrError: .*\n\s+at /);
  });

  it('a weak key, a missing file, a wrong passphrase: one line each', async () => {
    const missing = tmp.path('no-such.csr');
    const [weak, absent, passphrase] = await Promise.all([
      jpki(['issue', '--data', data, '--kind', 'auth', '--csr', tmp.path('weak.csr')]),
      jpki(['issue', '--data', data, '--kind', 'auth', '--csr', missing]),
      jpki(['issue', '--data', data, '--kind', 'auth', '--csr', tmp.path('rsa.csr')], {
        JPKI_KEY_PASSPHRASE: 'not-the-passphrase',
      }),
    ]);
    oneLineFailure(weak, /RSA key of 1024 bits is too weak/);
    const line = oneLineFailure(absent, /cannot read/);
    expect(line).toContain(missing);
    expect(line).toContain('ENOENT');
    oneLineFailure(passphrase, /wrong passphrase/);
  });

  it('facts: required for sign, refused for auth', async () => {
    const base = ['issue', '--data', data, '--csr', tmp.path('rsa.csr')];
    const [noFacts, authFacts] = await Promise.all([
      jpki([...base, '--kind', 'sign', '--name', '山田 太郎']),
      jpki([...base, '--kind', 'auth', '--name', '山田 太郎']),
    ]);
    oneLineFailure(noFacts, /needs --name, --birth, --sex and --address/);
    oneLineFailure(authFacts, /carries no personal data/);
  });

  it('usage errors (missing --csr, unknown option, bad choice) exit 2', async () => {
    const csrFile = tmp.path('rsa.csr');
    const [noCsr, unknownOption, badReason] = await Promise.all([
      jpki(['issue', '--data', data, '--kind', 'auth']),
      jpki(['issue', '--data', data, '--kind', 'auth', '--csr', csrFile, '--bogus']),
      jpki(['revoke', '--data', data, '--serial', '01', '--reason', 'certificateHold']),
    ]);
    usageError(noCsr, /required option '--csr <file>'/);
    usageError(unknownOption, /unknown option '--bogus'/);
    usageError(badReason, /--reason/);
  });
});
