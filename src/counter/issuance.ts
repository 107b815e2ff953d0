// Issuance at the municipal counter for a resident of the register, under Art. 6 (法第6条): a resident
// holds at most one valid certificate of each kind. The database enforces it: certificate_slots has
// PRIMARY KEY (resident_id, kind), and the slot is taken inside the transaction that inserts the
// certificate (Authority.issue's inTransaction hook). A concurrent loser's transaction rolls back, so it
// leaves no certificate row behind.
//
// In the hook, in this order (the lock order of src/register/slots.ts):
//   1. the resident row is re-read (FOR SHARE on PostgreSQL, which also holds off a register event until
//      commit): still a resident, and for a signature certificate still the facts it was signed with;
//   2. INSERT the slot; on a conflict the slot row is locked (FOR UPDATE) and read:
//      - it holds a valid certificate: AlreadyIssuedError, or with replace: true revoke that one
//        (superseded) and move the slot to the new serial;
//      - it holds a revoked or expired certificate: move the slot to the new serial;
//      moving is a compare-and-set (UPDATE … WHERE serial = <old>) whose row count is checked: 0 rows
//      means another issuance won, ConcurrentIssuanceError.

import type { Authority, IssuedCertificate } from '../authority/authority.ts';
import { UnknownResidentError } from '../register/errors.ts';
import { basicFactsOf } from '../register/facts.ts';
import { getResident } from '../register/register.ts';
import { type CertificateKind, lockSlots, recordRevocationCause } from '../register/slots.ts';
import type { Db } from '../register/tx.ts';
import { certificateStatus } from '../store/certificates.ts';
import type { Store } from '../store/db.ts';

export { revokeResidentCertificate } from '../register/slots.ts';

/** The resident already holds a valid certificate of this kind (re-issue with replace: true). */
export class AlreadyIssuedError extends Error {
  override name = 'AlreadyIssuedError';
  readonly residentId: string;
  readonly kind: CertificateKind;
  /** The certificate the resident holds. */
  readonly serial: string;
  constructor(residentId: string, kind: CertificateKind, serial: string) {
    super(
      `resident ${residentId} already holds a valid ${kind === 'sign' ? 'signature' : 'authentication'} certificate (serial ${serial}); re-issue replaces it`,
    );
    this.residentId = residentId;
    this.kind = kind;
    this.serial = serial;
  }
}

/** Another issuance for the same resident and kind changed the slot first; nothing was issued. */
export class ConcurrentIssuanceError extends Error {
  override name = 'ConcurrentIssuanceError';
}

/** The resident has moved out or died: no certificate can be issued. */
export class ResidentNotEligibleError extends Error {
  override name = 'ResidentNotEligibleError';
  readonly residentId: string;
  readonly status: string;
  constructor(residentId: string, status: string) {
    super(`resident ${residentId} is ${status}: no certificate can be issued`);
    this.residentId = residentId;
    this.status = status;
  }
}

/** The register changed the resident's facts while the certificate was being signed. */
export class FactsChangedError extends Error {
  override name = 'FactsChangedError';
}

export interface IssueForResidentRequest {
  residentId: string;
  kind: CertificateKind;
  /** PKCS#10, PEM or DER, made on the card. */
  csr: string | Uint8Array;
  counterId?: string;
  /** Re-issue: revoke the current certificate of this kind (superseded) and take its slot. */
  replace?: boolean;
}

export interface IssueForResidentResult extends IssuedCertificate {
  residentId: string;
  /** The valid certificate this one replaced (revoked as superseded). */
  replaced?: string;
  /** The resident's register version whose facts the certificate carries. */
  factsVersion: number;
}

/** Signing and storing again after the facts changed mid-issuance, at most this many times. */
const FACTS_RETRIES = 2;

