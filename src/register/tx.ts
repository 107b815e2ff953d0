// Write transactions for the register. On SQLite a transaction that reads before it writes can fail
// with SQLITE_BUSY_SNAPSHOT when another process commits in between (a WAL reader cannot upgrade a stale
// snapshot), so register transactions start with BEGIN IMMEDIATE: the write lock first, waiting up to
// busy_timeout. On PostgreSQL they are ordinary READ COMMITTED transactions; rows are locked explicitly.

import { type Kysely, sql } from 'kysely';
import type { Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { asTransaction } from '../store/transaction.ts';

export type Db = Kysely<Database>;

export async function writeTransaction<T>(store: Store, fn: (trx: Db) => Promise<T>): Promise<T> {
  if (store.dialect === 'postgres') return store.db.transaction().execute(fn);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await asTransaction(conn, () => fn(conn));
      await sql`commit`.execute(conn);
      return result;
    } catch (e) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw e;
    }
  });
}
