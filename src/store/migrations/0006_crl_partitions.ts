// Migration 0006: partitioned CRLs (docs/operations.md, "CRL partitions").
//
// A partition is a range of serials (core/crl-partition.ts), so its CRL reads the revocations of one
// CA in one serial range: the (ca, serial) index makes that an index range scan that touches only
// the partition's rows, on SQLite and on PostgreSQL (serial is `collate "C"` there, so the index
// orders the way the range compares), and an index-only one: the index holds the columns a CRL entry
// needs. It is an index on revocations only (~5% of the certificates); the certificates table gets
// no partition column: the serial says it all.
//
// The partition CRLs themselves go into `crls` with `ca` = the scope id (`sign-p17`), so each partition
// has its own (ca, number) numbering and its delta CRLs' base key; nothing to change there.

import type { Migration } from 'kysely';
import type { AnyDb, Dialect } from '../migrations.ts';

export function migration0006(_dialect: Dialect): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema
        .createIndex('revocations_ca_serial_idx')
        .on('revocations')
        // Covering: the page query reads every column it needs from the index. Without them each
        // of a partition's 100,000 rows was a lookup into the table in random order (serials are
        // random, the table is in revocation order), which doubled the time of a partition CRL.
        .columns(['ca', 'serial', 'not_after', 'id', 'reason', 'revoked_at'])
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropIndex('revocations_ca_serial_idx').execute();
    },
  };
}
