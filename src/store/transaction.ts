// Which Kysely handles are already inside a transaction.
//
// Kysely marks its own transactions (`isTransaction`), but a SQLite write transaction opened by hand with
// BEGIN IMMEDIATE on one connection (src/register/tx.ts) is a plain connection to Kysely. Code that
// joins the caller's transaction when there is one (the audit log) asks here, so it joins those too
// instead of trying to open a nested transaction.

const joined = new WeakSet<object>();

/** Marks a connection as inside a transaction for the duration of `fn`. */
export async function asTransaction<T>(conn: object, fn: () => Promise<T>): Promise<T> {
  joined.add(conn);
  try {
    return await fn();
  } finally {
    joined.delete(conn);
  }
}

export function inTransaction(db: { readonly isTransaction: boolean }): boolean {
  return db.isTransaction || joined.has(db);
}
