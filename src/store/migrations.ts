// Schema migrations, kept in code (no migration folder to ship or locate at run time).
//
// Migrations are append-only: never edit one that has been released, add '0002_…' instead. Kysely
// records applied names in `kysely_migration`. Concurrent migrators are serialised by an advisory lock
// on PostgreSQL (Kysely's) and by `BEGIN IMMEDIATE` on SQLite (store/db.ts; Kysely's SQLite lock is a
// no-op), so several processes may open the same database at once.
//
// Sizing: the certificates table is meant to hold ~130 M residents x 2 certificates. Every index on it
// costs gigabytes and slows every issuance, so it only has the ones a query needs today:
//   - the primary key on serial (the uniqueness guarantee, and the OCSP / revocation lookup);
//   - a partial index on resident_ref (rows without one cost nothing).
// Revocations are read by CA in id order (delta CRLs, streaming full CRLs) and by CA and expiry.

import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';
import { migration0002 } from './migrations/0002_register.ts';
import { migration0003 } from './migrations/0003_staff_audit.ts';
import { migration0004 } from './migrations/0004_counter.ts';
import { migration0005 } from './migrations/0005_verifiers.ts';
import { migration0006 } from './migrations/0006_crl_partitions.ts';
import { migration0007 } from './migrations/0007_ocsp_responses.ts';
import { migration0008 } from './migrations/0008_verifier_kinds.ts';
import { migration0009 } from './migrations/0009_applications.ts';

export type Dialect = 'sqlite' | 'postgres';

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema types.
export type AnyDb = Kysely<any>;

/** Column types per dialect, for every migration. */
export function columnTypes(dialect: Dialect) {
  const pg = dialect === 'postgres';
  return {
    /** Milliseconds since the epoch, and other 64-bit integers. */
    int64: pg ? ('bigint' as const) : ('integer' as const),
    int32: 'integer' as const,
    bytes: pg ? ('bytea' as const) : ('blob' as const),
    // Serials are compared byte-wise: the "C" collation keeps PostgreSQL from using the (slower,
    // locale-dependent) default collation for the two biggest indexes. SQLite's default is already binary.
    serial: pg ? sql`text collate "C"` : sql`text`,
    /** SQLite STRICT tables refuse a REAL in an INTEGER column or TEXT in a BLOB one. */
    tableEnd: pg ? sql`` : sql`strict`,
  };
}

function migration0001(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('certificates')
        .addColumn('serial', t.serial, (c) => c.primaryKey())
        .addColumn('ca', 'text', (c) => c.notNull())
        .addColumn('profile', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('not_before', t.int64, (c) => c.notNull())
        .addColumn('not_after', t.int64, (c) => c.notNull())
        .addColumn('issued_at', t.int64, (c) => c.notNull())
        .addColumn('der', t.bytes, (c) => c.notNull())
        .addColumn('resident_ref', 'text')
        .addColumn('spki_sha256', 'text', (c) => c.notNull())
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('certificates_resident_ref_idx')
        .on('certificates')
        .column('resident_ref')
        .where(sql.ref('resident_ref'), 'is not', null)
        .execute();

      await db.schema
        .createTable('revocations')
        .addColumn('id', t.int64, (c) =>
          dialect === 'postgres'
            ? c.primaryKey().generatedAlwaysAsIdentity()
            : // AUTOINCREMENT: ids are never reused, even after the highest row is deleted.
              c.primaryKey().autoIncrement(),
        )
        .addColumn('serial', t.serial, (c) => c.notNull().references('certificates.serial'))
        .addColumn('ca', 'text', (c) => c.notNull())
        .addColumn('reason', t.int32, (c) => c.notNull().check(sql`reason between 0 and 10`))
        .addColumn('revoked_at', t.int64, (c) => c.notNull())
        .addColumn('recorded_at', t.int64, (c) => c.notNull())
        .addColumn('not_after', t.int64, (c) => c.notNull())
        .addUniqueConstraint('revocations_serial_key', ['serial'])
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema.createIndex('revocations_ca_id_idx').on('revocations').columns(['ca', 'id']).execute();
      await db.schema
        .createIndex('revocations_ca_not_after_idx')
        .on('revocations')
        .columns(['ca', 'not_after'])
        .execute();

      await db.schema
        .createTable('crls')
        .addColumn('ca', 'text', (c) => c.notNull())
        .addColumn('number', t.int64, (c) => c.notNull().check(sql`number >= 0`))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('full', 'delta')`))
        .addColumn('base_number', t.int64)
        .addColumn('this_update', t.int64, (c) => c.notNull())
        .addColumn('next_update', t.int64, (c) => c.notNull())
        .addColumn('max_revocation_id', t.int64, (c) => c.notNull())
        .addColumn('entries', t.int32, (c) => c.notNull())
        .addColumn('der', t.bytes, (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        // The unique (ca, number) key: a second CRL with the same number fails instead of being stored.
        .addPrimaryKeyConstraint('crls_pkey', ['ca', 'number'])
        // A delta CRL's base must be a stored CRL of the same CA.
        .addForeignKeyConstraint('crls_base_fkey', ['ca', 'base_number'], 'crls', ['ca', 'number'])
        .addCheckConstraint(
          'crls_base_number_check',
          sql`(kind = 'full' and base_number is null) or (kind = 'delta' and base_number is not null)`,
        )
        .modifyEnd(t.tableEnd)
        .execute();
      // "Latest full / latest delta CRL of this CA": one index probe from the end.
      await db.schema
        .createIndex('crls_ca_kind_number_idx')
        .on('crls')
        .columns(['ca', 'kind', 'number'])
        .execute();
    },

    async down(db: AnyDb) {
      await db.schema.dropTable('crls').execute();
      await db.schema.dropTable('revocations').execute();
      await db.schema.dropTable('certificates').execute();
    },
  };
}

/** All migrations, by name; names sort in the order they are applied. */
export function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_authority': migration0001(dialect),
    '0002_register': migration0002(dialect),
    '0003_staff_audit': migration0003(dialect),
    '0004_counter': migration0004(dialect),
    '0005_verifiers': migration0005(dialect),
    '0006_crl_partitions': migration0006(dialect),
    '0007_ocsp_responses': migration0007(dialect),
    '0008_verifier_kinds': migration0008(dialect),
    '0009_applications': migration0009(dialect),
  };
}

/** Kysely MigrationProvider serving the in-code migrations for one dialect. */
export class InCodeMigrationProvider implements MigrationProvider {
  readonly #dialect: Dialect;

  constructor(dialect: Dialect) {
    this.#dialect = dialect;
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.#dialect);
  }
}
