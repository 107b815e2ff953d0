// The authority's verifier CA and `jpki serve` over TLS, end to end with openssl and curl: `jpki init` makes
// the verifier CA, `jpki verifier cert` issues a verifier's client certificate from its CSR (clientAuth, the
// verifier's id in the subject, the verifier CA's CRL) and registers it; over mTLS the certificate gets
// OCSP answers and CRLs, no certificate gets 401, a certificate revoked at the authority gets 401 (and is
// on verifier.crl), a suspended verifier 403. `jpki ca add-verifier-ca` adds the CA to an authority
// without one and touches nothing else.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import { BIN, cleanEnv, jpki, mustOpenssl, ok, oneLineFailure, snapshot } from './jpki.ts';

const tmp = tempDir('jpki-cli-verifier-tls-');
const data = tmp.path('data');
const f = (n: string) => tmp.path(n);
const cert = (id: string) => join(data, 'certs', `${id}.pem`);
let server: ChildProcess | undefined;
let base = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function startServe(args: string[]): Promise<{ child: ChildProcess; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], {
      env: { ...cleanEnv(), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`jpki serve did not start:\n${out}\n${err}`)), 60_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('URLs written into certificates') && out.endsWith('\n')) {
        clearTimeout(timer);
        resolve({ child, out });
      }
    });
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`jpki serve exited with ${code}:\n${out}\n${err}`));
    });
  });
}

/** curl over TLS trusting the test server certificate; status code and body file. */
function curl(path: string, args: string[] = []): { code: string; body: Buffer } {
  const out = f(`curl-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(
    'curl',
    ['-s', '--cacert', f('server.pem'), '-o', out, '-w', '%{http_code}', ...args, `${base}${path}`],
    { encoding: 'utf8', timeout: 20_000 },
  );
  let body = Buffer.alloc(0);
  try {
    body = readFileSync(out);
  } catch {
    // no body
  }
  return { code: r.stdout, body };
}
const withCert = (name: string) => ['--cert', f(`${name}.pem`), '--key', f(`${name}.key`)];

beforeAll(async () => {
  const port = await freePort();
  base = `https://127.0.0.1:${port}`;
  ok(await jpki(['init', '--data', data, '--algorithm', 'ecdsa-p256', '--base-url', base]));
  // The server's own TLS certificate (any CA would do; verifiers trust it with --cacert).
  mustOpenssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2']
      .concat(['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'])
      .concat(['-keyout', 'server.key', '-out', 'server.pem']),
    tmp.dir,
  );
  opensslCsr(tmp.dir, 'holder', 'ec');
  for (const name of ['a', 'a2', 'b']) opensslCsr(tmp.dir, name, 'ec');
  const issued = ok(await jpki(['issue', '--data', data, '--kind', 'auth', '--csr', f('holder.csr')]));
  writeFileSync(f('holder.pem'), issued.stdout);
  for (const name of ['Verifier A', 'Verifier B'])
    ok(
      await jpki(
        [
          'verifier',
          'add',
          '--data',
          data,
          '--name',
          name,
          '--category',
          'private-certification-business',
        ].concat(['--kinds', 'auth', '--from', '2026-01-01', '--to', '2099-12-31']),
      ),
    );
  for (const [name, id] of [
    ['a', '1'],
    ['a2', '1'],
    ['b', '2'],
  ] as const)
    ok(
      await jpki([
        'verifier',
        'cert',
        '--data',
        data,
        '--verifier',
        id,
        '--csr',
        f(`${name}.csr`),
        '--out',
        f(`${name}.pem`),
      ]),
    );
  const started = await startServe([
    '--data',
    data,
    '--port',
    String(port),
    '--tls-cert',
    f('server.pem'),
    '--tls-key',
    f('server.key'),
  ]);
  server = started.child;
  expect(started.out).toContain(`listening on ${base}`);
  // The OCSP request, made once.
  mustOpenssl([
    'ocsp',
    '-issuer',
    cert('auth'),
    '-cert',
    f('holder.pem'),
    '-no_nonce',
    '-reqout',
    f('req.der'),
  ]);
}, 180_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.removeAllListeners('exit');
    await new Promise<void>((resolve) => {
      server!.once('exit', () => resolve());
      server!.kill('SIGTERM');
    });
  }
  tmp.cleanup();
});

