// Migration 0007: pre-signed OCSP responses (docs/ocsp.md). One row per certificate serial, written by
// the batch signer and by a revocation (in its transaction); read by the responders by primary key.
// Numbered 0007 so that a concurrent 0006 (CRL partitions) can be applied before it.

import type { Migration } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

export function migration0007(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('ocsp_responses')
        .addColumn('serial', t.serial, (c) => c.primaryKey().references('certificates.serial'))
        .addColumn('ca', 'text', (c) => c.notNull())
        .addColumn('der', t.bytes, (c) => c.notNull())
        .addColumn('this_update', t.int64, (c) => c.notNull())
        .addColumn('next_update', t.int64, (c) => c.notNull())
        // 'good' or 'r<revokedAt ms>:<reason>': what the response says.
        .addColumn('status_key', 'text', (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable('ocsp_responses').execute();
    },
  };
}
