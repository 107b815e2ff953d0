// The registry of authorised verifiers (署名検証者 / 利用者証明検証者): administrative bodies (行政機関等) and
// private certification businesses (民間認証事業者) that may receive revocation information, under a
// contract with the designated certification authority.
//
// - Operators register, suspend, reinstate and end verifiers and change their contract period; each
//   change is authorised by the role table (`verifier.manage`) and written, with its audit entry, in one
//   transaction. A status change also appends to verifier_status_history (append-only in the database).
//   Status moves with a compare-and-swap (`… where status = <expected>`), so two operators cannot both
//   act on the same state.
// - Credentials: API keys (the secret shown once, only its SHA-256 kept) and client certificates
//   registered by fingerprint. Both are revocable; a key may carry its own expiry and never outlives
//   the contract, which is checked on every request.
// - Authentication (the hot path of every revocation request) looks the credential up once and keeps
//   the answer for `credentialCacheMs`; every change made through this registry clears that cache.

import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendAudit, type Db, staffActor } from '../audit/audit-log.ts';
import { canonicalSerial } from '../core/serial.ts';
import { authorize, type Principal } from '../staff/roles.ts';
import type {
  VerifierApiKeyRow,
  VerifierCategory,
  VerifierCertificateRow,
  VerifierKind,
  VerifierRow,
  VerifierStatus,
  VerifierStatusHistoryRow,
} from '../store/verifier-schema.ts';
import { isDay, jstDay, jstDayStart } from './calendar.ts';
import {
  CertificateCredentialError,
  checkClientCertificate,
  generateApiKey,
  parseApiKey,
  readCertificate,
  secretMatches,
} from './credentials.ts';

export type { UsageKind, VerifierCategory, VerifierKind, VerifierStatus } from '../store/verifier-schema.ts';

export const VERIFIER_CATEGORIES: readonly VerifierCategory[] = [
  'administrative-body',
  'private-certification-business',
];
/** sign: signature certificates (署名検証者); auth: user-authentication certificates (利用者証明検証者). */
export const VERIFIER_KINDS: readonly VerifierKind[] = ['sign', 'auth'];
export const VERIFIER_STATUSES: readonly VerifierStatus[] = ['active', 'suspended', 'ended'];

/** An authenticated operator (checked against the role table) or a trusted local actor ('cli:<user>'). */
export type VerifierActor = Principal | string;

export interface Verifier {
  id: number;
  name: string;
  category: VerifierCategory;
  /** The certificates whose revocation information it is authorised to receive. */
  kinds: VerifierKind[];
  /** First and last day of the contract in Japan, inclusive (YYYY-MM-DD). */
  contractFrom: string;
  contractTo: string;
  status: VerifierStatus;
  statusChangedAt: number;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  updatedBy: string;
}

export interface StatusChange {
  status: VerifierStatus;
  previousStatus: VerifierStatus | null;
  reason: string | null;
  at: number;
  actor: string;
}

export type CredentialState = 'valid' | 'revoked' | 'expired';

export interface ApiKeyInfo {
  keyId: string;
  label: string | null;
  createdAt: number;
  createdBy: string;
  /** The key's own expiry; null when it lasts as long as the contract. */
  expiresAt: number | null;
  revokedAt: number | null;
  revokedBy: string | null;
  state: CredentialState;
}

export interface CertificateInfo {
  fingerprintSha256: string;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  revokedBy: string | null;
  state: CredentialState;
}

export interface VerifierDetails {
  verifier: Verifier;
  history: StatusChange[];
  apiKeys: ApiKeyInfo[];
  certificates: CertificateInfo[];
}

export interface NewVerifier {
  name: string;
  category: VerifierCategory;
  /** Default: both. */
  kinds?: readonly VerifierKind[];
  contractFrom: string;
  contractTo: string;
}

export interface IssuedApiKey {
  keyId: string;
  /** The whole key: give it to the verifier once; it is not stored and cannot be shown again. */
  apiKey: string;
  expiresAt: number | null;
  /** When the key stops working unless the contract is extended: min(expiresAt, end of the contract). */
  validUntil: number;
}

