// Throwaway SoftHSM2 tokens for tests.
//
// SoftHSM reads SOFTHSM2_CONF once, in C_Initialize, and the library is initialised once per process
// (see src/keys/pkcs11.ts). So all tokens of a test process live in ONE temporary token directory,
// set up by the first createSoftHsmToken() call; create every token a test file needs before the first
// Pkcs11KeyStore is opened (SoftHSM does not notice tokens created while it is initialised).
// Vitest runs each test file in its own process, so files do not share tokens.

import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SOFTHSM_MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

/** Path of libsofthsm2.so (SOFTHSM2_MODULE overrides), or undefined if SoftHSM2 is not installed. */
export function findSoftHsmModule(): string | undefined {
  const override = process.env.SOFTHSM2_MODULE;
  if (override) return existsSync(override) ? override : undefined;
  return SOFTHSM_MODULE_CANDIDATES.find((p) => existsSync(p));
}

/** Path of softhsm2-util on PATH, or undefined. */
export function findSoftHsmUtil(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'softhsm2-util');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True if both the PKCS#11 module and softhsm2-util are installed. */
export function softHsmAvailable(): boolean {
  return findSoftHsmModule() !== undefined && findSoftHsmUtil() !== undefined;
}

export interface SoftHsmToken {
  module: string;
  tokenLabel: string;
  /** User PIN. */
  pin: string;
  soPin: string;
  /** Path of the softhsm2.conf (also in process.env.SOFTHSM2_CONF). */
  conf: string;
  /** Deletes the token; the last cleanup removes the directory and restores SOFTHSM2_CONF. Idempotent. */
  cleanup(): Promise<void>;
}

interface TokenDir {
  dir: string;
  conf: string;
  previousConf: string | undefined;
  labels: Set<string>;
}

let tokenDir: TokenDir | undefined;
let created = 0;

async function ensureTokenDir(): Promise<TokenDir> {
  if (tokenDir) return tokenDir;
  const dir = await mkdtemp(join(tmpdir(), 'jpki-softhsm-'));
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(
    conf,
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
  );
  await mkdir(join(dir, 'tokens'), { mode: 0o700 });
  tokenDir = { dir, conf, previousConf: process.env.SOFTHSM2_CONF, labels: new Set() };
  // Must be set before the library is initialised (the first Pkcs11KeyStore).
  process.env.SOFTHSM2_CONF = conf;
  return tokenDir;
}

/**
 * Initialises a fresh SoftHSM2 token in a temporary directory. The first token is labelled
 * "jpki-test", later ones "jpki-test-2", ... unless `label` is given. Throws if SoftHSM2 is missing.
 */
export async function createSoftHsmToken(
  options: { label?: string; pin?: string; soPin?: string } = {},
): Promise<SoftHsmToken> {
  const module = findSoftHsmModule();
  const util = findSoftHsmUtil();
  if (!module || !util)
    throw new Error(
      `SoftHSM2 is not installed (apt-get install softhsm2): ${module ? '' : `no libsofthsm2.so among ${SOFTHSM_MODULE_CANDIDATES.join(', ')}; `}${util ? '' : 'no softhsm2-util on PATH'}`,
    );
  const td = await ensureTokenDir();
  created++;
  const tokenLabel = options.label ?? (created === 1 ? 'jpki-test' : `jpki-test-${created}`);
  if (td.labels.has(tokenLabel))
    throw new Error(`a SoftHSM test token labelled "${tokenLabel}" already exists`);
  const pin = options.pin ?? '1234';
  const soPin = options.soPin ?? '5678';
  const env = { ...process.env, SOFTHSM2_CONF: td.conf };
  await run(util, ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', soPin], {
    env,
  });
  td.labels.add(tokenLabel);
  let cleaned = false;
  return {
    module,
    tokenLabel,
    pin,
    soPin,
    conf: td.conf,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await run(util, ['--delete-token', '--token', tokenLabel], { env }).catch(() => undefined);
      td.labels.delete(tokenLabel);
      if (td.labels.size === 0 && tokenDir === td) {
        tokenDir = undefined;
        if (td.previousConf === undefined) delete process.env.SOFTHSM2_CONF;
        else process.env.SOFTHSM2_CONF = td.previousConf;
        await rm(td.dir, { recursive: true, force: true });
      }
    },
  };
}
