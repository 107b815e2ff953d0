// Opening the CA database: SQLite (better-sqlite3, the embedded default) or PostgreSQL (when a
// DATABASE_URL is given). Migrations run on every open.

import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  Migrator,
  PostgresDialect,
  type QueryResult,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  sql,
} from 'kysely';
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
  const provider = new InCodeMigrationProvider(dialect);
  if (dialect === 'postgres') return migrateWith(new Migrator({ db, provider }), dialect);
  // Kysely's migration lock is a no-op on SQLite, so processes opening a fresh file together would all
  // run the same migrations (and all but one fail). Here the migrator runs inside BEGIN IMMEDIATE: the
  // others wait for the write lock (busy_timeout), then find nothing pending. A failed migration rolls
  // back whole. A migrated file is recognised without taking the lock.
  const pending = await new Migrator({ db, provider }).getMigrations();
  if (pending.every((m) => m.executedAt !== undefined)) return;
  await db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      await migrateWith(new Migrator({ db: conn, provider }), dialect);
      await sql`commit`.execute(conn);
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => {});
      throw err;
    }
  });
}

async function migrateWith(migrator: Migrator, dialect: Dialect): Promise<void> {
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
    database.pragma('busy_timeout = 5000');
    // WAL: readers never block the writer; NORMAL is durable across process crashes (an OS crash
    // or power loss can lose the last transactions, not corrupt the file).
    if (!opts.readonly) retryWhileBusy(() => database.pragma('journal_mode = WAL'));
    if (!opts.readonly) database.pragma('synchronous = NORMAL');
    // The reader only scans (a full CRL, the audit chain), reading each page once: better-sqlite3's
    // default cache of 16 MB would only hold pages that are not asked for again.
    if (opts.readonly) database.pragma('cache_size = -2000');
    database.pragma('foreign_keys = ON');
  } catch (err) {
    database.close();
    throw err;
  }
  const checkpointer =
    opts.readonly || path === ':memory:' ? undefined : new BackgroundCheckpointer(path, database);
  return new Kysely<Database>({ dialect: new CachingSqliteDialect(database, checkpointer) });
}

/**
 * Runs fn again while SQLite answers SQLITE_BUSY, for up to the busy timeout. Switching a new file to
 * WAL while another process sets it up fails at once, without the busy handler (the migration race).
 */
function retryWhileBusy(fn: () => void, timeoutMs = 5000): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fn();
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // opening is synchronous
    }
  }
}

// Kysely's SQLite driver prepares every statement again on every query: `prepare` was 12 % of the CPU
// of an OCSP responder under load, and a third of the cost of the status lookup. This dialect is
// Kysely's, with one difference in the connection: statements are prepared once per SQL text and
// reused (SQLite re-prepares a statement itself when the schema changes), and a stream hands over
// its rows in chunks instead of one at a time. The single-connection mutex, transactions and
// savepoints are Kysely's own (SqliteDriver).

/** Most distinct SQL texts whose prepared statements are kept (queries with IN lists vary). */
const STATEMENT_CACHE_SIZE = 256;

class CachingSqliteDialect extends SqliteDialect {
  readonly #database: SQLite.Database;
  readonly #checkpointer: BackgroundCheckpointer | undefined;
  constructor(database: SQLite.Database, checkpointer?: BackgroundCheckpointer) {
    super({ database });
    this.#database = database;
    this.#checkpointer = checkpointer;
  }
  override createDriver(): Driver {
    return new CachingSqliteDriver(this.#database, this.#checkpointer);
  }
}

class CachingSqliteDriver extends SqliteDriver {
  readonly #connection: CachingSqliteConnection;
  readonly #checkpointer: BackgroundCheckpointer | undefined;
  constructor(database: SQLite.Database, checkpointer?: BackgroundCheckpointer) {
    super({ database });
    this.#connection = new CachingSqliteConnection(database, checkpointer);
    this.#checkpointer = checkpointer;
  }
  /** Kysely's mutex (the one connection, one user at a time), then our connection. */
  override async acquireConnection(): Promise<DatabaseConnection> {
    await super.acquireConnection();
    return this.#connection;
  }
  override async destroy(): Promise<void> {
    // The checkpointer's connection closes first: the last one to close checkpoints and removes the WAL.
    await this.#checkpointer?.stop();
    await super.destroy();
  }
}

// WAL checkpoints off the event loop. With synchronous=NORMAL a commit only appends to the WAL; a
// checkpoint copies the WAL back into the database file and waits for two fsyncs. SQLite runs one
// on the connection that commits, every 1,000 pages: about 35 µs of waiting per issuance on
// average, and a stall of a fifth of a second after a 47 MB CRL. Once a store has done
// CHECKPOINT_AFTER_WRITES writes (a server, not a CLI command), a worker thread with its own
// connection runs PASSIVE checkpoints (which never block readers or the writer) every
// CHECKPOINT_INTERVAL_MS instead, and the writer's automatic checkpoints are turned off. If the worker
// fails, they are turned back on. Durability is unchanged: the same checkpoints, on another thread.

const CHECKPOINT_AFTER_WRITES = 500;
const CHECKPOINT_INTERVAL_MS = 100;
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // locked for the moment: next time
  }
}, workerData.intervalMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

