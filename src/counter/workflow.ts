// The counter workflow (窓口受付): a clerk handles a resident's visit as a *case* that moves through
// fixed steps. Every step is authorised with can(), and its outcome is written as the case row and an
// audit entry in ONE transaction; a refused or failed step leaves the case where it was, with the error
// recorded (and audited) on the case.
//
//   issuance / renewal:  opened → identity-verified → fee-paid → keys-generated → [partially-issued] →
//                        issued → completed (certificates written to the card)
//   pin-reset:           opened → identity-verified → completed (PIN reset on the card)
//
// What happens outside the database (the card, the authority) is done between reading the case and the
// transaction that records the step; the transaction re-reads the case and moves it only from the state
// it was read in (compare-and-set), so two clerks driving one case cannot both move it. Within a process
// the steps of one case are also serialised, so one card never gets two overlapping key generations.
//
// Issuing the two certificates is two issuances (issueForResident: the Art. 6 slot in the database
// decides every race). Signature first, then authentication. If the signature certificate is issued
// and the authentication one fails, the case is recorded as 'partially-issued' with the signature
// certificate's serial: that certificate stays valid, and retrying the step issues only what is
// missing. If the process dies after a certificate was stored but before the case recorded it, a retry
// finds the resident's slot held by a certificate for the very key this case generated on the card
// (same SubjectPublicKeyInfo hash) and adopts it instead of failing with AlreadyIssuedError.

import { createHash, randomBytes } from 'node:crypto';
import { appendAudit, type JsonObject, staffActor } from '../audit/audit-log.ts';
import type { Authority } from '../authority/authority.ts';
import type { CardSlot, IcCard } from '../card/card.ts';
import { CARD_SLOTS } from '../card/card.ts';
import type { KeyAlgorithm } from '../core/signer.ts';
import { UnknownResidentError } from '../register/errors.ts';
import type { ResidentState } from '../register/facts.ts';
import { getResident } from '../register/register.ts';
import { type CertificateKind, revokeResidentCertificate } from '../register/slots.ts';
import type { Db } from '../register/tx.ts';
import { type Action, can, ForbiddenError, type Principal } from '../staff/roles.ts';
import type { CounterCaseRow, CounterCaseState, CounterCaseType } from '../store/counter-schema.ts';
import type { Store } from '../store/db.ts';
import { AlreadyIssuedError, issueForResident, ResidentNotEligibleError } from './issuance.ts';

export { AlreadyIssuedError, ResidentNotEligibleError };

// ---------------------------------------------------------------------------------------------------------
// Configuration and vocabulary

export interface CounterConfig {
  /** The issuance fee in yen (the seed's 500). */
  feeYen: number;
  /** A renewal is accepted only this many days before the current certificate expires. */
  renewalWindowDays: number;
  /** Design capacity of the service, in certificates (the seed's 5,000,000). */
  capacity: number;
  /** Key algorithm generated on the card. */
  keyAlgorithm: KeyAlgorithm;
  /** Counter id put into the signature certificate's opaque CN (1-10 letters or digits). */
  counterId?: string;
}

export const DEFAULT_COUNTER_CONFIG: CounterConfig = {
  feeYen: 500,
  renewalWindowDays: 90,
  capacity: 5_000_000,
  keyAlgorithm: 'rsa-2048',
};

/** Identity documents the counter accepts (all carry a photo). Only the last 4 characters of a number are kept. */
export const IDENTITY_DOCUMENT_TYPES = [
  'my-number-card',
  'resident-card-photo',
  'passport',
  'driving-licence',
  'other-photo-id',
] as const;
export type IdentityDocumentType = (typeof IDENTITY_DOCUMENT_TYPES)[number];

export const PAYMENT_METHODS = ['cash', 'cashless', 'exempt'] as const;
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];

export interface IdentityDocument {
  type: IdentityDocumentType;
  /** Last 4 characters (A-Z, 0-9) of the document number, or null. Never the full number. */
  last4: string | null;
}

export interface CounterCase {
  id: string;
  type: CounterCaseType;
  state: CounterCaseState;
  residentId: string;
  municipalityCode: string;
  openedBy: number;
  openedAt: number;
  updatedAt: number;
  identity: { documents: IdentityDocument[]; verifiedBy: number; verifiedAt: number } | null;
  fee: { amountYen: number; method: string; receiptNumber: string; paidBy: number; paidAt: number } | null;
  cardId: string | null;
  signSerial: string | null;
  authSerial: string | null;
  completedAt: number | null;
  lastError: { message: string; at: number } | null;
}

