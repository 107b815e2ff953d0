// Art. 6 certificate slots (one current certificate of each kind per resident) and revocation of a
// resident's certificate together with its slot.
//
// Lock order, to keep PostgreSQL free of deadlocks: the resident row (FOR SHARE, issuance only), then
// slot rows (FOR UPDATE), then the revocation advisory lock of the CA (taken inside revoke). Issuance,
// the outbox processor and revokeResidentCertificate all follow it.

import type { Authority } from '../authority/authority.ts';
import type { RevocationReason } from '../authority/reasons.ts';
import { canonicalSerial } from '../core/serial.ts';
import type { Store } from '../store/db.ts';
import type { CertificateSlotRow } from '../store/register-schema.ts';
import { type Db, writeTransaction } from './tx.ts';

export type CertificateKind = 'sign' | 'auth';

/** The resident's slots, locked (PostgreSQL) until the end of the transaction. */
export async function lockSlots(
  trx: Db,
  postgres: boolean,
  residentId: string,
  kind?: CertificateKind,
): Promise<CertificateSlotRow[]> {
  let q = trx.selectFrom('certificate_slots').selectAll().where('resident_id', '=', residentId);
  if (kind) q = q.where('kind', '=', kind);
  if (postgres) q = q.orderBy('kind').forUpdate();
  return q.execute();
}

/** Frees the slot if it still holds `serial` (compare-and-delete). Returns whether it did. */
export async function clearSlot(trx: Db, residentId: string, kind: string, serial: string): Promise<boolean> {
  const r = await trx
    .deleteFrom('certificate_slots')
    .where('resident_id', '=', residentId)
    .where('kind', '=', kind)
    .where('serial', '=', serial)
    .executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

/** Records why a resident's certificate was revoked (the first cause recorded stands). */
export async function recordRevocationCause(
  trx: Db,
  row: { serial: string; residentId: string; eventId?: number | null; cause: string; at: number },
): Promise<void> {
  await trx
    .insertInto('revocation_causes')
    .values({
      serial: row.serial,
      resident_id: row.residentId,
      event_id: row.eventId ?? null,
      cause: row.cause,
      recorded_at: row.at,
    })
    .onConflict((oc) => oc.column('serial').doNothing())
    .execute();
}

const CAUSE_OF_REASON: Partial<Record<RevocationReason, string>> = {
  keyCompromise: 'loss-report',
  superseded: 'superseded',
  affiliationChanged: 'register-event',
  cessationOfOperation: 'register-event',
  unspecified: 'holder-request',
};

export interface RevokeResidentCertificateOptions {
  /** Run inside this transaction (it must be a transaction of `store`). */
  trx?: Db;
  /** Why, for the resident's record: 'loss-report', 'holder-request', 'superseded', …; derived from the reason by default. */
  cause?: string;
  /** The register event that caused it. */
  eventId?: number;
  revokedAt?: Date;
}

/**
 * Revokes a certificate through the authority and, in the same transaction, frees the resident's slot
 * if the certificate holds it and records the cause. For every path that revokes a resident's
 * certificate (loss report, holder's request, register event), so that a revoked certificate never
 * blocks a new issuance.
 */
export async function revokeResidentCertificate(
  authority: Authority,
  store: Store,
  serial: string,
  reason: RevocationReason,
  opts: RevokeResidentCertificateOptions = {},
) {
  const hex = canonicalSerial(serial);
  const postgres = store.dialect === 'postgres';
  const run = async (trx: Db) => {
    const cert = await trx
      .selectFrom('certificates')
      .select(['resident_ref', 'ca'])
      .where('serial', '=', hex)
      .executeTakeFirst();
    const residentId = cert?.resident_ref ?? undefined;
    if (residentId && postgres) await lockSlots(trx, postgres, residentId, cert!.ca as CertificateKind);
    const result = await authority.revoke(hex, reason, opts.revokedAt, { db: trx });
    if (residentId) {
      await clearSlot(trx, residentId, cert!.ca, hex);
      await recordRevocationCause(trx, {
        serial: hex,
        residentId,
        eventId: opts.eventId,
        cause: opts.cause ?? CAUSE_OF_REASON[reason] ?? reason,
        at: Date.now(),
      });
    }
    return result;
  };
  return opts.trx ? run(opts.trx) : writeTransaction(store, run);
}