describe('the verifier CA and mTLS', () => {
  it('jpki init made the verifier CA under the root, and verifier cert issued clientAuth certificates naming the verifier', () => {
    expect(openssl(['verify', '-CAfile', cert('root'), cert('verifier')]).output).toMatch(/: OK/);
    const caText = mustOpenssl(['x509', '-in', cert('verifier'), '-noout', '-text']);
    expect(caText).toMatch(/Subject: C ?= ?JP, O ?= ?JPKI, OU ?= ?JPKI Verifier CA/);
    expect(caText).toMatch(/CA:TRUE, pathlen:0/);
    const v = openssl([
      'verify',
      '-CAfile',
      cert('root'),
      '-untrusted',
      cert('verifier'),
      '-purpose',
      'sslclient',
      f('a.pem'),
    ]);
    expect(v.output).toMatch(/a\.pem: OK/);
    const text = mustOpenssl(['x509', '-in', f('a.pem'), '-noout', '-text']);
    expect(text).toMatch(/Subject: C ?= ?JP, O ?= ?JPKI, OU ?= ?Authorised Verifier, CN ?= ?verifier-1/);
    expect(text).toMatch(/TLS Web Client Authentication/);
    expect(text).toMatch(/Digital Signature/);
    expect(text).toContain(`${base}/crl/verifier.crl`);
    expect(text).toContain(`${base}/ca/verifier.der`);
    expect(text).not.toMatch(/Verifier A/); // the organisation stays in the registry
  });

  it('over mTLS: a good certificate gets the OCSP answer and a CRL; none gets 401', () => {
    const ocsp = curl('/ocsp', [
      ...withCert('a'),
      '-H',
      'Content-Type: application/ocsp-request',
      '--data-binary',
      `@${f('req.der')}`,
    ]);
    expect(ocsp.code).toBe('200');
    writeFileSync(f('resp.der'), ocsp.body);
    const check = openssl([
      'ocsp',
      '-respin',
      f('resp.der'),
      '-issuer',
      cert('auth'),
      '-cert',
      f('holder.pem'),
      '-CAfile',
      cert('root'),
    ]);
    expect(check.output).toMatch(/holder\.pem: good/);
    expect(curl('/crl/auth.crl', withCert('a')).code).toBe('200');
    const none = curl('/crl/auth.crl');
    expect(none.code).toBe('401');
    expect(none.body.toString()).toMatch(
      /authorised verifiers only: send an API key .* or a registered client certificate/,
    );
    // The verifier is authorised for authentication certificates only.
    expect(curl('/crl/sign.crl', withCert('a')).code).toBe('403');
    // The verifier CA certificate is public.
    expect(curl('/ca/verifier.pem').code).toBe('200');
  });

  it('a certificate revoked at the authority gets 401 and is on verifier.crl; a suspended verifier gets 403', async () => {
    const serial = new (await import('node:crypto')).X509Certificate(readFileSync(f('a2.pem'))).serialNumber;
    expect(curl('/crl/auth.crl', withCert('a2')).code).toBe('200');
    expect(curl('/crl/auth.crl', withCert('b')).code).toBe('200');
    ok(await jpki(['revoke', '--data', data, '--serial', serial, '--reason', 'keyCompromise']));
    ok(
      await jpki(['verifier', 'suspend', '--data', data, '--verifier', '2', '--reason', 'contract dispute']),
    );
    await new Promise((r) => setTimeout(r, 5200)); // the server's credential cache
    expect(curl('/crl/auth.crl', withCert('a2')).code).toBe('401');
    expect(curl('/crl/auth.crl', withCert('b')).code).toBe('403');
    expect(curl('/crl/auth.crl', withCert('a')).code).toBe('200');

    ok(await jpki(['crl', '--data', data, '--ca', 'verifier', '--out', f('verifier.crl')]));
    const crl = mustOpenssl(['crl', '-inform', 'DER', '-in', f('verifier.crl'), '-noout', '-text']);
    expect(crl).toContain(`Serial Number: ${serial}`);
    expect(
      openssl(['crl', '-inform', 'DER', '-in', f('verifier.crl'), '-noout', '-CAfile', cert('verifier')])
        .output,
    ).toMatch(/verify OK/);
  }, 60_000);

  it('jpki ca add-verifier-ca: refused when there is one; adds one to an authority without it, touching nothing else', async () => {
    oneLineFailure(await jpki(['ca', 'add-verifier-ca', '--data', data]), /already has a verifier CA/);
    const old = tmp.path('old');
    ok(await jpki(['init', '--data', old, '--algorithm', 'ecdsa-p256']));
    // As an authority created before the verifier CA.
    rmSync(join(old, 'certs', 'verifier.pem'));
    for (const name of snapshot(join(old, 'keys')).keys())
      if (name.includes('verifier')) rmSync(join(old, 'keys', name));
    const before = snapshot(old);
    const added = ok(await jpki(['ca', 'add-verifier-ca', '--data', old]));
    expect(added.stdout).toMatch(/verifier CA added/);
    const after = snapshot(old);
    for (const [name, bytes] of before) expect(after.get(name)?.equals(bytes), name).toBe(true);
    const fresh = [...after.keys()].filter((n) => !before.has(n));
    expect(fresh.some((n) => n === join('certs', 'verifier.pem'))).toBe(true);
    expect(
      openssl(['verify', '-CAfile', join(old, 'certs', 'root.pem'), join(old, 'certs', 'verifier.pem')])
        .output,
    ).toMatch(/: OK/);
  }, 60_000);
});
