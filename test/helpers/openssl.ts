import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for matching openssl's messages wherever it prints them. */
  output: string;
}

/** Runs the real openssl CLI. */
export function openssl(
  args: readonly string[],
  opts: { cwd?: string; input?: string | Buffer } = {},
): RunResult {
  const r = spawnSync('openssl', args, {
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: `${r.stdout}\n${r.stderr}` };
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'jpki-test-'): {
  dir: string;
  path: (name: string) => string;
  cleanup: () => void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A key and PKCS#10 request made by openssl, as a resident's card helper or a user would make
 * them. `key` is rsa:<bits> or ec.
 */
export function opensslCsr(
  dir: string,
  name: string,
  key: 'rsa:2048' | 'rsa:1024' | 'rsa:3072' | 'ec' | 'ec-p384' = 'rsa:2048',
) {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const args =
    key === 'ec'
      ? ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : key === 'ec-p384'
        ? ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']
        : ['req', '-new', '-newkey', key];
  const r = openssl([
    ...args,
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    csrPath,
    '-subj',
    `/CN=${name}`,
    '-sha256',
  ]);
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { keyPath, csrPath };
}
