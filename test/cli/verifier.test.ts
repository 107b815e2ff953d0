// A new authority from `jpki init` answers revocation requests to authorised verifiers only: `jpki verifier`
// registers one and issues its key, and openssl ocsp / curl against `jpki serve` get 401 without the key,
// an OCSP answer with it, and 403 once the verifier is suspended.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { opensslCsr, tempDir } from '../helpers/openssl.ts';
import { BIN, cleanEnv, jpki, ok, oneLineFailure } from './jpki.ts';

const tmp = tempDir('jpki-cli-verifier-');
const data = tmp.path('data');
const f = (n: string) => tmp.path(n);
let server: ChildProcess | undefined;
let base = '';
let holderSerial = '';

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

/** Starts `jpki serve` and resolves with its stdout once it listens. */
function startServe(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], {
      env: { ...cleanEnv(), LOG_LEVEL: 'warn', ...env },
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

function stopServe(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** curl's HTTP status code for a request. */
function curl(args: string[]): { stdout: string } {
  const r = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { stdout: r.stdout };
}

/** openssl ocsp as a client (async: the server is another process, but keep the event loop free). */
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

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  ok(await jpki(['init', '--data', data, '--algorithm', 'ecdsa-p256', '--base-url', base]));
  opensslCsr(tmp.dir, 'holder', 'ec');
  const issued = ok(await jpki(['issue', '--data', data, '--kind', 'auth', '--csr', f('holder.csr')]));
  writeFileSync(f('holder.pem'), issued.stdout);
  holderSerial = /serial ([0-9a-f]+)/.exec(issued.stderr)![1]!;
  const started = await startServe(['--data', data, '--port', String(port)]);
  server = started.child;
  expect(started.out).toMatch(/answer authorised verifiers only/);
  expect(started.out).toMatch(
    /jpki verifier add --data .* --category administrative-body --from \d{4}-\d\d-\d\d/,
  );
  expect(started.out).toMatch(/jpki verifier key --data .* --verifier 1/);
}, 120_000);

afterAll(async () => {
  await stopServe(server);
  tmp.cleanup();
});

describe('jpki verifier and a new authority serving verifiers only', () => {
  let key = '';
  const ocspArgs = () => [
    '-issuer',
    `${data}/certs/auth.pem`,
    '-cert',
    f('holder.pem'),
    '-url',
    `${base}/ocsp`,
    '-CAfile',
    `${data}/certs/root.pem`,
  ];

  it('registers a verifier, lists it and issues a key printed once on stdout', async () => {
    const added = ok(
      await jpki([
        'verifier',
        'add',
        '--data',
        data,
        '--name',
        '千代田区',
        '--category',
        'administrative-body',
        '--from',
        '2026-01-01',
        '--to',
        '2099-12-31',
      ]),
    );
    expect(added.stdout).toMatch(
      /^verifier 1 "千代田区" \(administrative-body; sign\+auth; active; contract 2026-01-01 to 2099-12-31\) registered\n$/,
    );
    const [listed, issued, bad] = await Promise.all([
      jpki(['verifier', 'list', '--data', data]),
      jpki(['verifier', 'key', '--data', data, '--verifier', '1', '--label', 'ocsp']),
      jpki([
        'verifier',
        'add',
        '--data',
        data,
        '--name',
        'x',
        '--category',
        'administrative-body',
        '--kinds',
        'card',
        '--from',
        '2026-01-01',
        '--to',
        '2026-12-31',
      ]),
    ]);
    expect(ok(listed).stdout).toContain('verifier 1 "千代田区"');
    key = ok(issued).stdout.trim();
    expect(key).toMatch(/^jpkv_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(issued.stderr).toMatch(/shown once/);
    oneLineFailure(bad, /--kinds: one or both of sign,auth/);
  });

  it('openssl ocsp and curl: 401 without the key, an answer with it', async () => {
    const without = await ocspClient(ocspArgs());
    expect(without.output).toMatch(/code=401/);
    const good = await ocspClient([...ocspArgs(), '-header', `Authorization=Bearer ${key}`]);
    expect(good.output, good.output).toMatch(/holder\.pem: good/);
    expect(good.output).toMatch(/Response verify OK/);
    expect(curl([`${base}/crl/auth.crl`]).stdout).toBe('401');
    expect(curl(['-H', `Authorization: Bearer ${key}`, `${base}/crl/auth.crl`]).stdout).toBe('200');
    // CA certificates stay public.
    expect(curl([`${base}/ca/root.pem`]).stdout).toBe('200');
    expect(holderSerial).not.toBe('');
  });

  it('a suspended verifier gets 403 (the serving process sees it within the credential cache time)', async () => {
    ok(await jpki(['verifier', 'suspend', '--data', data, '--verifier', '1', '--reason', 'unpaid fees']));
    await new Promise((r) => setTimeout(r, 5200));
    expect(curl(['-H', `Authorization: Bearer ${key}`, `${base}/crl/auth.crl`]).stdout).toBe('403');
    const refused = await ocspClient([...ocspArgs(), '-header', `Authorization=Bearer ${key}`]);
    expect(refused.output).toMatch(/code=403/);
    ok(await jpki(['verifier', 'reinstate', '--data', data, '--verifier', '1']));
  }, 30_000);
});