/** Who is asking, once a credential has been recognised. */
export interface AuthenticatedVerifier {
  verifierId: number;
  name: string;
  category: VerifierCategory;
  kinds: VerifierKind[];
  status: VerifierStatus;
  contractFrom: string;
  contractTo: string;
  credential: { type: 'api-key'; keyId: string } | { type: 'certificate'; fingerprintSha256: string };
}

export type RefusalCode =
  | 'missing-credential'
  | 'unknown-credential'
  | 'revoked-credential'
  | 'expired-credential'
  | 'suspended'
  | 'ended'
  | 'outside-contract'
  | 'kind-not-authorised';

/** 401: no credential, or one that does not (or no longer) identify a verifier. 403: a known verifier
 * that may not receive revocation information now. */
export interface AccessRefusal {
  ok: false;
  status: 401 | 403;
  code: RefusalCode;
  message: string;
}

export type Authentication = { ok: true; verifier: AuthenticatedVerifier } | AccessRefusal;

export class VerifierInputError extends Error {
  override name = 'VerifierInputError';
}
export class UnknownVerifierError extends Error {
  override name = 'UnknownVerifierError';
}
export class VerifierStateError extends Error {
  override name = 'VerifierStateError';
}
export class VerifierExistsError extends Error {
  override name = 'VerifierExistsError';
}
export class UnknownCredentialError extends Error {
  override name = 'UnknownCredentialError';
}

export interface VerifierRegistryOptions {
  /** Clock in milliseconds since the epoch (tests inject one). Default Date.now. */
  now?: () => number;
  /** How long a credential lookup is reused. Default 5 s; 0 looks up every time. */
  credentialCacheMs?: number;
  /** The CA that issues verifiers' client certificates: PEM text or DER, or a path to a PEM file. */
  clientCa?: string | Uint8Array | { path: string };
}

const MAX_REASON = 500;
const MAX_LABEL = 100;
/** Cached lookups at most; beyond, the cache starts again (unknown keys must not grow it without bound). */
const CACHE_LIMIT = 10_000;

type CachedCredential =
  | {
      type: 'api-key';
      keyId: string;
      secretSha256: string;
      expiresAt: number | null;
      revokedAt: number | null;
      verifier: VerifierRow;
    }
  | {
      type: 'certificate';
      fingerprintSha256: string;
      notBefore: number;
      notAfter: number;
      revokedAt: number | null;
      verifier: VerifierRow;
    };

export class VerifierRegistry {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #cacheMs: number;
  readonly #clientCa: X509Certificate | undefined;
  readonly #cache = new Map<string, { until: number; entry: CachedCredential | null }>();

  constructor(db: Db, opts: VerifierRegistryOptions = {}) {
    this.#db = db;
    this.#now = opts.now ?? Date.now;
    this.#cacheMs = opts.credentialCacheMs ?? 5000;
    const ca = opts.clientCa;
    if (ca !== undefined) {
      const input = typeof ca === 'object' && 'path' in ca ? readFileSync(ca.path, 'utf8') : ca;
      try {
        this.#clientCa = readCertificate(input);
      } catch {
        throw new VerifierInputError('the verifier CA (clientCa) is not a certificate');
      }
      if (!this.#clientCa.ca)
        throw new VerifierInputError('the verifier CA (clientCa) is not a CA certificate');
    }
  }

  /** The CA whose client certificates can be registered (undefined: none configured). */
  get clientCa(): X509Certificate | undefined {
    return this.#clientCa;
  }

  // ---- the registry ----

  async register(input: NewVerifier, actor: VerifierActor): Promise<Verifier> {
    this.#authorize(actor);
    const name = typeof input.name === 'string' ? input.name.normalize('NFC').trim() : '';
    if (name.length < 1 || name.length > 200 || /\p{Cc}/u.test(name))
      throw new VerifierInputError('a verifier name is 1 to 200 characters without control characters');
    if (!VERIFIER_CATEGORIES.includes(input.category))
      throw new VerifierInputError(`the category must be one of ${VERIFIER_CATEGORIES.join(', ')}`);
    const kinds = kindsColumn(input.kinds ?? VERIFIER_KINDS);
    const now = this.#now();
    checkContract(input.contractFrom, input.contractTo, now);
    const by = actorString(actor);
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const row = await trx
          .insertInto('verifiers')
          .values({
            name,
            category: input.category,
            kinds,
            contract_from: input.contractFrom,
            contract_to: input.contractTo,
            status: 'active',
            status_changed_at: now,
            created_at: now,
            created_by: by,
            updated_at: now,
            updated_by: by,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await trx
          .insertInto('verifier_status_history')
          .values({
            verifier_id: row.id,
            status: 'active',
            previous_status: null,
            reason: null,
            at: now,
            actor: by,
          })
          .execute();
        await appendAudit(trx, {
          actor: by,
          action: 'verifier.register',
          subject: verifierSubject(row.id),
          at: now,
          details: {
            category: row.category,
            kinds: row.kinds,
            contractFrom: row.contract_from,
            contractTo: row.contract_to,
          },
        });
        return verifierOf(row);
      });
    } catch (err) {
      if (isUniqueViolation(err))
        throw new VerifierExistsError(`a verifier named "${name}" is already registered`);
      throw err;
    }
  }

