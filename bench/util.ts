// Shared helpers of the benchmarks: statistics, tables, machine info, throwaway authorities,
// PKCS#10 requests, PostgreSQL databases and child processes.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Authority } from '../src/authority/authority.ts';
import { bitString, explicit, integer, NULL, oid, sequence, set, utf8String } from '../src/core/der.ts';
import { OID } from '../src/core/oids.ts';
import { decodePem } from '../src/core/pem.ts';

export const PASSPHRASE = 'open-jpki benchmark passphrase';
export const ENV: NodeJS.ProcessEnv = { JPKI_KEY_PASSPHRASE: PASSPHRASE };
export const POSTGRES_ADMIN_URL =
  process.env.JPKI_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const BIN_BENCH = fileURLToPath(new URL('../bin/bench.js', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Statistics and output

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const round = (x: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Prints an aligned text table; numbers are right-aligned. */
export function printTable(title: string, head: string[], rows: (string | number)[][]): void {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) =>
    r
      .map((c, i) => {
        const s = String(c ?? '');
        return typeof rows[0]?.[i] === 'number' ? s.padStart(widths[i]!) : s.padEnd(widths[i]!);
      })
      .join('  ');
  process.stdout.write(`\n${title}\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of cells.slice(1)) process.stdout.write(`${line(r)}\n`);
  process.stdout.write('\n');
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toLocaleString('en-US', { maximumFractionDigits: Math.abs(n) < 10 ? 2 : 1 });
}

export const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

/** Megabyte as in the targets: 10^6 bytes. */
export const MB = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Machine

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  openssl: string;
  nodeOpenssl: string;
  sqlite: string;
  postgres?: string;
  /** Durability settings that decide the cost of a PostgreSQL commit. */
  postgresSettings?: Record<string, string>;
  /** What db.ts sets on every SQLite store. */
  sqliteSettings: string;
  platform: string;
  date: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // not Linux
  }
  let openssl = 'unknown';
  try {
    openssl = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    // no openssl CLI
  }
  const { default: SQLite } = await import('better-sqlite3');
  const db = new SQLite(':memory:');
  const sqlite = (db.prepare('select sqlite_version() as v').get() as { v: string }).v;
  db.close();
  let postgres: string | undefined;
  let postgresSettings: Record<string, string> | undefined;
  try {
    postgres = await adminQuery<{ server_version: string }>('show server_version').then(
      (r) => r[0]?.server_version,
    );
    const rows = await adminQuery<{ name: string; setting: string }>(
      "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers') order by name",
    );
    postgresSettings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } catch {
    // no PostgreSQL
  }
  return {
    cpuModel,
    cores: cpus().length,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    openssl,
    nodeOpenssl: process.versions.openssl ?? 'unknown',
    sqlite,
    postgres,
    postgresSettings,
    sqliteSettings: 'journal_mode=WAL, synchronous=NORMAL (src/store/db.ts)',
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------
// Throwaway authorities

export interface BenchAuthority {
  dir: string;
  /** PEM files of the data directory. */
  certPath: (id: 'root' | 'sign' | 'auth' | 'sign-ocsp' | 'auth-ocsp') => string;
  cleanup: () => void;
}

/** Creates a new authority (RSA-2048, software keys) in a fresh temporary directory. */
export async function createAuthority(prefix = 'jpki-bench-'): Promise<BenchAuthority> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  await Authority.init({ dataDir: dir, env: ENV, baseUrl: 'http://127.0.0.1:8080' });
  return {
    dir,
    certPath: (id) => join(dir, 'certs', `${id}.pem`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The decrypted private key of a CA or OCSP signer, for handing to openssl. */
export function decryptKey(dir: string, label: string): KeyObject {
  const pem = readFileSync(join(dir, 'keys', `jpki-${label}.key.pem`), 'utf8');
  return createPrivateKey({ key: pem, format: 'pem', passphrase: PASSPHRASE });
}

export function readCertDer(path: string): Buffer {
  return decodePem(readFileSync(path, 'utf8'), ['CERTIFICATE']);
}

// ---------------------------------------------------------------------------------------------
// PKCS#10 requests

/**
 * `count` distinct PKCS#10 requests (different subjects) for ONE freshly generated RSA-2048 key,
 * built with the DER writer and signed with node:crypto: generating a key per request would take
 * minutes, and the authority only takes the public key from the request anyway.
 */
export function makeCsrs(count: number): Buffer[] {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const sigAlg = sequence(oid(OID.sha256WithRSAEncryption), NULL);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const name = sequence(
      set(sequence(oid('2.5.4.3'), utf8String(`bench-${i}-${randomBytes(4).toString('hex')}`))),
    );
    const info = sequence(integer(0), name, spki, explicit(0));
    out.push(sequence(info, sigAlg, bitString(sign('sha256', info, privateKey))));
  }
  return out;
}

export const FACTS = {
  name: '山田 太郎',
  dateOfBirth: '1980-04-01',
  sex: 'male' as const,
  address: '東京都千代田区霞が関2丁目1番2号',
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export async function adminQuery<T extends pg.QueryResultRow>(statement: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query<T>(statement)).rows;
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  url: string;
  name: string;
  drop: () => Promise<void>;
}

/** A fresh, empty PostgreSQL database `jpki_bench_<random>`; drop() removes it. */
export async function createPostgresDatabase(): Promise<BenchDatabase> {
  const name = `jpki_bench_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

export async function postgresAvailable(): Promise<boolean> {
  try {
    await adminQuery('select 1');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Starts `node bin/bench.js <args>` with stdout piped; stderr goes to ours. */
export function spawnBenchChild(args: string[], opts: { execArgv?: string[] } = {}): ChildProcess {
  return spawn(process.execPath, [...(opts.execArgv ?? []), BIN_BENCH, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Resolves with the first stdout line of `child` that parses as JSON. */
export function firstJsonLine<T>(child: ChildProcess, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('child did not answer in time')), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.startsWith('{')) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          resolve(JSON.parse(line) as T);
          return;
        }
        nl = buf.indexOf('\n');
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`child exited (code ${code}, signal ${sig}) before answering`));
    });
  });
}

export function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
