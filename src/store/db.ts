// Opening the CA database: SQLite (better-sqlite3, the embedded default) or PostgreSQL (when a
// DATABASE_URL is given). Migrations run on every open.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { type Dialect, InCodeMigrationProvider } from './migrations.ts';
import type { Database } from './schema.ts';

export type { Dialect } from './migrations.ts';

export interface OpenDatabaseOptions {
  /** SQLite file (created with its directory if missing). Used when no databaseUrl is given. */
  sqlitePath?: string;
  /** postgres://… connection string; when set it wins over sqlitePath. */
  databaseUrl?: string;
}

export interface Store {
  db: Kysely<Database>;
  /**
   * For long reads (streaming a CRL's revocations). On SQLite a second, read-only connection:
   * Kysely's SQLite driver has one connection, and a stream holding it would make every other
   * query (OCSP lookups) wait until the CRL is built. WAL lets the two run side by side. On
   * PostgreSQL the pool already gives the stream its own connection, so this is `db`.
   */
  reader: Kysely<Database>;
  dialect: Dialect;
  /** Closes the SQLite file or ends the PostgreSQL pool. Idempotent. */
  close(): Promise<void>;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Opens (creating if needed) the CA database and migrates it to the latest schema.
 * Throws MigrationError, with the store already closed, if a migration fails.
 */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Store> {
  if (opts.databaseUrl) return open('postgres', postgresDb(opts.databaseUrl));
  const path = opts.sqlitePath;
  if (path)
    return open(
      'sqlite',
      sqliteDb(path),
      path === ':memory:' ? undefined : () => sqliteDb(path, { readonly: true }),
    );
  throw new TypeError('openDatabase: give sqlitePath or databaseUrl');
}

async function open(
  dialect: Dialect,
  db: Kysely<Database>,
  openReader?: () => Kysely<Database>,
): Promise<Store> {
  let closed: Promise<void> | undefined;
  const store: Store = {
    db,
    reader: db,
    dialect,
    close: () => {
      closed ??= Promise.all([db.destroy(), store.reader === db ? undefined : store.reader.destroy()]).then(
        () => undefined,
      );
      return closed;
    },
  };
  try {
    await migrate(store);
    // The reader opens after migrations, so the file and its tables exist.
    if (openReader) store.reader = openReader();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

async function migrate({ db, dialect }: Store): Promise<void> {
  const migrator = new Migrator({ db, provider: new InCodeMigrationProvider(dialect) });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const what = failed ? `migration ${failed}` : 'migrations';
    const detail = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`${dialect} database: ${what} failed: ${detail}`, { cause: error });
  }
}

function sqliteDb(path: string, opts: { readonly?: boolean } = {}): Kysely<Database> {
  if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(path), { recursive: true });
  const database = new SQLite(path, { readonly: !!opts.readonly });
  try {
    // WAL: readers never block the writer; NORMAL is durable across process crashes (an OS crash
    // or power loss can lose the last transactions, not corrupt the file).
    if (!opts.readonly) database.pragma('journal_mode = WAL');
    if (!opts.readonly) database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
    database.pragma('busy_timeout = 5000');
  } catch (err) {
    database.close();
    throw err;
  }
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
}

// BIGINT (int8, oid 20) comes back from pg as a string by default. Every int8 in this schema is a
// millisecond instant, a revocations.id or a CRL number, all far below 2^53, so they are parsed as JS
// numbers: one code path for both dialects. A CRL number could in principle (RFC 5280 allows 20 octets)
// exceed 2^53; we never issue one that large. Should a value ever be out of range it comes back as a
// bigint, which fails loudly where it is used (mixing bigint and number throws), rather than being
// silently rounded. The parser is set on this pool only, not in pg's global registry; pg hands the
// client's parsers to a Cursor created without its own, so .stream() gets numbers too (tested).
const INT8_OID = 20;
function parseInt8(value: string): number | bigint {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : BigInt(value);
}
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function postgresDb(url: string): Kysely<Database> {
  const pool = new pg.Pool({ connectionString: url, types: pgTypes });
  // An idle client losing its connection (server restart, failover) emits 'error' on the pool; without
  // a listener that would crash the process. The pool drops the client; the next query reconnects.
  pool.on('error', (err) => {
    process.emitWarning(`PostgreSQL idle client error: ${err.message}`, 'DatabaseWarning');
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
}