  async list(opts: { status?: VerifierStatus; actor?: VerifierActor } = {}): Promise<Verifier[]> {
    if (opts.actor !== undefined) this.#authorize(opts.actor);
    let q = this.#db.selectFrom('verifiers').selectAll();
    if (opts.status) q = q.where('status', '=', opts.status);
    return (await q.orderBy('id').execute()).map(verifierOf);
  }

  /** A verifier, or UnknownVerifierError. */
  async get(id: number, actor?: VerifierActor): Promise<Verifier> {
    if (actor !== undefined) this.#authorize(actor);
    return verifierOf(await this.#row(this.#db, id));
  }

  /** A verifier with its status history and credentials (never a secret). */
  async details(id: number, actor?: VerifierActor): Promise<VerifierDetails> {
    if (actor !== undefined) this.#authorize(actor);
    const verifier = verifierOf(await this.#row(this.#db, id));
    const now = this.#now();
    const [history, keys, certs] = await Promise.all([
      this.#db
        .selectFrom('verifier_status_history')
        .selectAll()
        .where('verifier_id', '=', id)
        .orderBy('id')
        .execute(),
      this.#db
        .selectFrom('verifier_api_keys')
        .selectAll()
        .where('verifier_id', '=', id)
        .orderBy('created_at')
        .execute(),
      this.#db
        .selectFrom('verifier_certificates')
        .selectAll()
        .where('verifier_id', '=', id)
        .orderBy('created_at')
        .execute(),
    ]);
    return {
      verifier,
      history: history.map(statusChangeOf),
      apiKeys: keys.map((k) => apiKeyInfo(k, now)),
      certificates: certs.map((c) => certificateInfo(c, now)),
    };
  }

  async suspend(id: number, reason: string, actor: VerifierActor): Promise<Verifier> {
    return this.#transition(id, ['active'], 'suspended', requiredReason(reason), actor, 'verifier.suspend');
  }

  async reinstate(id: number, reason: string | undefined, actor: VerifierActor): Promise<Verifier> {
    return this.#transition(id, ['suspended'], 'active', optionalReason(reason), actor, 'verifier.reinstate');
  }

  /** Ends the verifier for good (the contract was terminated): no credential of it works again. */
  async end(id: number, reason: string, actor: VerifierActor): Promise<Verifier> {
    return this.#transition(
      id,
      ['active', 'suspended'],
      'ended',
      requiredReason(reason),
      actor,
      'verifier.end',
    );
  }

  /** A new contract period (an extension, a correction). Not for ended verifiers. */
  async changeContract(
    id: number,
    contract: { from: string; to: string },
    actor: VerifierActor,
  ): Promise<Verifier> {
    this.#authorize(actor);
    const now = this.#now();
    checkContract(contract.from, contract.to, now);
    const by = actorString(actor);
    const v = await this.#db.transaction().execute(async (trx) => {
      const before = await this.#row(trx, id);
      if (before.status === 'ended')
        throw new VerifierStateError(`verifier ${id} has ended; register it anew`);
      const row = await trx
        .updateTable('verifiers')
        .set({ contract_from: contract.from, contract_to: contract.to, updated_at: now, updated_by: by })
        .where('id', '=', id)
        .where('status', '<>', 'ended')
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new VerifierStateError(`verifier ${id} has ended; register it anew`);
      await appendAudit(trx, {
        actor: by,
        action: 'verifier.contract',
        subject: verifierSubject(id),
        at: now,
        details: {
          from: { contractFrom: before.contract_from, contractTo: before.contract_to },
          to: { contractFrom: row.contract_from, contractTo: row.contract_to },
        },
      });
      return verifierOf(row);
    });
    this.#cache.clear();
    return v;
  }

  /** Changes which certificates' revocation information the verifier may receive (its authorisation). */
  async changeKinds(id: number, kinds: readonly VerifierKind[], actor: VerifierActor): Promise<Verifier> {
    this.#authorize(actor);
    const column = kindsColumn(kinds);
    const now = this.#now();
    const by = actorString(actor);
    const v = await this.#db.transaction().execute(async (trx) => {
      const before = await this.#row(trx, id);
      const row = await trx
        .updateTable('verifiers')
        .set({ kinds: column, updated_at: now, updated_by: by })
        .where('id', '=', id)
        .where('status', '<>', 'ended')
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new VerifierStateError(`verifier ${id} has ended; register it anew`);
      await appendAudit(trx, {
        actor: by,
        action: 'verifier.kinds',
        subject: verifierSubject(id),
        at: now,
        details: { from: before.kinds, to: row.kinds },
      });
      return verifierOf(row);
    });
    this.#cache.clear();
    return v;
  }

  async #transition(
    id: number,
    from: readonly VerifierStatus[],
    to: VerifierStatus,
    reason: string | null,
    actor: VerifierActor,
    action: string,
  ): Promise<Verifier> {
    this.#authorize(actor);
    const now = this.#now();
    const by = actorString(actor);
    const v = await this.#db.transaction().execute(async (trx) => {
      const before = await this.#row(trx, id);
      const refuse = () =>
        new VerifierStateError(
          `verifier ${id} is ${before.status}; it cannot become ${to} (only from ${from.join(' or ')})`,
        );
      if (!from.includes(before.status)) throw refuse();
      // Compare-and-swap: a concurrent change of the status makes this one fail rather than overwrite it.
      const row = await trx
        .updateTable('verifiers')
        .set({ status: to, status_changed_at: now, updated_at: now, updated_by: by })
        .where('id', '=', id)
        .where('status', '=', before.status)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw refuse();
      await trx
        .insertInto('verifier_status_history')
        .values({ verifier_id: id, status: to, previous_status: before.status, reason, at: now, actor: by })
        .execute();
      await appendAudit(trx, {
        actor: by,
        action,
        subject: verifierSubject(id),
        at: now,
        details: { from: before.status, to, ...(reason ? { reason } : {}) },
      });
      return verifierOf(row);
    });
    this.#cache.clear();
    return v;
  }

  // ---- credentials ----

  /** A new API key for the verifier. The key is in the result only; store it nowhere else. */
  async issueApiKey(
    id: number,
    opts: { label?: string; expiresAt?: number },
    actor: VerifierActor,
  ): Promise<IssuedApiKey> {
    this.#authorize(actor);
    const now = this.#now();
    const label = opts.label?.trim() || null;
    if (label !== null && (label.length > MAX_LABEL || /\p{Cc}/u.test(label)))
      throw new VerifierInputError(
        `a key label is at most ${MAX_LABEL} characters without control characters`,
      );
    const expiresAt = opts.expiresAt ?? null;
    if (expiresAt !== null && (!Number.isSafeInteger(expiresAt) || expiresAt <= now))
      throw new VerifierInputError('a key must expire in the future');
    const by = actorString(actor);
    const key = generateApiKey();
    return this.#db.transaction().execute(async (trx) => {
      const v = await this.#row(trx, id);
      if (v.status === 'ended') throw new VerifierStateError(`verifier ${id} has ended; it gets no new keys`);
      await trx
        .insertInto('verifier_api_keys')
        .values({
          key_id: key.keyId,
          verifier_id: id,
          secret_sha256: key.secretSha256,
          label,
          created_at: now,
          created_by: by,
          expires_at: expiresAt,
        })
        .execute();
      await appendAudit(trx, {
        actor: by,
        action: 'verifier.key-issue',
        subject: verifierSubject(id),
        at: now,
        details: { keyId: key.keyId, expiresAt },
      });
      const contractEnd = contractEndsAt(v.contract_to);
      return {
        keyId: key.keyId,
        apiKey: key.apiKey,
        expiresAt,
        validUntil: expiresAt === null ? contractEnd : Math.min(expiresAt, contractEnd),
      };
    });
  }

  /** Revokes a key of the verifier. Idempotent: `revoked: false` when it already was. */
  async revokeApiKey(id: number, keyId: string, actor: VerifierActor): Promise<{ revoked: boolean }> {
    this.#authorize(actor);
    const now = this.#now();
    const by = actorString(actor);
    const r = await this.#db.transaction().execute(async (trx) => {
      await this.#row(trx, id);
      const key = await trx
        .selectFrom('verifier_api_keys')
        .select(['key_id', 'revoked_at'])
        .where('key_id', '=', keyId)
        .where('verifier_id', '=', id)
        .executeTakeFirst();
      if (!key) throw new UnknownCredentialError(`verifier ${id} has no key ${keyId}`);
      const done = await trx
        .updateTable('verifier_api_keys')
        .set({ revoked_at: now, revoked_by: by })
        .where('key_id', '=', keyId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) === 0) return { revoked: false };
      await appendAudit(trx, {
        actor: by,
        action: 'verifier.key-revoke',
        subject: verifierSubject(id),
        at: now,
        details: { keyId },
      });
      return { revoked: true };
    });
    this.#cache.clear();
    return r;
  }

  /** Registers a client certificate (PEM or DER) issued by the verifier CA for the verifier. */
  /**
   * `opts.db`: register within the caller's transaction; `opts.issuer`: the CA that must have issued it
   * instead of clientCa (both used when the authority's own verifier CA issues the certificate).
   */
  async registerCertificate(
    id: number,
    certificate: string | Uint8Array,
    actor: VerifierActor,
    opts: { db?: Db; issuer?: Uint8Array } = {},
  ): Promise<CertificateInfo> {
    this.#authorize(actor);
    const clientCa = opts.issuer ? readCertificate(opts.issuer) : this.#clientCa;
    if (!clientCa)
      throw new VerifierStateError(
        'no verifier CA is configured (clientCa in verifiers.json): certificates cannot be registered',
      );
    const now = this.#now();
    const cert = checkClientCertificate(readCertificate(certificate), clientCa, now);
    const by = actorString(actor);
    const inTransaction = <T>(fn: (trx: Db) => Promise<T>): Promise<T> =>
      opts.db ? fn(opts.db) : this.#db.transaction().execute(fn);
    try {
      const info = await inTransaction(async (trx) => {
        const v = await this.#row(trx, id);
        if (v.status === 'ended')
          throw new VerifierStateError(`verifier ${id} has ended; it gets no new credentials`);
        const row = await trx
          .insertInto('verifier_certificates')
          .values({
            fingerprint_sha256: cert.fingerprintSha256,
            verifier_id: id,
            serial: cert.serial,
            subject: cert.subject,
            issuer: cert.issuer,
            not_before: cert.notBefore,
            not_after: cert.notAfter,
            der: cert.der,
            created_at: now,
            created_by: by,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await appendAudit(trx, {
          actor: by,
          action: 'verifier.certificate-register',
          subject: verifierSubject(id),
          at: now,
          details: {
            fingerprintSha256: cert.fingerprintSha256,
            serial: cert.serial,
            notAfter: cert.notAfter,
          },
        });
        return certificateInfo(row, now);
      });
      this.#cache.clear();
      return info;
    } catch (err) {
      if (isUniqueViolation(err)) throw new VerifierExistsError('this certificate is already registered');
      throw err;
    }
  }

  /** Revokes a registered client certificate. Idempotent: `revoked: false` when it already was. */
  async revokeCertificate(
    id: number,
    fingerprintSha256: string,
    actor: VerifierActor,
    opts: {
      /** Runs in the revoking transaction: the authority records the revocation of a certificate it issued. */
      inTransaction?: (trx: Db, cert: { serial: string; issuer: string; der: Uint8Array }) => Promise<void>;
    } = {},
  ): Promise<{ revoked: boolean }> {
    this.#authorize(actor);
    const now = this.#now();
    const by = actorString(actor);
    const fp = fingerprintSha256.toLowerCase();
    const r = await this.#db.transaction().execute(async (trx) => {
      await this.#row(trx, id);
      const cert = await trx
        .selectFrom('verifier_certificates')
        .select(['fingerprint_sha256', 'serial', 'issuer', 'der'])
        .where('fingerprint_sha256', '=', fp)
        .where('verifier_id', '=', id)
        .executeTakeFirst();
      if (!cert) throw new UnknownCredentialError(`verifier ${id} has no certificate ${fp}`);
      const done = await trx
        .updateTable('verifier_certificates')
        .set({ revoked_at: now, revoked_by: by })
        .where('fingerprint_sha256', '=', fp)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) === 0) return { revoked: false };
      await opts.inTransaction?.(trx, cert);
      await appendAudit(trx, {
        actor: by,
        action: 'verifier.certificate-revoke',
        subject: verifierSubject(id),
        at: now,
        details: { fingerprintSha256: fp },
      });
      return { revoked: true };
    });
    this.#cache.clear();
    return r;
  }

  // ---- authentication (hot path) ----

  /** Recognises an API key: the verifier, or a 401 refusal. Says nothing about the verifier's standing. */
  async authenticateApiKey(presented: string): Promise<Authentication> {
    const parsed = parseApiKey(presented);
    if (!parsed) return UNKNOWN;
    const entry = await this.#cached(`k:${parsed.keyId}`, async () => {
      const row = await this.#db
        .selectFrom('verifier_api_keys')
        .innerJoin('verifiers', 'verifiers.id', 'verifier_api_keys.verifier_id')
        .selectAll('verifiers')
        .select([
          'verifier_api_keys.key_id',
          'verifier_api_keys.secret_sha256',
          'verifier_api_keys.expires_at',
          'verifier_api_keys.revoked_at',
        ])
        .where('verifier_api_keys.key_id', '=', parsed.keyId)
        .executeTakeFirst();
      if (!row) return null;
      const { key_id, secret_sha256, expires_at, revoked_at, ...verifier } = row;
      return {
        type: 'api-key',
        keyId: key_id,
        secretSha256: secret_sha256,
        expiresAt: expires_at,
        revokedAt: revoked_at,
        verifier,
      } satisfies CachedCredential;
    });
    if (entry?.type !== 'api-key' || !secretMatches(parsed.secret, entry.secretSha256)) return UNKNOWN;
    if (entry.revokedAt !== null)
      return refusal(401, 'revoked-credential', `this API key was revoked on ${iso(entry.revokedAt)}`);
    if (entry.expiresAt !== null && entry.expiresAt <= this.#now())
      return refusal(401, 'expired-credential', `this API key expired on ${iso(entry.expiresAt)}`);
    return { ok: true, verifier: authenticated(entry.verifier, { type: 'api-key', keyId: entry.keyId }) };
  }

  /** Recognises a client certificate by its SHA-256 fingerprint (lowercase hex). */
  async authenticateCertificate(fingerprintSha256: string): Promise<Authentication> {
    const fp = fingerprintSha256.toLowerCase();
    const entry = await this.#cached(`c:${fp}`, async () => {
      const row = await this.#db
        .selectFrom('verifier_certificates')
        .innerJoin('verifiers', 'verifiers.id', 'verifier_certificates.verifier_id')
        .selectAll('verifiers')
        .select([
          'verifier_certificates.fingerprint_sha256',
          'verifier_certificates.not_before',
          'verifier_certificates.not_after',
          'verifier_certificates.revoked_at',
          'verifier_certificates.serial as certificate_serial',
        ])
        .where('verifier_certificates.fingerprint_sha256', '=', fp)
        .executeTakeFirst();
      if (!row) return null;
      const { fingerprint_sha256, not_before, not_after, revoked_at, certificate_serial, ...verifier } = row;
      // A certificate of the authority's verifier CA revoked at the authority (jpki revoke, the
      // operator API) is a revoked credential too, whichever way it was revoked.
      const revocation = await this.#db
        .selectFrom('revocations')
        .select('recorded_at')
        .where('serial', '=', canonicalSerial(certificate_serial))
        .where('ca', '=', 'verifier')
        .executeTakeFirst();
      return {
        type: 'certificate',
        fingerprintSha256: fingerprint_sha256,
        notBefore: not_before,
        notAfter: not_after,
        revokedAt: revoked_at ?? revocation?.recorded_at ?? null,
        verifier,
      } satisfies CachedCredential;
    });
    if (entry?.type !== 'certificate')
      return refusal(401, 'unknown-credential', 'this client certificate is not registered for any verifier');
    const now = this.#now();
    if (entry.revokedAt !== null)
      return refusal(
        401,
        'revoked-credential',
        `this client certificate was revoked on ${iso(entry.revokedAt)}`,
      );
    if (entry.notAfter <= now)
      return refusal(401, 'expired-credential', `this client certificate expired on ${iso(entry.notAfter)}`);
    if (entry.notBefore > now)
      return refusal(
        401,
        'expired-credential',
        `this client certificate is not valid before ${iso(entry.notBefore)}`,
      );
    return {
      ok: true,
      verifier: authenticated(entry.verifier, {
        type: 'certificate',
        fingerprintSha256: entry.fingerprintSha256,
      }),
    };
  }

  /** Forgets every cached credential lookup. */
  clearCache(): void {
    this.#cache.clear();
  }

  async #cached(key: string, load: () => Promise<CachedCredential | null>): Promise<CachedCredential | null> {
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.entry;
    const entry = await load();
    if (this.#cacheMs > 0) {
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(key, { until: now + this.#cacheMs, entry });
    }
    return entry;
  }

  async #row(db: Db, id: number): Promise<VerifierRow> {
    if (!Number.isSafeInteger(id) || id < 1) throw new UnknownVerifierError(`no verifier ${String(id)}`);
    const row = await db.selectFrom('verifiers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new UnknownVerifierError(`no verifier ${id}`);
    return row;
  }

  #authorize(actor: VerifierActor): void {
    if (typeof actor !== 'string') authorize(actor, 'verifier.manage');
  }
}

