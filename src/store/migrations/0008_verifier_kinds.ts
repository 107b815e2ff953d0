// Migration 0008: which certificates' revocation information each authorised verifier may receive
// (the JPKI Act: signature verifiers (署名検証者) of signature certificates, user-authentication verifiers
// (利用者証明検証者) of user-authentication certificates; a body may be both). Verifiers registered before
// this migration could ask about both, and keep that.

import { type Migration, sql } from 'kysely';
import type { AnyDb, Dialect } from '../migrations.ts';

export function migration0008(_dialect: Dialect): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema
        .alterTable('verifiers')
        .addColumn('kinds', 'text', (c) =>
          c.notNull().defaultTo('sign,auth').check(sql`kinds in ('sign', 'auth', 'sign,auth')`),
        )
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.alterTable('verifiers').dropColumn('kinds').execute();
    },
  };
}