export interface Receipt {
  receiptNumber: string;
  caseId: string;
  municipalityCode: string;
  residentId: string;
  amountYen: number;
  method: string;
  paidAt: string;
  receivedBy: string;
  item: { ja: string; en: string };
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** Bad input to a step (not a state problem): HTTP 400. */
export class CounterInputError extends Error {
  override name = 'CounterInputError';
}

export class UnknownCaseError extends Error {
  override name = 'UnknownCaseError';
  constructor(readonly caseId: string) {
    super(`no counter case ${caseId}`);
  }
}

/** The step is not possible in the case's state (out of order, repeated, wrong case type): HTTP 409. */
export class CaseStateError extends Error {
  override name = 'CaseStateError';
  constructor(
    readonly caseId: string,
    readonly state: CounterCaseState,
    readonly step: string,
    detail?: string,
  ) {
    super(detail ?? `case ${caseId} is '${state}': step '${step}' is not possible now`);
  }
}

/** A renewal outside the window before expiry, or a renewal with nothing to renew: HTTP 409. */
export class RenewalWindowError extends Error {
  override name = 'RenewalWindowError';
}

/** The card presented is not the one this case (or this resident) uses: HTTP 409. */
export class CardMismatchError extends Error {
  override name = 'CardMismatchError';
}

// ---------------------------------------------------------------------------------------------------------
// The service

export interface CounterWorkflowOptions {
  authority: Authority;
  /** Defaults to the authority's store. */
  store?: Store;
  config?: Partial<CounterConfig>;
  /**
   * The counter's unblock credential for a card (software card: its unblock secret; PKCS#11: the SO PIN).
   * Needed for PIN resets only.
   */
  unblockSecret?: (cardId: string) => string | Promise<string>;
  now?: () => number;
}

const STEP_FROM: Record<string, { types: CounterCaseType[]; from: CounterCaseState[] }> = {
  identity: { types: ['issuance', 'renewal', 'pin-reset'], from: ['opened'] },
  fee: { types: ['issuance', 'renewal'], from: ['identity-verified'] },
  keys: { types: ['issuance', 'renewal'], from: ['fee-paid'] },
  issue: { types: ['issuance', 'renewal'], from: ['keys-generated', 'partially-issued'] },
  card: { types: ['issuance', 'renewal'], from: ['issued'] },
  'pin-reset': { types: ['pin-reset'], from: ['identity-verified'] },
};

const ACTION_OF_TYPE: Record<CounterCaseType, Action> = {
  issuance: 'certificate.issue',
  renewal: 'certificate.issue',
  'pin-reset': 'card.pin-reset',
};

const LAST4 = /^[0-9A-Z]{4}$/;
const CASE_ID = /^C[0-9a-f]{20}$/;
const DAY_MS = 86_400_000;
const JST_MS = 9 * 3600_000;

/** The calendar date in Japan of an instant, YYYY-MM-DD. */
export function jstDay(ms: number): string {
  return new Date(ms + JST_MS).toISOString().slice(0, 10);
}

export class CounterWorkflow {
  readonly config: CounterConfig;
  readonly #authority: Authority;
  readonly #store: Store;
  readonly #unblock?: (cardId: string) => string | Promise<string>;
  readonly #now: () => number;
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(opts: CounterWorkflowOptions) {
    this.#authority = opts.authority;
    this.#store = opts.store ?? opts.authority.store;
    this.config = { ...DEFAULT_COUNTER_CONFIG, ...opts.config };
    if (!Number.isSafeInteger(this.config.feeYen) || this.config.feeYen < 0)
      throw new CounterInputError('feeYen must be a non-negative integer');
    if (!Number.isSafeInteger(this.config.capacity) || this.config.capacity <= 0)
      throw new CounterInputError('capacity must be a positive integer');
    this.#unblock = opts.unblockSecret;
    this.#now = opts.now ?? Date.now;
  }

  get store(): Store {
    return this.#store;
  }

  // ---- residents ----

  /** A resident's record for the counter; audited as a read of personal data. Throws 404/403 errors. */
  async readResident(principal: Principal, residentId: string): Promise<ResidentState> {
    const resident = await this.#resident(residentId);
    await this.#authorize(principal, 'resident.read', resident.municipalityCode, `resident:${residentId}`);
    await appendAudit(this.#store.db, {
      actor: staffActor(principal.staffId),
      action: 'resident.read',
      subject: `resident:${residentId}`,
      municipalityCode: resident.municipalityCode,
      details: {},
      at: this.#now(),
    });
    return resident;
  }