/**
 * Whether an authenticated verifier may receive revocation information at `now`: null if so, else the
 * 403 refusal (suspended, ended, or outside its contract period).
 */
export function revocationRefusal(v: AuthenticatedVerifier, now: number): AccessRefusal | null {
  if (v.status === 'suspended')
    return refusal(
      403,
      'suspended',
      `verifier ${v.verifierId} is suspended: no revocation information is served`,
    );
  if (v.status === 'ended')
    return refusal(
      403,
      'ended',
      `verifier ${v.verifierId} has ended its contract: no revocation information is served`,
    );
  const today = jstDay(now);
  if (today < v.contractFrom)
    return refusal(
      403,
      'outside-contract',
      `the contract of verifier ${v.verifierId} starts on ${v.contractFrom}`,
    );
  if (today > v.contractTo)
    return refusal(
      403,
      'outside-contract',
      `the contract of verifier ${v.verifierId} ended on ${v.contractTo}`,
    );
  return null;
}

export const MISSING_CREDENTIAL: AccessRefusal = refusal(
  401,
  'missing-credential',
  'authorised verifiers only: send an API key (Authorization: Bearer <key> or X-API-Key) or a registered client certificate',
);
const UNKNOWN: AccessRefusal = refusal(401, 'unknown-credential', 'unknown API key');

