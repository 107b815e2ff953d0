// Migration 0002: the resident register, its append-only history, the outbox that turns register events
// into certificate revocations, the Art. 6 certificate slots and the causes of residents' revocations.
//
// Sizing (130 M residents): residents and register_events carry only the indexes a query needs:
//   - residents: the primary key on resident_id;
//   - register_events: the identity key, a partial unique index on source_event_id (CSV imports have
//     none and cost no entry) and (resident_id, effective_date, id) for history and "facts at time T";
//   - outbox: a partial index on pending rows only, so it stays small however long the history;
//   - certificate_slots: the (resident_id, kind) primary key IS the Art. 6 rule.

import { type ColumnDefinitionBuilder, type Migration, sql } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

export function migration0002(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  const pg = dialect === 'postgres';
  const identity = (c: ColumnDefinitionBuilder) =>
    pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement();
  const sexCheck = sql`sex in ('male', 'female', 'unknown')`;
  const statusCheck = sql`status in ('resident', 'moved-out', 'deceased')`;
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('residents')
        .addColumn('resident_id', 'text', (c) => c.primaryKey().check(sql`length(resident_id) = 11`))
        .addColumn('municipality_code', 'text', (c) => c.notNull().check(sql`length(municipality_code) = 6`))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('name_kana', 'text')
        .addColumn('date_of_birth', 'text')
        .addColumn('sex', 'text', (c) => c.notNull().check(sexCheck))
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('name_substitutes', 'text', (c) => c.notNull())
        .addColumn('address_substitutes', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(statusCheck))
        .addColumn('effective_date', 'text', (c) => c.notNull())
        .addColumn('version', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();

      await db.schema
        .createTable('register_events')
        .addColumn('id', t.int64, identity)
        .addColumn('resident_id', 'text', (c) => c.notNull().references('residents.resident_id'))
        .addColumn('type', 'text', (c) =>
          c
            .notNull()
            .check(
              sql`type in ('registered', 'moved-within', 'moved-in', 'moved-out', 'name-changed', 'address-corrected', 'facts-corrected', 'died')`,
            ),
        )
        .addColumn('effective_date', 'text', (c) => c.notNull())
        .addColumn('changed', 'text', (c) => c.notNull())
        .addColumn('municipality_code', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('name_kana', 'text')
        .addColumn('date_of_birth', 'text')
        .addColumn('sex', 'text', (c) => c.notNull().check(sexCheck))
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('name_substitutes', 'text', (c) => c.notNull())
        .addColumn('address_substitutes', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(statusCheck))
        .addColumn('version', t.int64, (c) => c.notNull())
        .addColumn('late', t.int32, (c) => c.notNull().check(sql`late in (0, 1)`))
        .addColumn('source_event_id', 'text')
        .addColumn('source_hash', 'text')
        .addColumn('import_id', 'text')
        .addColumn('import_row', t.int64)
        .addColumn('recorded_at', t.int64, (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
      // Partial: imported registrations (no source event id) take no entry.
      await db.schema
        .createIndex('register_events_source_event_id_key')
        .on('register_events')
        .column('source_event_id')
        .unique()
        .where(sql.ref('source_event_id'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('register_events_resident_idx')
        .on('register_events')
        .columns(['resident_id', 'effective_date', 'id'])
        .execute();

      await db.schema
        .createTable('outbox')
        .addColumn('id', t.int64, identity)
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('ref_id', t.int64, (c) => c.notNull())
        .addColumn('resident_id', 'text')
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('processed_at', t.int64)
        .addColumn('processed_by', 'text')
        .addColumn('attempts', t.int32, (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', t.int64, (c) => c.notNull())
        .addColumn('last_error', 'text')
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('outbox_pending_idx')
        .on('outbox')
        .columns(['topic', 'id'])
        .where(sql.ref('processed_at'), 'is', null)
        .execute();

      await db.schema
        .createTable('certificate_slots')
        .addColumn('resident_id', 'text', (c) => c.notNull().references('residents.resident_id'))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('sign', 'auth')`))
        .addColumn('serial', t.serial, (c) => c.notNull().references('certificates.serial'))
        .addColumn('facts_version', t.int64, (c) => c.notNull())
        .addColumn('taken_at', t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('certificate_slots_pkey', ['resident_id', 'kind'])
        .modifyEnd(t.tableEnd)
        .execute();

      await db.schema
        .createTable('revocation_causes')
        .addColumn('serial', t.serial, (c) => c.primaryKey().references('certificates.serial'))
        .addColumn('resident_id', 'text', (c) => c.notNull())
        .addColumn('event_id', t.int64, (c) => c.references('register_events.id'))
        .addColumn('cause', 'text', (c) => c.notNull())
        .addColumn('recorded_at', t.int64, (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
    },

    async down(db: AnyDb) {
      await db.schema.dropTable('revocation_causes').execute();
      await db.schema.dropTable('certificate_slots').execute();
      await db.schema.dropTable('outbox').execute();
      await db.schema.dropTable('register_events').execute();
      await db.schema.dropTable('residents').execute();
    },
  };
}
