// Backends for store tests: SQLite always, PostgreSQL when JPKI_TEST_POSTGRES_URL is set.
//
//   import { forEachStore } from '../helpers/db.ts';
//   forEachStore((current) => {
//     it('…', async () => { const { db } = current(); … });
//   });
//
// With JPKI_TEST_POSTGRES_URL set (CI does), PostgreSQL is a required backend: a connection or
// server failure fails the tests, nothing is skipped. Each store is a fresh database: a SQLite file
// in a new temporary directory, or a `jpki_test_<random>` PostgreSQL database created through the
// admin URL; close() removes it.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';
import { type OpenDatabaseOptions, openDatabase, type Store } from '../../src/store/db.ts';

export type Backend = 'sqlite' | 'postgres';

export const POSTGRES_URL_ENV = 'JPKI_TEST_POSTGRES_URL';

/** The backends to run: 'sqlite', plus 'postgres' when JPKI_TEST_POSTGRES_URL is set. */
export function testStores(): Backend[] {
  return process.env[POSTGRES_URL_ENV] ? ['sqlite', 'postgres'] : ['sqlite'];
}

export interface TestStore extends Store {
  backend: Backend;
  /** How to open the same database again (e.g. a second process, or re-running migrations). */
  options: OpenDatabaseOptions;
  /** Closes the store (and any reopened ones must be closed by their opener) and deletes the database. */
  close(): Promise<void>;
}

/** Opens a store on a fresh, empty, migrated database of the given backend. */
export async function openTestStore(backend: Backend): Promise<TestStore> {
  return backend === 'sqlite' ? openSqlite() : openPostgres();
}

async function openSqlite(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), 'jpki-store-'));
  const options = { sqlitePath: join(dir, 'ca.sqlite') };
  let store: Store;
  try {
    store = await openDatabase(options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return withCleanup(store, 'sqlite', options, async () => rmSync(dir, { recursive: true, force: true }));
}

async function openPostgres(): Promise<TestStore> {
  const adminUrl = process.env[POSTGRES_URL_ENV];
  if (!adminUrl) throw new Error(`${POSTGRES_URL_ENV} is not set`);
  const name = `jpki_test_${randomBytes(8).toString('hex')}`;
  await admin(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const options = { databaseUrl: url.toString() };
  const drop = () => admin(adminUrl, `drop database if exists ${name} with (force)`);
  let store: Store;
  try {
    store = await openDatabase(options);
  } catch (err) {
    await drop();
    throw err;
  }
  return withCleanup(store, 'postgres', options, drop);
}

async function admin(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function withCleanup(
  store: Store,
  backend: Backend,
  options: OpenDatabaseOptions,
  remove: () => Promise<void>,
): TestStore {
  let closed: Promise<void> | undefined;
  return {
    ...store,
    backend,
    options,
    close() {
      closed ??= store.close().finally(remove);
      return closed;
    },
  };
}

export interface ForEachStoreOptions {
  /** 'test' (default): a fresh database for every test; 'suite': one per backend, shared by its tests. */
  scope?: 'test' | 'suite';
}

/**
 * Declares `define`'s tests once per backend, in a describe block named after it. `current()` gives
 * the open store inside tests (and in hooks declared by `define`).
 */
export function forEachStore(
  define: (current: () => TestStore, backend: Backend) => void,
  opts: ForEachStoreOptions = {},
): void {
  describe.each(testStores())('%s', (backend) => {
    let store: TestStore | undefined;
    const [before, after] = opts.scope === 'suite' ? [beforeAll, afterAll] : [beforeEach, afterEach];
    before(async () => {
      store = await openTestStore(backend);
    });
    after(async () => {
      await store?.close();
      store = undefined;
    });
    define(() => {
      if (!store) throw new Error('no open test store (use it inside a test or hook)');
      return store;
    }, backend);
  });
}