  /** Residents of the clerk's own municipality by name (exact, spaces normalised) and date of birth. */
  async searchResidents(
    principal: Principal,
    query: { name?: string; dateOfBirth?: string },
  ): Promise<ResidentState[]> {
    const own = principal.municipalityCode;
    await this.#authorize(principal, 'resident.read', own, null);
    const name = query.name?.normalize('NFKC').trim().replace(/\s+/gu, '\u3000');
    if (!name && !query.dateOfBirth) throw new CounterInputError('give a name, a date of birth, or both');
    if (query.dateOfBirth !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(query.dateOfBirth))
      throw new CounterInputError('birth must be YYYY-MM-DD');
    let q = this.#store.db
      .selectFrom('residents')
      .select('resident_id')
      .where('municipality_code', '=', own!)
      .orderBy('resident_id')
      .limit(50);
    if (name) q = q.where('name', '=', name);
    if (query.dateOfBirth) q = q.where('date_of_birth', '=', query.dateOfBirth);
    const ids = (await q.execute()).map((r) => r.resident_id);
    await appendAudit(this.#store.db, {
      actor: staffActor(principal.staffId),
      action: 'resident.search',
      subject: null,
      municipalityCode: own,
      details: { results: ids.length, residents: ids.slice(0, 50) },
      at: this.#now(),
    });
    const out: ResidentState[] = [];
    for (const id of ids) {
      const r = await getResident(this.#store, id);
      if (r) out.push(r);
    }
    return out;
  }

  // ---- cases ----

  /**
   * Opens a case for a resident of the clerk's municipality. An issuance case for a resident who already
   * holds a valid certificate is refused at once (AlreadyIssuedError, before any fee): re-issue is a
   * renewal case or follows a loss report.
   */
  async openCase(
    principal: Principal,
    input: { residentId: string; type?: CounterCaseType },
  ): Promise<CounterCase> {
    const type = input.type ?? 'issuance';
    if (!['issuance', 'renewal', 'pin-reset'].includes(type))
      throw new CounterInputError(`unknown case type ${String(type)}`);
    const resident = await this.#resident(input.residentId);
    await this.#authorize(
      principal,
      ACTION_OF_TYPE[type],
      resident.municipalityCode,
      `resident:${resident.residentId}`,
    );
    const now = this.#now();
    if (type !== 'pin-reset' && resident.status !== 'resident')
      throw new ResidentNotEligibleError(resident.residentId, resident.status);
    if (type === 'issuance') {
      const held = await this.#validSlots(resident.residentId, now);
      const first = held[0];
      if (first) throw new AlreadyIssuedError(resident.residentId, first.kind, first.serial);
    } else if (type === 'renewal') await this.#checkRenewalWindow(resident.residentId, now);
    else if (!(await this.#cardOfResident(resident.residentId)))
      throw new CardMismatchError(`resident ${resident.residentId} has no card issued at a counter`);
    const id = `C${randomBytes(10).toString('hex')}`;
    return this.#tx(async (trx) => {
      await trx
        .insertInto('counter_cases')
        .values({
          id,
          type,
          state: 'opened',
          resident_id: resident.residentId,
          municipality_code: resident.municipalityCode,
          opened_by: principal.staffId,
          opened_at: now,
          updated_at: now,
          identity_documents: null,
          identity_verified_by: null,
          identity_verified_at: null,
          fee_amount: null,
          fee_method: null,
          receipt_number: null,
          fee_paid_by: null,
          fee_paid_at: null,
          card_id: null,
          sign_csr: null,
          auth_csr: null,
          sign_serial: null,
          auth_serial: null,
          completed_at: null,
          last_error: null,
          last_error_at: null,
        })
        .execute();
      await appendAudit(trx, {
        actor: staffActor(principal.staffId),
        action: 'counter.case-opened',
        subject: `resident:${resident.residentId}`,
        municipalityCode: resident.municipalityCode,
        details: { case: id, type },
        at: now,
      });
      return caseOf(await this.#row(trx, id));
    });
  }

  /** The case, for staff who may act on it. */
  async getCase(principal: Principal, caseId: string): Promise<CounterCase> {
    const row = await this.#caseFor(principal, caseId);
    return caseOf(row);
  }

