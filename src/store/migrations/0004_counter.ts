// Migration 0004: the municipal counter workflow (src/counter/workflow.ts): cases, receipt sequences and
// the per-certificate issuance rows that the statistics count (src/counter/stats.ts).
//
// Sizing: counter_issuances grows with the certificates issued at counters (up to 2 per resident); it is
// indexed by (day, municipality_code) for the statistics and nothing else. counter_cases is looked up by
// id and by (resident_id) (loss reports, PIN resets find the resident's card).

import { type Migration, sql } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

export function migration0004(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('counter_cases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) =>
          c.notNull().check(sql`type in ('issuance', 'renewal', 'pin-reset')`),
        )
        .addColumn('state', 'text', (c) =>
          c
            .notNull()
            .check(
              sql`state in ('opened', 'identity-verified', 'fee-paid', 'keys-generated', 'partially-issued', 'issued', 'completed')`,
            ),
        )
        .addColumn('resident_id', 'text', (c) => c.notNull())
        .addColumn('municipality_code', 'text', (c) => c.notNull().check(sql`length(municipality_code) = 6`))
        .addColumn('opened_by', t.int64, (c) => c.notNull().references('staff.id'))
        .addColumn('opened_at', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addColumn('identity_documents', 'text')
        .addColumn('identity_verified_by', t.int64, (c) => c.references('staff.id'))
        .addColumn('identity_verified_at', t.int64)
        .addColumn('fee_amount', t.int64, (c) => c.check(sql`fee_amount >= 0`))
        .addColumn('fee_method', 'text')
        .addColumn('receipt_number', 'text', (c) => c.unique())
        .addColumn('fee_paid_by', t.int64, (c) => c.references('staff.id'))
        .addColumn('fee_paid_at', t.int64)
        .addColumn('card_id', 'text')
        .addColumn('sign_csr', 'text')
        .addColumn('auth_csr', 'text')
        .addColumn('sign_serial', t.serial)
        .addColumn('auth_serial', t.serial)
        .addColumn('completed_at', t.int64)
        .addColumn('last_error', 'text')
        .addColumn('last_error_at', t.int64)
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('counter_cases_resident_idx')
        .on('counter_cases')
        .columns(['resident_id', 'opened_at'])
        .execute();

      await db.schema
        .createTable('counter_receipt_sequences')
        .addColumn('municipality_code', 'text', (c) => c.notNull())
        .addColumn('year', t.int32, (c) => c.notNull())
        .addColumn('last_number', t.int64, (c) => c.notNull().check(sql`last_number >= 1`))
        .addPrimaryKeyConstraint('counter_receipt_sequences_pkey', ['municipality_code', 'year'])
        .modifyEnd(t.tableEnd)
        .execute();

      await db.schema
        .createTable('counter_issuances')
        .addColumn('serial', t.serial, (c) => c.primaryKey().references('certificates.serial'))
        .addColumn('case_id', 'text', (c) => c.notNull().references('counter_cases.id'))
        .addColumn('municipality_code', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('sign', 'auth')`))
        .addColumn('renewal', t.int32, (c) => c.notNull().check(sql`renewal in (0, 1)`))
        .addColumn('issued_at', t.int64, (c) => c.notNull())
        .addColumn('day', 'text', (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('counter_issuances_day_idx')
        .on('counter_issuances')
        .columns(['day', 'municipality_code'])
        .execute();
    },

    async down(db: AnyDb) {
      await db.schema.dropTable('counter_issuances').execute();
      await db.schema.dropTable('counter_receipt_sequences').execute();
      await db.schema.dropTable('counter_cases').execute();
    },
  };
}
