// A real authority for adapter tests (HTTP, CLI): real keys, real certificates, a real store.
//
//   const ta = await createTestAuthority({ backend: 'sqlite' });   // or 'postgres'
//   … ta.authority.issue(…) …
//   await ta.close();                                             // closes, drops the PG database, removes dir
//
// Init generates five RSA keys (about a second): create one per describe block, not per test.
// With backend 'postgres', JPKI_TEST_POSTGRES_URL must be set: a fresh `jpki_test_<random>` database
// is created through that admin URL and dropped again by close().

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Authority } from '../../src/authority/authority.ts';
import { type CaCertificateId, dataPaths } from '../../src/authority/config.ts';
import type { KeyAlgorithm } from '../../src/core/signer.ts';
import { type Backend, POSTGRES_URL_ENV } from './db.ts';

export const TEST_PASSPHRASE = 'test-passphrase-123';

/** The environment the test authorities are created and opened with. */
export function testEnv(): NodeJS.ProcessEnv {
  return { JPKI_KEY_PASSPHRASE: TEST_PASSPHRASE };
}

export interface TestPostgresDatabase {
  /** Connection URL of the new, empty database. */
  url: string;
  name: string;
  /** Drops the database (terminating leftover connections). Idempotent. */
  drop(): Promise<void>;
}

/** Creates a fresh, empty PostgreSQL database through the admin URL in JPKI_TEST_POSTGRES_URL. */
export async function createTestPostgresDatabase(): Promise<TestPostgresDatabase> {
  const adminUrl = process.env[POSTGRES_URL_ENV];
  if (!adminUrl) throw new Error(`${POSTGRES_URL_ENV} is not set`);
  const name = `jpki_test_${randomBytes(8).toString('hex')}`;
  await adminQuery(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop() {
      dropped ??= adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
      return dropped;
    },
  };
}

async function adminQuery(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export interface TestAuthority {
  authority: Authority;
  backend: Backend;
  /** The data directory (keys, certs, secrets, and the SQLite file for 'sqlite'). */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** PostgreSQL URL for 'postgres', undefined for 'sqlite'. */
  databaseUrl: string | undefined;
  /** The bearer token of the operator API, from DATA/secrets/operator-token. */
  operatorToken: string;
  /** PEM text of a CA or OCSP signer certificate file in DATA/certs. */
  certPem(id: CaCertificateId): string;
  /** Path of a file in DATA/certs. */
  certPath(id: CaCertificateId): string;
  /** Closes the authority, drops the PostgreSQL database, removes the directory. Idempotent. */
  close(): Promise<void>;
}

/** Initialises a new authority in a temporary directory and opens it on the given backend. */
export async function createTestAuthority(
  opts: {
    algorithm?: KeyAlgorithm;
    backend?: Backend;
    baseUrl?: string;
    /** CRL partitions per issuing CA; default 1 (one CRL per CA, what most tests fetch and check). */
    crlPartitions?: number;
  } = {},
): Promise<TestAuthority> {
  const backend = opts.backend ?? 'sqlite';
  const dir = mkdtempSync(join(tmpdir(), 'jpki-authority-'));
  const env = testEnv();
  let pgDb: TestPostgresDatabase | undefined;
  let authority: Authority | undefined;
  try {
    await Authority.init({
      dataDir: dir,
      algorithm: opts.algorithm,
      baseUrl: opts.baseUrl,
      crlPartitions: opts.crlPartitions ?? 1,
      env,
    });
    if (backend === 'postgres') pgDb = await createTestPostgresDatabase();
    authority = await Authority.open(dir, { env, databaseUrl: pgDb?.url });
  } catch (err) {
    await pgDb?.drop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const paths = dataPaths(dir);
  const opened = authority;
  let closed: Promise<void> | undefined;
  return {
    authority: opened,
    backend,
    dir,
    env,
    databaseUrl: pgDb?.url,
    operatorToken: readFileSync(paths.operatorTokenFile, 'utf8').trim(),
    certPem: (id) => readFileSync(paths.cert(id), 'utf8'),
    certPath: (id) => paths.cert(id),
    close() {
      closed ??= (async () => {
        try {
          await opened.close();
        } finally {
          await pgDb?.drop();
          rmSync(dir, { recursive: true, force: true });
        }
      })();
      return closed;
    },
  };
}