function refusal(status: 401 | 403, code: RefusalCode, message: string): AccessRefusal {
  return { ok: false, status, code, message };
}

function authenticated(
  v: VerifierRow,
  credential: AuthenticatedVerifier['credential'],
): AuthenticatedVerifier {
  return {
    verifierId: v.id,
    name: v.name,
    category: v.category,
    kinds: kindsOf(v.kinds),
    status: v.status,
    contractFrom: v.contract_from,
    contractTo: v.contract_to,
    credential,
  };
}

/** The first instant after the contract's last day (JST). */
export function contractEndsAt(contractTo: string): number {
  return jstDayStart(contractTo) + 86_400_000;
}

function checkContract(from: string, to: string, now: number): void {
  if (typeof from !== 'string' || !isDay(from) || typeof to !== 'string' || !isDay(to))
    throw new VerifierInputError('contract dates are calendar days, YYYY-MM-DD');
  if (to < from) throw new VerifierInputError('the contract cannot end before it starts');
  if (to < jstDay(now)) throw new VerifierInputError(`the contract ended on ${to}: nothing to register`);
}

function requiredReason(reason: string): string {
  const r = optionalReason(reason);
  if (r === null) throw new VerifierInputError('give a reason');
  return r;
}

function optionalReason(reason: string | undefined): string | null {
  const r = typeof reason === 'string' ? reason.trim() : '';
  if (r === '') return null;
  if (r.length > MAX_REASON || /\p{Cc}/u.test(r))
    throw new VerifierInputError(`a reason is at most ${MAX_REASON} characters without control characters`);
  return r;
}