  /** Step: the identity documents checked face to face, by the principal. */
  async verifyIdentity(
    principal: Principal,
    caseId: string,
    input: { documents: { type: string; last4?: string | null }[] },
  ): Promise<CounterCase> {
    const docs = checkDocuments(input.documents);
    return this.#step(principal, caseId, 'identity', async () => ({
      set: (now) => ({
        identity_documents: JSON.stringify(docs),
        identity_verified_by: principal.staffId,
        identity_verified_at: now,
        state: 'identity-verified',
      }),
      details: { documents: docs.map((d) => d.type) },
    }));
  }

  /** Step: the fee is collected; a receipt number is taken from the municipality's sequence for the year. */
  async payFee(principal: Principal, caseId: string, input: { method: string }): Promise<CounterCase> {
    if (!(PAYMENT_METHODS as readonly string[]).includes(input.method))
      throw new CounterInputError(`payment method must be one of ${PAYMENT_METHODS.join(', ')}`);
    const amount = input.method === 'exempt' ? 0 : this.config.feeYen;
    return this.#step(principal, caseId, 'fee', async (row) => ({
      set: async (now, trx) => {
        const year = Number(jstDay(now).slice(0, 4));
        const receipt = await nextReceiptNumber(trx, row.municipality_code, year);
        return {
          fee_amount: amount,
          fee_method: input.method,
          receipt_number: receipt,
          fee_paid_by: principal.staffId,
          fee_paid_at: now,
          state: 'fee-paid',
        };
      },
      details: (c) => ({ amountYen: amount, method: input.method, receipt: c.fee?.receiptNumber ?? '' }),
    }));
  }

  /**
   * Step: key pairs generated on the card in both slots and a request made for each, with the PINs the
   * resident set on the card (the card checks them and their format).
   */
  async generateKeys(
    principal: Principal,
    caseId: string,
    card: IcCard,
    pins: { sign: string; auth: string },
  ): Promise<CounterCase> {
    return this.#step(principal, caseId, 'keys', async () => {
      const csrs: Record<CardSlot, string> = { sign: '', auth: '' };
      for (const slot of CARD_SLOTS) {
        await card.generateKey(slot, this.config.keyAlgorithm, pins[slot]);
        csrs[slot] = (await card.createCsr(slot, pins[slot])).toString('base64');
      }
      return {
        set: () => ({ card_id: card.id, sign_csr: csrs.sign, auth_csr: csrs.auth, state: 'keys-generated' }),
        details: { card: card.id, algorithm: this.config.keyAlgorithm },
      };
    });
  }

  /** Step: both certificates issued (signature, then authentication); see the file comment. */
  async issue(principal: Principal, caseId: string): Promise<CounterCase> {
    return this.#exclusive(caseId, async () => {
      const row = await this.#caseFor(principal, caseId);
      this.#checkStep(row, 'issue');
      const renewal = row.type === 'renewal';
      const done: Partial<Record<CertificateKind, { serial: string; issuedAt: number; replaced?: string }>> =
        {};
      let failure: unknown;
      for (const kind of ['sign', 'auth'] as const) {
        if ((kind === 'sign' ? row.sign_serial : row.auth_serial) !== null) continue;
        const csrB64 = kind === 'sign' ? row.sign_csr : row.auth_csr;
        if (!csrB64)
          throw new CaseStateError(caseId, row.state, 'issue', `case ${caseId} has no ${kind} request`);
        const csr = Buffer.from(csrB64, 'base64');
        try {
          if (renewal) await this.#checkRenewalWindow(row.resident_id, this.#now(), kind);
          const r = await issueForResident(this.#authority, this.#store, {
            residentId: row.resident_id,
            kind,
            csr,
            counterId: this.config.counterId,
            replace: renewal,
          });
          done[kind] = { serial: r.serial, issuedAt: this.#now(), replaced: r.replaced };
        } catch (e) {
          const adopted = e instanceof AlreadyIssuedError ? await this.#adoptable(e.serial, csr) : undefined;
          if (adopted && e instanceof AlreadyIssuedError) {
            done[kind] = { serial: e.serial, issuedAt: adopted };
            continue;
          }
          failure = e;
          break;
        }
      }
      const signSerial = row.sign_serial ?? done.sign?.serial ?? null;
      const authSerial = row.auth_serial ?? done.auth?.serial ?? null;
      const state: CounterCaseState =
        signSerial && authSerial ? 'issued' : signSerial || authSerial ? 'partially-issued' : row.state;
      const now = this.#now();
      const updated = await this.#tx(async (trx) => {
        const cur = await this.#row(trx, caseId, true);
        if (cur.state !== row.state)
          throw new CaseStateError(caseId, cur.state, 'issue', `case ${caseId} changed concurrently`);
        await trx
          .updateTable('counter_cases')
          .set({
            sign_serial: signSerial,
            auth_serial: authSerial,
            state,
            updated_at: now,
            last_error: failure ? errorText(failure) : null,
            last_error_at: failure ? now : null,
          })
          .where('id', '=', caseId)
          .execute();
        for (const kind of ['sign', 'auth'] as const) {
          const d = done[kind];
          if (!d) continue;
          await trx
            .insertInto('counter_issuances')
            .values({
              serial: d.serial,
              case_id: caseId,
              municipality_code: row.municipality_code,
              kind,
              renewal: renewal ? 1 : 0,
              issued_at: d.issuedAt,
              day: jstDay(d.issuedAt),
            })
            .onConflict((oc) => oc.column('serial').doNothing())
            .execute();
        }
        const issued = Object.fromEntries(
          Object.entries(done).map(([k, d]) => [
            k,
            d.replaced ? { serial: d.serial, replaced: d.replaced } : d.serial,
          ]),
        );
        await appendAudit(trx, {
          actor: staffActor(principal.staffId),
          action: failure ? 'counter.issue-failed' : 'counter.issued',
          subject: `resident:${row.resident_id}`,
          municipalityCode: row.municipality_code,
          details: {
            case: caseId,
            state,
            issued,
            ...(failure ? { error: errorName(failure), message: errorText(failure) } : {}),
          } as JsonObject,
          at: now,
        });
        return caseOf(await this.#row(trx, caseId));
      });
      if (failure) throw failure;
      return updated;
    });
  }

  /** Step: both certificates written to the card; the case is completed. */
  async writeToCard(principal: Principal, caseId: string, card: IcCard): Promise<CounterCase> {
    return this.#step(principal, caseId, 'card', async (row) => {
      if (card.id !== row.card_id)
        throw new CardMismatchError(
          `case ${caseId} generated its keys on card ${row.card_id}, not ${card.id}`,
        );
      for (const kind of ['sign', 'auth'] as const) {
        const serial = kind === 'sign' ? row.sign_serial : row.auth_serial;
        const cert = await this.#store.db
          .selectFrom('certificates')
          .select('der')
          .where('serial', '=', serial!)
          .executeTakeFirstOrThrow();
        await card.writeCertificate(kind, Buffer.from(cert.der));
      }
      return {
        set: (now) => ({ state: 'completed', completed_at: now }),
        details: { card: card.id, sign: row.sign_serial ?? '', auth: row.auth_serial ?? '' },
      };
    });
  }

  /**
   * PIN reset (pin-reset case, identity verified in it): the counter's unblock credential for the card
   * sets the resident's new PIN and unlocks the slot. The card must be one issued to this resident at a
   * counter.
   */
  async resetPin(
    principal: Principal,
    caseId: string,
    card: IcCard,
    input: { slot: CardSlot; newPin: string },
  ): Promise<CounterCase> {
    if (input.slot !== 'sign' && input.slot !== 'auth')
      throw new CounterInputError('slot must be sign or auth');
    if (!this.#unblock) throw new CounterInputError('this counter has no unblock credentials configured');
    const unblockFor = this.#unblock;
    return this.#step(principal, caseId, 'pin-reset', async (row) => {
      const owner = await this.#store.db
        .selectFrom('counter_cases')
        .select('id')
        .where('resident_id', '=', row.resident_id)
        .where('card_id', '=', card.id)
        .where('state', '=', 'completed')
        .executeTakeFirst();
      if (!owner)
        throw new CardMismatchError(
          `card ${card.id} was not issued to resident ${row.resident_id} at a counter`,
        );
      await card.resetPin(input.slot, await unblockFor(card.id), input.newPin);
      return {
        set: (now) => ({ card_id: card.id, state: 'completed', completed_at: now }),
        details: { card: card.id, slot: input.slot },
      };
    });
  }

  /**
   * Loss or theft report (by phone or at the counter): every valid certificate of the resident is revoked
   * at once (keyCompromise, cause 'loss-report'), in one transaction with its audit entry. A resident with
   * nothing valid gets an empty list (a second report is harmless); it is audited all the same.
   */
  async reportLoss(
    principal: Principal,
    residentId: string,
    input: { channel: 'phone' | 'counter' },
  ): Promise<{ revoked: string[] }> {
    if (input.channel !== 'phone' && input.channel !== 'counter')
      throw new CounterInputError('channel must be phone or counter');
    const resident = await this.#resident(residentId);
    await this.#authorize(
      principal,
      'certificate.revoke',
      resident.municipalityCode,
      `resident:${residentId}`,
    );
    const now = this.#now();
    return this.#tx(async (trx) => {
      const rows = await trx
        .selectFrom('certificates as c')
        .leftJoin('revocations as r', 'r.serial', 'c.serial')
        .select(['c.serial'])
        .where('c.resident_ref', '=', residentId)
        .where('r.serial', 'is', null)
        .where('c.not_after', '>', now)
        .orderBy('c.serial')
        .execute();
      const revoked: string[] = [];
      for (const r of rows) {
        await revokeResidentCertificate(this.#authority, this.#store, r.serial, 'keyCompromise', {
          trx,
          cause: 'loss-report',
          revokedAt: new Date(now),
        });
        revoked.push(r.serial);
      }
      await appendAudit(trx, {
        actor: staffActor(principal.staffId),
        action: 'certificate.loss-report',
        subject: `resident:${residentId}`,
        municipalityCode: resident.municipalityCode,
        details: { channel: input.channel, revoked },
        at: now,
      });
      return { revoked };
    });
  }

  /** The receipt of a case whose fee was paid. */
  async receipt(principal: Principal, caseId: string): Promise<Receipt> {
    const c = caseOf(await this.#caseFor(principal, caseId));
    if (!c.fee) throw new CaseStateError(caseId, c.state, 'receipt', `case ${caseId} has no fee paid yet`);
    return {
      receiptNumber: c.fee.receiptNumber,
      caseId: c.id,
      municipalityCode: c.municipalityCode,
      residentId: c.residentId,
      amountYen: c.fee.amountYen,
      method: c.fee.method,
      paidAt: new Date(c.fee.paidAt).toISOString(),
      receivedBy: staffActor(c.fee.paidBy),
      item: {
        ja: c.type === 'renewal' ? '電子証明書更新手数料' : '電子証明書発行手数料',
        en: c.type === 'renewal' ? 'certificate renewal fee' : 'certificate issuance fee',
      },
    };
  }

  // ---- internals ----

  /**
   * A transaction whose handle is a Kysely transaction (appendAudit joins it). Not register/tx.ts's
   * BEGIN IMMEDIATE connection: appendAudit would open a nested transaction on it.
   */
  #tx<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    return this.#store.db.transaction().execute(fn);
  }

  async #resident(residentId: string): Promise<ResidentState> {
    if (typeof residentId !== 'string' || !/^\d{11}$/.test(residentId))
      throw new CounterInputError('a resident id is 11 digits');
    const r = await getResident(this.#store, residentId);
    if (!r) throw new UnknownResidentError(residentId);
    return r;
  }

  /** authorize(), auditing a refusal (in its own transaction) before throwing ForbiddenError. */
  async #authorize(
    principal: Principal,
    action: Action,
    municipalityCode: string | null,
    subject: string | null,
  ): Promise<void> {
    if (can(principal, action, { municipalityCode })) return;
    await appendAudit(this.#store.db, {
      actor: staffActor(principal.staffId),
      action: 'access.denied',
      subject,
      municipalityCode,
      details: { attempted: action, role: principal.role },
      at: this.#now(),
    });
    throw new ForbiddenError(principal, action, { municipalityCode });
  }

  async #row(db: Db, caseId: string, lock = false): Promise<CounterCaseRow> {
    let q = db.selectFrom('counter_cases').selectAll().where('id', '=', caseId);
    if (lock && this.#store.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw new UnknownCaseError(caseId);
    return row;
  }

  async #caseFor(principal: Principal, caseId: string): Promise<CounterCaseRow> {
    if (typeof caseId !== 'string' || !CASE_ID.test(caseId)) throw new UnknownCaseError(String(caseId));
    const row = await this.#row(this.#store.db, caseId);
    await this.#authorize(
      principal,
      ACTION_OF_TYPE[row.type],
      row.municipality_code,
      `resident:${row.resident_id}`,
    );
    return row;
  }

  #checkStep(row: CounterCaseRow, step: string): void {
    const rule = STEP_FROM[step]!;
    if (!rule.types.includes(row.type))
      throw new CaseStateError(row.id, row.state, step, `step '${step}' is not part of a ${row.type} case`);
    if (!rule.from.includes(row.state)) throw new CaseStateError(row.id, row.state, step);
  }

  /** Runs `fn` after the steps of the same case queued in this process. */
  async #exclusive<T>(caseId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#busy.get(caseId) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.#busy.set(caseId, tail);
    try {
      return await run;
    } finally {
      if (this.#busy.get(caseId) === tail) this.#busy.delete(caseId);
    }
  }

  /**
   * One step: check the case and the state, do the outside work (`work`), then record the new state and
   * the audit entry in one transaction that moves the case only from the state it was read in. If the
   * work fails, the error is recorded on the case (state unchanged) and audited, and rethrown.
   */
  async #step(
    principal: Principal,
    caseId: string,
    step: string,
    work: (row: CounterCaseRow) => Promise<{
      set: (now: number, trx: Db) => Partial<CounterCaseRow> | Promise<Partial<CounterCaseRow>>;
      details:
        | Record<string, string | number | string[]>
        | ((c: CounterCase) => Record<string, string | number>);
    }>,
  ): Promise<CounterCase> {
    return this.#exclusive(caseId, async () => {
      const row = await this.#caseFor(principal, caseId);
      this.#checkStep(row, step);
      let outcome: Awaited<ReturnType<typeof work>>;
      try {
        outcome = await work(row);
      } catch (e) {
        await this.#recordFailure(principal, row, step, e);
        throw e;
      }
      const now = this.#now();
      return this.#tx(async (trx) => {
        const cur = await this.#row(trx, caseId, true);
        if (cur.state !== row.state)
          throw new CaseStateError(caseId, cur.state, step, `case ${caseId} changed concurrently`);
        const set = await outcome.set(now, trx);
        await trx
          .updateTable('counter_cases')
          .set({ ...set, updated_at: now, last_error: null, last_error_at: null })
          .where('id', '=', caseId)
          .where('state', '=', row.state)
          .execute();
        const after = caseOf(await this.#row(trx, caseId));
        const details = typeof outcome.details === 'function' ? outcome.details(after) : outcome.details;
        await appendAudit(trx, {
          actor: staffActor(principal.staffId),
          action: `counter.${step}`,
          subject: `resident:${row.resident_id}`,
          municipalityCode: row.municipality_code,
          details: { case: caseId, state: after.state, ...details } as JsonObject,
          at: now,
        });
        return after;
      });
    });
  }

  async #recordFailure(principal: Principal, row: CounterCaseRow, step: string, e: unknown): Promise<void> {
    const now = this.#now();
    await this.#tx(async (trx) => {
      await trx
        .updateTable('counter_cases')
        .set({ last_error: errorText(e), last_error_at: now, updated_at: now })
        .where('id', '=', row.id)
        .execute();
      await appendAudit(trx, {
        actor: staffActor(principal.staffId),
        action: 'counter.step-failed',
        subject: `resident:${row.resident_id}`,
        municipalityCode: row.municipality_code,
        details: { case: row.id, step, state: row.state, error: errorName(e), message: errorText(e) },
        at: now,
      });
    });
  }

  /** The resident's slots that hold a valid, unexpired certificate. */
  async #validSlots(residentId: string, now: number) {
    return this.#store.db
      .selectFrom('certificate_slots as s')
      .innerJoin('certificates as c', 'c.serial', 's.serial')
      .leftJoin('revocations as r', 'r.serial', 's.serial')
      .select(['s.kind', 's.serial', 'c.not_after'])
      .where('s.resident_id', '=', residentId)
      .where('r.serial', 'is', null)
      .where('c.not_after', '>', now)
      .orderBy('s.kind', 'desc')
      .execute()
      .then((rows) =>
        rows.map((r) => ({ kind: r.kind as CertificateKind, serial: r.serial, notAfter: r.not_after })),
      );
  }

  /**
   * Renewal needs a valid certificate that expires within the window; a kind the resident does not hold
   * (revoked, expired) may simply be issued. Throws RenewalWindowError.
   */
  async #checkRenewalWindow(residentId: string, now: number, kind?: CertificateKind): Promise<void> {
    const held = (await this.#validSlots(residentId, now)).filter((s) => !kind || s.kind === kind);
    const windowMs = this.config.renewalWindowDays * DAY_MS;
    if (!kind && held.length === 0)
      throw new RenewalWindowError(
        `resident ${residentId} holds no valid certificate to renew; open an issuance case`,
      );
    for (const s of held)
      if (s.notAfter - now > windowMs)
        throw new RenewalWindowError(
          `the ${s.kind} certificate ${s.serial} expires on ${new Date(s.notAfter).toISOString().slice(0, 10)}: renewal opens ${this.config.renewalWindowDays} days before expiry`,
        );
  }

  /** When the certificate holding the slot is for the key in `csr` (this case's card), its issue time. */
  async #adoptable(serial: string, csr: Buffer): Promise<number | undefined> {
    const spki = spkiOfCsr(csr);
    const row = await this.#store.db
      .selectFrom('certificates')
      .select(['spki_sha256', 'issued_at'])
      .where('serial', '=', serial)
      .executeTakeFirst();
    return row && row.spki_sha256 === createHash('sha256').update(spki).digest('hex')
      ? row.issued_at
      : undefined;
  }

  async #cardOfResident(residentId: string): Promise<string | undefined> {
    const row = await this.#store.db
      .selectFrom('counter_cases')
      .select('card_id')
      .where('resident_id', '=', residentId)
      .where('state', '=', 'completed')
      .where('card_id', 'is not', null)
      .orderBy('opened_at', 'desc')
      .executeTakeFirst();
    return row?.card_id ?? undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

