// Multi-row INSERT without the query builder: building a 1,000-row INSERT with Kysely costs ~10 µs per
// row, more than the database spends on it. SQLite gets one INSERT … VALUES (?,…),(?,…) (statement text
// cached per row count); PostgreSQL gets INSERT … SELECT * FROM unnest($1::text[], …): one parameter per
// column whatever the row count, so the statement is small and planned fast.

import { CompiledQuery } from 'kysely';
import type { Dialect } from '../store/db.ts';
import type { Db } from './tx.ts';

export interface BulkColumn {
  name: string;
  /** PostgreSQL element type of the unnest array: text, int8, int4. */
  pg: 'text' | 'int8' | 'int4';
}

const sqliteText = new Map<string, string>();

/**
 * Inserts `rows` (values in `columns` order) into `table`, with `suffix` appended (ON CONFLICT …,
 * RETURNING …). At most 1,000 rows per call on SQLite (bound-parameter limit).
 */
export async function bulkInsert<R>(
  trx: Db,
  dialect: Dialect,
  table: string,
  columns: readonly BulkColumn[],
  rows: readonly (readonly unknown[])[],
  suffix = '',
): Promise<R[]> {
  if (rows.length === 0) return [];
  const names = columns.map((c) => c.name).join(', ');
  if (dialect === 'postgres') {
    const arrays = columns.map((_, i) => rows.map((r) => r[i] ?? null));
    const unnest = columns.map((c, i) => `$${i + 1}::${c.pg}[]`).join(', ');
    const text = `insert into ${table} (${names}) select * from unnest(${unnest}) ${suffix}`;
    const r = await trx.executeQuery<R>(CompiledQuery.raw(text, arrays));
    return r.rows;
  }
  const key = `${table}|${names}|${rows.length}|${suffix}`;
  let text = sqliteText.get(key);
  if (!text) {
    const one = `(${columns.map(() => '?').join(',')})`;
    text = `insert into ${table} (${names}) values ${Array(rows.length).fill(one).join(',')} ${suffix}`;
    if (sqliteText.size > 64) sqliteText.clear();
    sqliteText.set(key, text);
  }
  const params: unknown[] = [];
  for (const r of rows) for (const v of r) params.push(v ?? null);
  const r = await trx.executeQuery<R>(CompiledQuery.raw(text, params));
  return r.rows;
}