class BackgroundCheckpointer {
  #writes = 0;
  #worker: Worker | undefined;
  /** Stopped, or the worker failed once: SQLite checkpoints on commit again, for good. */
  #stopped = false;

  constructor(
    private readonly path: string,
    private readonly db: SQLite.Database,
  ) {}

  /** Counts a write; the worker starts at the CHECKPOINT_AFTER_WRITES-th. */
  noteWrite(): void {
    if (++this.#writes === CHECKPOINT_AFTER_WRITES) this.start();
  }

  /** Starts the worker now (before a large write, so that its checkpoint is not run on commit). */
  start(): void {
    if (this.#worker || this.#stopped) return;
    this.#writes = Math.max(this.#writes, CHECKPOINT_AFTER_WRITES);
    let worker: Worker;
    try {
      worker = new Worker(CHECKPOINTER_SOURCE, {
        eval: true,
        workerData: {
          module: createRequire(import.meta.url).resolve('better-sqlite3'),
          path: this.path,
          intervalMs: CHECKPOINT_INTERVAL_MS,
        },
      });
    } catch {
      return; // SQLite keeps checkpointing on commit
    }
    worker.unref();
    const fallBack = () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#stopped = true;
      if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    };
    worker.once('error', (err) => {
      process.emitWarning(`SQLite checkpoint thread failed: ${err.message}`, 'DatabaseWarning');
      fallBack();
    });
    worker.once('exit', fallBack);
    this.#worker = worker;
    this.db.pragma('wal_autocheckpoint = 0');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.ref(); // until it has closed its connection
    worker.postMessage('stop');
    await exited;
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
  }
}

/**
 * Runs one statement on SQLite with its parameters bound first, then calls `afterBind`, then runs
 * it: better-sqlite3 copies a bound blob, so the caller can free its own copy of a large one (a
 * 47 MB CRL) before SQLite builds the row, which is another copy. In the caller's transaction if
 * `db` is one. Returns false, having done nothing, when `db` is not SQLite.
 */
export async function runSqliteAfterBind(
  // biome-ignore lint/suspicious/noExplicitAny: any Kysely handle, transaction or not.
  db: Kysely<any>,
  query: CompiledQuery,
  afterBind: () => void,
): Promise<boolean> {
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return false;
  await db.getExecutor().provideConnection(async (connection) => {
    if (!(connection instanceof CachingSqliteConnection)) throw new Error('not an open-jpki SQLite store');
    connection.runAfterBind(query, afterBind);
  });
  return true;
}

class CachingSqliteConnection implements DatabaseConnection {
  readonly #db: SQLite.Database;
  readonly #checkpointer: BackgroundCheckpointer | undefined;
  readonly #statements = new Map<string, SQLite.Statement>();
  constructor(db: SQLite.Database, checkpointer?: BackgroundCheckpointer) {
    this.#db = db;
    this.#checkpointer = checkpointer;
  }

  #statement(sql: string): SQLite.Statement {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.clear();
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const stmt = this.#statement(compiledQuery.sql);
    const parameters = compiledQuery.parameters as unknown[];
    if (stmt.reader) return Promise.resolve({ rows: stmt.all(parameters) as R[] });
    const { changes, lastInsertRowid } = stmt.run(parameters);
    this.#checkpointer?.noteWrite();
    return Promise.resolve({
      numAffectedRows: BigInt(changes),
      insertId: BigInt(lastInsertRowid),
      rows: [],
    });
  }

  runAfterBind(query: CompiledQuery, afterBind: () => void): void {
    // A statement of its own: bind() ties the parameters to it for good.
    const stmt = this.#db.prepare(query.sql).bind(query.parameters as unknown[]);
    afterBind();
    // A large row (this is for CRLs): its checkpoint, tens of megabytes and two fsyncs, is not
    // run on this thread at commit.
    this.#checkpointer?.start();
    stmt.run();
  }

  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize = 1000,
  ): AsyncIterableIterator<QueryResult<R>> {
    // A statement of its own: a cached one could be asked to run while this one iterates.
    const stmt = this.#db.prepare(compiledQuery.sql);
    if (!stmt.reader) throw new Error('Sqlite driver only supports streaming of select queries');
    let rows: R[] = [];
    for (const row of stmt.iterate(compiledQuery.parameters as unknown[])) {
      rows.push(row as R);
      if (rows.length >= chunkSize) {
        yield { rows };
        rows = [];
      }
    }
    if (rows.length > 0) yield { rows };
  }
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
  // A session that ends while a query runs (a backend crash, pg_terminate_backend, a failover) makes
  // its client emit 'error' too. The pool listens only while a client is idle, and an unheard 'error'
  // would end the process. The query itself already fails with the error, and the pool drops the
  // dead client (a query that gets it first fails too, as after any lost connection).
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
}