/**
 * Issues a certificate of `kind` to a resident of the register: the facts come from the register (for
 * a signature certificate), the slot makes it the resident's only valid one of that kind. Throws
 * UnknownResidentError, ResidentNotEligibleError, AlreadyIssuedError or ConcurrentIssuanceError, with
 * nothing stored.
 */
export async function issueForResident(
  authority: Authority,
  store: Store,
  req: IssueForResidentRequest,
): Promise<IssueForResidentResult> {
  const postgres = store.dialect === 'postgres';
  for (let attempt = 0; ; attempt++) {
    const resident = await getResident(store, req.residentId);
    if (!resident) throw new UnknownResidentError(req.residentId);
    if (resident.status !== 'resident') throw new ResidentNotEligibleError(req.residentId, resident.status);
    let replaced: string | undefined;
    try {
      const issued = await authority.issue(
        {
          kind: req.kind,
          csr: req.csr,
          facts: req.kind === 'sign' ? basicFactsOf(resident) : undefined,
          residentRef: req.residentId,
          counterId: req.counterId,
        },
        {
          inTransaction: async (trx, cert) => {
            replaced = await takeSlot(authority, trx, postgres, {
              residentId: req.residentId,
              kind: req.kind,
              serial: cert.serial,
              version: resident.version,
              replace: req.replace ?? false,
            });
          },
        },
      );
      const result: IssueForResidentResult = {
        ...issued,
        residentId: req.residentId,
        factsVersion: resident.version,
      };
      if (replaced) result.replaced = replaced;
      return result;
    } catch (e) {
      if (e instanceof FactsChangedError && attempt < FACTS_RETRIES) continue;
      throw e;
    }
  }
}

async function takeSlot(
  authority: Authority,
  trx: Db,
  postgres: boolean,
  s: { residentId: string; kind: CertificateKind; serial: string; version: number; replace: boolean },
): Promise<string | undefined> {
  let q = trx.selectFrom('residents').select(['status', 'version']).where('resident_id', '=', s.residentId);
  if (postgres) q = q.forShare();
  const resident = await q.executeTakeFirst();
  if (!resident) throw new UnknownResidentError(s.residentId);
  if (resident.status !== 'resident') throw new ResidentNotEligibleError(s.residentId, resident.status);
  if (s.kind === 'sign' && resident.version !== s.version)
    throw new FactsChangedError(`the register changed resident ${s.residentId}'s facts during issuance`);
  const now = Date.now();
  const slot = { serial: s.serial, facts_version: resident.version, taken_at: now };

  const inserted = await trx
    .insertInto('certificate_slots')
    .values({ resident_id: s.residentId, kind: s.kind, ...slot })
    .onConflict((oc) => oc.columns(['resident_id', 'kind']).doNothing())
    .returning('serial')
    .executeTakeFirst();
  if (inserted) return undefined;

  const [held] = await lockSlots(trx, postgres, s.residentId, s.kind);
  // Freed between our INSERT and our read: someone else is changing it; let the caller try again.
  if (!held)
    throw new ConcurrentIssuanceError(`the ${s.kind} slot of resident ${s.residentId} changed concurrently`);
  const status = await certificateStatus(trx, held.serial);
  const valid = status !== undefined && !status.revocation && status.notAfter > now;
  if (valid) {
    if (!s.replace) throw new AlreadyIssuedError(s.residentId, s.kind, held.serial);
    await authority.revoke(held.serial, 'superseded', undefined, { db: trx });
    await recordRevocationCause(trx, {
      serial: held.serial,
      residentId: s.residentId,
      cause: 'superseded',
      at: now,
    });
  }
  const moved = await trx
    .updateTable('certificate_slots')
    .set(slot)
    .where('resident_id', '=', s.residentId)
    .where('kind', '=', s.kind)
    .where('serial', '=', held.serial)
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) !== 1)
    throw new ConcurrentIssuanceError(`the ${s.kind} slot of resident ${s.residentId} changed concurrently`);
  return valid ? held.serial : undefined;
}
