// Migration 0005: the authorised verifiers (署名検証者 / 利用者証明検証者) of src/verifiers/: the registry, its
// append-only status history, the verifiers' credentials (API keys, client certificates) and the metered
// usage of the revocation endpoints.
//
// - verifier_status_history is append-only in the database (triggers refuse UPDATE and DELETE, and
//   TRUNCATE on PostgreSQL), like the audit log: a status is changed by appending a row in the same
//   transaction that changes verifiers.status, never by editing one.
// - API keys are stored as the SHA-256 of their secret; the key id (the public prefix of a key) is the
//   primary key, so a presented key is found with one index probe.
// - Client certificates are registered by their SHA-256 fingerprint (the primary key).
// - verifier_usage holds one counter per verifier, day (JST) and kind; the meter adds to it in batches
//   (INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count).

import { type ColumnDefinitionBuilder, type Migration, sql } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

export function migration0005(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  const pg = dialect === 'postgres';
  const isoDay = (column: string) =>
    pg
      ? sql`${sql.ref(column)} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'`
      : sql`${sql.ref(column)} glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'`;
  const hex = (column: string, length: number) =>
    pg
      ? sql`${sql.ref(column)} ~ ${sql.lit(`^[0-9a-f]{${length}}$`)}`
      : sql`length(${sql.ref(column)}) = ${sql.lit(length)} and ${sql.ref(column)} not glob '*[^0-9a-f]*'`;
  const identity = (c: ColumnDefinitionBuilder) =>
    pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement();

  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('verifiers')
        // Identity / AUTOINCREMENT: ids are never reused, so `verifier:<id>` in the audit log stays unambiguous.
        .addColumn('id', t.int64, identity)
        .addColumn('name', 'text', (c) => c.notNull().check(sql`length(name) between 1 and 200`))
        .addColumn('category', 'text', (c) =>
          c.notNull().check(sql`category in ('administrative-body', 'private-certification-business')`),
        )
        // Calendar days in Japan, both inclusive.
        .addColumn('contract_from', 'text', (c) => c.notNull().check(isoDay('contract_from')))
        .addColumn('contract_to', 'text', (c) => c.notNull().check(isoDay('contract_to')))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('active', 'suspended', 'ended')`),
        )
        .addColumn('status_changed_at', t.int64, (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .addUniqueConstraint('verifiers_name_key', ['name'])
        .addCheckConstraint('verifiers_contract_check', sql`contract_to >= contract_from`)
        .modifyEnd(t.tableEnd)
        .execute();

      await db.schema
        .createTable('verifier_status_history')
        .addColumn('id', t.int64, identity)
        .addColumn('verifier_id', t.int64, (c) => c.notNull().references('verifiers.id'))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('active', 'suspended', 'ended')`),
        )
        // Null for the first entry (registration).
        .addColumn('previous_status', 'text')
        .addColumn('reason', 'text', (c) => c.check(sql`length(reason) <= 500`))
        .addColumn('at', t.int64, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('verifier_status_history_verifier_idx')
        .on('verifier_status_history')
        .columns(['verifier_id', 'id'])
        .execute();

      await db.schema
        .createTable('verifier_api_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey().check(hex('key_id', 16)))
        .addColumn('verifier_id', t.int64, (c) => c.notNull().references('verifiers.id'))
        .addColumn('secret_sha256', 'text', (c) => c.notNull().check(hex('secret_sha256', 64)))
        .addColumn('label', 'text', (c) => c.check(sql`length(label) <= 100`))
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        // Null: the key lasts as long as the contract (which is checked on every request anyway).
        .addColumn('expires_at', t.int64)
        .addColumn('revoked_at', t.int64)
        .addColumn('revoked_by', 'text')
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('verifier_api_keys_verifier_idx')
        .on('verifier_api_keys')
        .column('verifier_id')
        .execute();

      await db.schema
        .createTable('verifier_certificates')
        .addColumn('fingerprint_sha256', 'text', (c) => c.primaryKey().check(hex('fingerprint_sha256', 64)))
        .addColumn('verifier_id', t.int64, (c) => c.notNull().references('verifiers.id'))
        .addColumn('serial', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('not_before', t.int64, (c) => c.notNull())
        .addColumn('not_after', t.int64, (c) => c.notNull())
        .addColumn('der', t.bytes, (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('revoked_at', t.int64)
        .addColumn('revoked_by', 'text')
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('verifier_certificates_verifier_idx')
        .on('verifier_certificates')
        .column('verifier_id')
        .execute();

      await db.schema
        .createTable('verifier_usage')
        .addColumn('verifier_id', t.int64, (c) => c.notNull().references('verifiers.id'))
        .addColumn('day', 'text', (c) => c.notNull().check(isoDay('day')))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('ocsp', 'crl', 'verification')`))
        .addColumn('count', t.int64, (c) => c.notNull().check(sql`count >= 0`))
        .addPrimaryKeyConstraint('verifier_usage_pkey', ['verifier_id', 'day', 'kind'])
        .modifyEnd(t.tableEnd)
        .execute();
      // The operators' view of a month: every verifier's rows of those days.
      await db.schema.createIndex('verifier_usage_day_idx').on('verifier_usage').column('day').execute();

      for (const statement of pg ? postgresTriggers() : sqliteTriggers()) await statement.execute(db);
    },

    async down(db: AnyDb) {
      await db.schema.dropTable('verifier_usage').execute();
      await db.schema.dropTable('verifier_certificates').execute();
      await db.schema.dropTable('verifier_api_keys').execute();
      await db.schema.dropTable('verifier_status_history').execute();
      if (pg) await sql`drop function verifier_status_history_append_only()`.execute(db);
      await db.schema.dropTable('verifiers').execute();
    },
  };
}

function sqliteTriggers() {
  return [
    sql`create trigger verifier_status_history_no_update before update on verifier_status_history
        begin select raise(abort, 'verifier status history is append-only'); end`,
    sql`create trigger verifier_status_history_no_delete before delete on verifier_status_history
        begin select raise(abort, 'verifier status history is append-only'); end`,
  ];
}

function postgresTriggers() {
  return [
    sql`create function verifier_status_history_append_only() returns trigger language plpgsql as $$
        begin
          raise exception 'verifier status history is append-only' using errcode = 'insufficient_privilege';
        end $$`,
    sql`create trigger verifier_status_history_no_update_delete
        before update or delete on verifier_status_history
        for each row execute function verifier_status_history_append_only()`,
    sql`create trigger verifier_status_history_no_truncate before truncate on verifier_status_history
        for each statement execute function verifier_status_history_append_only()`,
  ];
}