/** The kinds column ('sign', 'auth' or 'sign,auth') of a list of kinds; VerifierInputError if empty or unknown. */
export function kindsColumn(kinds: readonly VerifierKind[]): string {
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => !VERIFIER_KINDS.includes(k)))
    throw new VerifierInputError(
      `the certificate kinds are one or both of ${VERIFIER_KINDS.join(', ')} (sign: signature certificates, auth: user-authentication certificates)`,
    );
  return VERIFIER_KINDS.filter((k) => kinds.includes(k)).join(',');
}

function kindsOf(column: string): VerifierKind[] {
  return column.split(',') as VerifierKind[];
}

const KIND_WORDS: Record<VerifierKind, string> = {
  sign: 'signature certificates',
  auth: 'user-authentication certificates',
};

/** 403 when the verifier is not authorised for revocation information of `kind` certificates; else null. */
export function kindRefusal(
  v: AuthenticatedVerifier,
  kind: VerifierKind,
  what: string,
): AccessRefusal | null {
  if (v.kinds.includes(kind)) return null;
  return refusal(
    403,
    'kind-not-authorised',
    `verifier ${v.verifierId} is authorised for revocation information of ${v.kinds.map((k) => KIND_WORDS[k]).join(' and ')} only; ${what} concerns ${KIND_WORDS[kind]}`,
  );
}