function checkDocuments(input: unknown): IdentityDocument[] {
  if (!Array.isArray(input) || input.length === 0 || input.length > 5)
    throw new CounterInputError('give 1 to 5 identity documents');
  return input.map((d, i) => {
    const type = (d as { type?: unknown })?.type;
    if (!(IDENTITY_DOCUMENT_TYPES as readonly unknown[]).includes(type))
      throw new CounterInputError(
        `documents[${i}].type must be one of ${IDENTITY_DOCUMENT_TYPES.join(', ')}`,
      );
    const last4 = (d as { last4?: unknown }).last4 ?? null;
    if (last4 !== null && (typeof last4 !== 'string' || !LAST4.test(last4)))
      throw new CounterInputError(
        `documents[${i}].last4 must be the last 4 characters (A-Z, 0-9) of the number; never the full number`,
      );
    return { type: type as IdentityDocumentType, last4 };
  });
}

/** Takes the next receipt number of the municipality and year: '<municipality>-<year>-<6 digits>'. */
async function nextReceiptNumber(trx: Db, municipalityCode: string, year: number): Promise<string> {
  const row = await trx
    .insertInto('counter_receipt_sequences')
    .values({ municipality_code: municipalityCode, year, last_number: 1 })
    .onConflict((oc) =>
      oc.columns(['municipality_code', 'year']).doUpdateSet((eb) => ({
        last_number: eb('counter_receipt_sequences.last_number', '+', 1),
      })),
    )
    .returning('last_number')
    .executeTakeFirstOrThrow();
  return `${municipalityCode}-${year}-${String(row.last_number).padStart(6, '0')}`;
}

