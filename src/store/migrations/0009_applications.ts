// Migration 0009: signed electronic applications (docs/applications.md). An application is stored
// with its evidence in one row; one part per receiving agency (the one-stop model) with its status;
// every action on a part is a row of application_part_events; agencies authenticate with API keys.

import { type Migration, sql } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

export function migration0009(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  const pg = dialect === 'postgres';
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('applications')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('procedure_id', 'text', (c) => c.notNull())
        // A replay with the same key finds the first submission; the unique key makes two cases impossible.
        .addColumn('idempotency_key', 'text', (c) => c.notNull().unique())
        .addColumn('request_sha256', 'text', (c) => c.notNull())
        .addColumn('resident_ref', 'text')
        .addColumn('form_json', 'text', (c) => c.notNull())
        .addColumn('signature_format', 'text', (c) =>
          c.notNull().check(sql`signature_format in ('cms', 'xml')`),
        )
        // The signature as received plus the gateway's signature time stamp (CAdES-T / XAdES-T).
        .addColumn('evidence', t.bytes, (c) => c.notNull())
        .addColumn('signer_serial', 'text', (c) => c.notNull())
        .addColumn('signer_subject', 'text', (c) => c.notNull())
        .addColumn('report_json', 'text', (c) => c.notNull())
        .addColumn('revocation_json', 'text', (c) => c.notNull())
        .addColumn('timestamp_time', t.int64, (c) => c.notNull())
        .addColumn('received_at', t.int64, (c) => c.notNull())
        .addColumn('fee', t.int64, (c) => c.notNull())
        .addColumn('receipt_json', 'text', (c) => c.notNull())
        .addColumn('receipt_token', t.bytes, (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('applications_resident_ref_idx')
        .on('applications')
        .columns(['resident_ref', 'received_at'])
        .where(sql.ref('resident_ref'), 'is not', null)
        .execute();

      await db.schema
        .createTable('application_parts')
        .addColumn('application_id', 'text', (c) => c.notNull().references('applications.id'))
        .addColumn('part_id', 'text', (c) => c.notNull())
        .addColumn('agency_id', 'text', (c) => c.notNull())
        .addColumn('fee', t.int64, (c) => c.notNull())
        .addColumn('status', 'text', (c) =>
          c
            .notNull()
            .check(sql`status in ('received', 'accepted', 'correction-requested', 'rejected', 'completed')`),
        )
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('application_parts_pkey', ['application_id', 'part_id'])
        .modifyEnd(t.tableEnd)
        .execute();
      // An agency's inbox: its parts, newest first.
      await db.schema
        .createIndex('application_parts_agency_idx')
        .on('application_parts')
        .columns(['agency_id', 'updated_at'])
        .execute();

      await db.schema
        .createTable('application_part_events')
        .addColumn('id', t.int64, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('application_id', 'text', (c) => c.notNull().references('applications.id'))
        .addColumn('part_id', 'text', (c) => c.notNull())
        .addColumn('at', t.int64, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('application_part_events_app_idx')
        .on('application_part_events')
        .columns(['application_id', 'id'])
        .execute();

      await db.schema
        .createTable('agency_api_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey())
        .addColumn('agency_id', 'text', (c) => c.notNull())
        .addColumn('secret_sha256', 'text', (c) => c.notNull())
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('revoked_at', t.int64)
        .modifyEnd(t.tableEnd)
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable('agency_api_keys').execute();
      await db.schema.dropTable('application_part_events').execute();
      await db.schema.dropTable('application_parts').execute();
      await db.schema.dropTable('applications').execute();
    },
  };
}