export const verifierSubject = (id: number): string => `verifier:${id}`;

function actorString(actor: VerifierActor): string {
  return typeof actor === 'string' ? actor : staffActor(actor.staffId);
}

function verifierOf(r: VerifierRow): Verifier {
  return {
    id: r.id,
    name: r.name,
    category: r.category,
    kinds: kindsOf(r.kinds),
    contractFrom: r.contract_from,
    contractTo: r.contract_to,
    status: r.status,
    statusChangedAt: r.status_changed_at,
    createdAt: r.created_at,
    createdBy: r.created_by,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
  };
}

function statusChangeOf(r: VerifierStatusHistoryRow): StatusChange {
  return { status: r.status, previousStatus: r.previous_status, reason: r.reason, at: r.at, actor: r.actor };
}

function apiKeyInfo(k: VerifierApiKeyRow, now: number): ApiKeyInfo {
  return {
    keyId: k.key_id,
    label: k.label,
    createdAt: k.created_at,
    createdBy: k.created_by,
    expiresAt: k.expires_at,
    revokedAt: k.revoked_at,
    revokedBy: k.revoked_by,
    state:
      k.revoked_at !== null ? 'revoked' : k.expires_at !== null && k.expires_at <= now ? 'expired' : 'valid',
  };
}

function certificateInfo(c: VerifierCertificateRow, now: number): CertificateInfo {
  return {
    fingerprintSha256: c.fingerprint_sha256,
    serial: c.serial,
    subject: c.subject,
    issuer: c.issuer,
    notBefore: c.not_before,
    notAfter: c.not_after,
    createdAt: c.created_at,
    createdBy: c.created_by,
    revokedAt: c.revoked_at,
    revokedBy: c.revoked_by,
    state: c.revoked_at !== null ? 'revoked' : c.not_after <= now ? 'expired' : 'valid',
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

export { CertificateCredentialError };