/** The SubjectPublicKeyInfo (DER) of a PKCS#10 request: the 3rd element of CertificationRequestInfo. */
function spkiOfCsr(csr: Buffer): Buffer {
  const read = (buf: Buffer, off: number) => {
    let len = buf[off + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i]!;
      hdr = 2 + n;
    }
    return { start: off, content: off + hdr, end: off + hdr + len };
  };
  const outer = read(csr, 0);
  const info = read(csr, outer.content);
  let el = read(csr, info.content); // version
  el = read(csr, el.end); // subject
  el = read(csr, el.end); // SubjectPublicKeyInfo
  return csr.subarray(el.start, el.end);
}

function errorName(e: unknown): string {
  return e instanceof Error ? e.name : 'Error';
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 500);
}

export function caseOf(r: CounterCaseRow): CounterCase {
  return {
    id: r.id,
    type: r.type,
    state: r.state,
    residentId: r.resident_id,
    municipalityCode: r.municipality_code,
    openedBy: r.opened_by,
    openedAt: r.opened_at,
    updatedAt: r.updated_at,
    identity:
      r.identity_documents !== null && r.identity_verified_by !== null && r.identity_verified_at !== null
        ? {
            documents: JSON.parse(r.identity_documents) as IdentityDocument[],
            verifiedBy: r.identity_verified_by,
            verifiedAt: r.identity_verified_at,
          }
        : null,
    fee:
      r.receipt_number !== null && r.fee_amount !== null && r.fee_paid_by !== null && r.fee_paid_at !== null
        ? {
            amountYen: r.fee_amount,
            method: r.fee_method ?? '',
            receiptNumber: r.receipt_number,
            paidBy: r.fee_paid_by,
            paidAt: r.fee_paid_at,
          }
        : null,
    cardId: r.card_id,
    signSerial: r.sign_serial,
    authSerial: r.auth_serial,
    completedAt: r.completed_at,
    lastError: r.last_error !== null ? { message: r.last_error, at: r.last_error_at ?? r.updated_at } : null,
  };
}

/** The receipt as printable plain text (no PDF). */
export function receiptText(r: Receipt): string {
  return [
    '領収書 / RECEIPT',
    '',
    `領収番号 Receipt no.   ${r.receiptNumber}`,
    `受付番号 Case         ${r.caseId}`,
    `市区町村 Municipality ${r.municipalityCode}`,
    `住民票コード Resident  ${r.residentId}`,
    `品目 Item             ${r.item.ja} / ${r.item.en}`,
    `金額 Amount           ${r.amountYen.toLocaleString('ja-JP')}円 (JPY ${r.amountYen})`,
    `支払方法 Method       ${r.method}`,
    `日時 Paid at          ${r.paidAt}`,
    `取扱者 Received by    ${r.receivedBy}`,
    '',
  ].join('\n');
}
