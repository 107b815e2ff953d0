// Running the real `jpki` command (bin/jpki.js) from tests, and what its output should look like.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { TEST_PASSPHRASE } from '../helpers/authority.ts';
import { openssl } from '../helpers/openssl.ts';

export const BIN = resolve(import.meta.dirname, '../../bin/jpki.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of the test process without anything that would point the CLI elsewhere. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of [
    'DATABASE_URL',
    'JPKI_DATA',
    'JPKI_KEY_PASSPHRASE_FILE',
    'JPKI_OPERATOR_TOKEN',
    'NODE_OPTIONS',
  ])
    delete env[k];
  return { ...env, JPKI_KEY_PASSPHRASE: TEST_PASSPHRASE };
}

/**
 * Runs `node bin/jpki.js ...args`. Asynchronous, so that independent commands can run side by side
 * (each one starts Node and loads the TypeScript sources: about half a second of CPU).
 */
export function jpki(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  stdin?: Buffer,
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...cleanEnv(), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) =>
      resolvePromise({
        status,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(stdin);
  });
}

export function ok(r: CliResult): CliResult {
  expect(r.stderr.split('\n').filter((l) => l.startsWith('jpki:'))).toEqual([]);
  expect(r.status, r.stderr).toBe(0);
  return r;
}

/** A failure as an operator should see it: non-zero exit, exactly one line on stderr, no stack trace. */
export function oneLineFailure(r: CliResult, message: RegExp): string {
  expect(r.status).not.toBe(0);
  expect(r.status).not.toBeNull();
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^jpki: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

/** A commander usage error: exit status 2 and an error: line, nothing done. */
export function usageError(r: CliResult, message: RegExp) {
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^error: /);
  expect(r.stderr).toMatch(message);
  expect(r.stdout).toBe('');
}

/** Every file under dir (relative path → bytes). */
export function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, readFileSync(join(dir, p)));
    }
  };
  walk('');
  return out;
}

/** Runs openssl in cwd and returns stdout, throwing with its output if it fails. */
export function mustOpenssl(args: readonly string[], cwd?: string): string {
  const r = openssl(args, { cwd });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}
