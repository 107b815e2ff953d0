// What a relying party does with the tools it already has: openssl verify with our CRLs, openssl
// ocsp against our responder over real HTTP, openssl crl on full and delta CRLs. One authority
// per backend (SQLite, and PostgreSQL when JPKI_TEST_POSTGRES_URL is set).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/core/pem.ts';
import { buildServer } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

/** openssl ocsp as a client; async so the in-process server can answer. */
function ocspClient(args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['ocsp', ...args], { timeout: 20_000 });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('close', (status) => resolve({ status, output: out }));
  });
}

describe.each(testStores())('interoperability with openssl (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  let url: string;
  const tmp = tempDir();
  const f = (n: string) => tmp.path(n);

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    app = await buildServer({ authority: ta.authority, operatorToken: 'x'.repeat(32) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/ocsp`;
    for (const id of ['root', 'sign', 'auth'] as const)
      writeFileSync(f(`${id}.pem`), encodePem('CERTIFICATE', ta.authority.certificate(id)));
  });

  afterAll(async () => {
    await app?.close();
    await ta?.close();
    tmp.cleanup();
  });

  async function issue(kind: 'sign' | 'auth', name: string) {
    const { csrPath } = opensslCsr(tmp.dir, name);
    const cert = await ta.authority.issue({
      kind,
      csr: (await import('node:fs')).readFileSync(csrPath, 'utf8'),
      facts:
        kind === 'sign'
          ? {
              name: '佐藤 花子',
              dateOfBirth: '1990-12-03',
              sex: 'female',
              address: '大阪府大阪市北区中之島1丁目3番20号',
            }
          : undefined,
    });
    writeFileSync(f(`${name}.pem`), cert.pem);
    return cert;
  }

  async function crlPem(ca: 'sign' | 'auth', delta = false) {
    const r = await ta.authority.generateCrl(ca, { delta });
    const crl = await ta.authority.currentCrl(ca, r.kind);
    const path = f(`${ca}-${r.number}.crl`);
    writeFileSync(path, crl!.der);
    const pem = openssl(['crl', '-inform', 'DER', '-in', path, '-outform', 'PEM']);
    expect(pem.status).toBe(0);
    writeFileSync(`${path}.pem`, pem.stdout);
    return { path, pemPath: `${path}.pem`, result: r };
  }

  const verify = (cert: string, ca: 'sign' | 'auth', crl: string) =>
    openssl([
      'verify',
      '-CAfile',
      f('root.pem'),
      '-untrusted',
      f(`${ca}.pem`),
      '-crl_check',
      '-CRLfile',
      crl,
      f(`${cert}.pem`),
    ]);

  it('openssl verify accepts an issued signature certificate and rejects it after revocation and a new CRL', async () => {
    const cert = await issue('sign', 'hanako');
    const before = await crlPem('sign');
    const ok = verify('hanako', 'sign', before.pemPath);
    expect(ok.output).toContain(': OK');
    expect(ok.status).toBe(0);

    await ta.authority.revoke(cert.serial, 'keyCompromise');
    const after = await crlPem('sign');
    expect(after.result.number).toBeGreaterThan(before.result.number);
    const bad = verify('hanako', 'sign', after.pemPath);
    expect(bad.status).not.toBe(0);
    expect(bad.output).toContain('certificate revoked');
  });

  it('openssl verify accepts an authentication certificate for client authentication', async () => {
    await issue('auth', 'authuser');
    const crl = await crlPem('auth');
    const r = openssl([
      'verify',
      '-purpose',
      'sslclient',
      '-CAfile',
      f('root.pem'),
      '-untrusted',
      f('auth.pem'),
      '-crl_check',
      '-CRLfile',
      crl.pemPath,
      f('authuser.pem'),
    ]);
    expect(r.output).toContain(': OK');
  });

  it('openssl ocsp verifies our responder and sees good, then revoked with the reason', async () => {
    const cert = await issue('sign', 'ocspuser');
    const args = [
      '-issuer',
      f('sign.pem'),
      '-cert',
      f('ocspuser.pem'),
      '-url',
      url,
      '-CAfile',
      f('root.pem'),
    ];
    const good = await ocspClient(args);
    expect(good.output).toContain('Response verify OK');
    expect(good.output).toMatch(/ocspuser\.pem: good/);

    await ta.authority.revoke(cert.serial, 'affiliationChanged');
    const revoked = await ocspClient(args);
    expect(revoked.output).toContain('Response verify OK');
    expect(revoked.output).toMatch(/ocspuser\.pem: revoked/);
    expect(revoked.output).toContain('Reason: affiliationChanged');

    // RFC 5019 style (no nonce, GET-sized): the precomputed response must not hide the revocation.
    const noNonce = await ocspClient([...args, '-no_nonce']);
    expect(noNonce.output).toMatch(/ocspuser\.pem: revoked/);
  });

  it('openssl ocsp with SHA-256 CertIDs and for the authentication CA', async () => {
    await issue('auth', 'auth256');
    const r = await ocspClient([
      '-sha256',
      '-issuer',
      f('auth.pem'),
      '-cert',
      f('auth256.pem'),
      '-url',
      url,
      '-CAfile',
      f('root.pem'),
    ]);
    expect(r.output).toContain('Response verify OK');
    expect(r.output).toMatch(/auth256\.pem: good/);
  });

  it('openssl crl parses full and delta CRLs, and the delta lists what came after its base', async () => {
    const base = await crlPem('auth');
    const cert = await issue('auth', 'deltauser');
    await ta.authority.revoke(cert.serial, 'superseded');
    const delta = await crlPem('auth', true);
    expect(delta.result.baseNumber).toBe(base.result.number);

    const fullText = openssl(['crl', '-inform', 'DER', '-in', base.path, '-noout', '-text']);
    expect(fullText.status).toBe(0);
    expect(fullText.output).toContain('X509v3 CRL Number');
    expect(fullText.output).toContain('X509v3 Freshest CRL');
    expect(fullText.output).not.toContain(cert.serial.toUpperCase().replace(/^00/, ''));

    const deltaText = openssl(['crl', '-inform', 'DER', '-in', delta.path, '-noout', '-text']);
    expect(deltaText.status).toBe(0);
    expect(deltaText.output).toMatch(/X509v3 Delta CRL Indicator: critical\s+(0x)?\d+/);
    expect(deltaText.output).toContain(cert.serial.toUpperCase().replace(/^00/, ''));
    expect(deltaText.output).toContain('Superseded');

    const sig = openssl(['crl', '-inform', 'DER', '-in', delta.path, '-noout', '-CAfile', f('auth.pem')]);
    expect(sig.output).toContain('verify OK');
  });
});
