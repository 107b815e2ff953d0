// Staff accounts, logins and sessions.
//
// - Accounts: municipal clerks and supervisors (one municipality each) and the authority's operators.
//   Rows are never deleted, only disabled, so `staff:<id>` in the audit log always resolves.
// - Logins: scrypt password check; after 10 failures in a row the account is locked for 15 minutes. The
//   count and the lock live in the database (one atomic UPDATE), so they hold across processes. While
//   locked the password is not even checked. An unknown username costs the same scrypt work as a known one.
// - Sessions: 32 random bytes (base64url) handed to the client; only their SHA-256 is stored. A session
//   ends after 30 minutes without use, 12 hours after login, at logout, or when the account is disabled.
// - Every login, failure, lock-out and session revocation, and every account change, is appended to the
//   audit log in the same transaction as the change it records.

import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { type AuditEntry, appendAudit, type Db, staffActor } from '../audit/audit-log.ts';
import type { StaffRole, StaffRow } from '../store/staff-schema.ts';
import {
  checkPasswordPolicy,
  DEFAULT_SCRYPT,
  hashPassword,
  needsRehash,
  type ScryptParams,
  verifyPassword,
} from './password.ts';
import { authorize, type Principal, STAFF_ROLES } from './roles.ts';

export interface StaffServiceOptions {
  /** Clock in milliseconds since the epoch (tests inject one). Default Date.now. */
  now?: () => number;
  /** Failed logins in a row before the account locks. Default 10. */
  maxFailedLogins?: number;
  /** How long a lock-out lasts. Default 15 minutes. */
  lockoutMs?: number;
  /** A session unused this long is over. Default 30 minutes. */
  idleTimeoutMs?: number;
  /** A session is over this long after login, used or not. Default 12 hours. */
  absoluteTimeoutMs?: number;
  /** last_seen_at is written at most this often per session. Default 1 minute. */
  touchIntervalMs?: number;
  /** scrypt parameters for new hashes. Default N = 2^15, r = 8, p = 1. */
  scrypt?: ScryptParams;
}

/** Who performs an account change: an authenticated staff member (checked against the role table) or a
 * trusted local actor such as 'cli:<os user>' or 'system' (not checked: it already holds the database). */
export type StaffActor = Principal | string;

export interface StaffInfo {
  id: number;
  username: string;
  role: StaffRole;
  municipalityCode: string | null;
  createdAt: number;
  disabledAt: number | null;
  /** Set while a lock-out is in force. */
  lockedUntil: number | null;
  failedLogins: number;
}

export interface NewStaff {
  username: string;
  password: string;
  role: StaffRole;
  /** Six digits; required for clerks and supervisors, refused for operators. */
  municipalityCode?: string | null;
}

export interface LoginResult {
  /** The bearer token: give it to the client, never store or log it. */
  token: string;
  /** Short id of the session (first 16 hex digits of the token's hash), as the audit log shows it. */
  sessionId: string;
  principal: Principal;
  /** Absolute expiry of the session. */
  expiresAt: number;
}

export class StaffInputError extends Error {
  override name = 'StaffInputError';
}

export class StaffExistsError extends Error {
  override name = 'StaffExistsError';
}

export class UnknownStaffError extends Error {
  override name = 'UnknownStaffError';
}

export type LoginErrorCode = 'invalid-credentials' | 'locked';

/** A refused login. 'invalid-credentials' does not say whether the username exists or is disabled. */
export class LoginError extends Error {
  override name = 'LoginError';
  readonly code: LoginErrorCode;
  /** For 'locked': when logins are accepted again. */
  readonly lockedUntil?: number;
  constructor(code: LoginErrorCode, lockedUntil?: number) {
    super(
      code === 'locked'
        ? `the account is locked until ${new Date(lockedUntil!).toISOString()} after too many failed logins`
        : 'wrong username or password',
    );
    this.code = code;
    this.lockedUntil = lockedUntil;
  }
}

export type SessionErrorCode = 'invalid' | 'expired' | 'idle' | 'revoked' | 'disabled';

/** A token that does not (or no longer) authenticate anyone. */
export class SessionError extends Error {
  override name = 'SessionError';
  readonly code: SessionErrorCode;
  constructor(code: SessionErrorCode) {
    super(
      {
        invalid: 'unknown session token',
        expired: 'the session has expired; log in again',
        idle: 'the session expired after inactivity; log in again',
        revoked: 'the session has ended (logged out)',
        disabled: 'the account is disabled',
      }[code],
    );
    this.code = code;
  }
}

const USERNAME = /^[a-z][a-z0-9._-]{2,63}$/;
const MUNICIPALITY = /^[0-9]{6}$/;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** Lower case NFKC, trimmed: the form usernames are stored and compared in. */
export function normalizeUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/** Lowercase hex SHA-256 of a session token: the only form in which a token is stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class StaffService {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #maxFailed: number;
  readonly #lockoutMs: number;
  readonly #idleMs: number;
  readonly #absoluteMs: number;
  readonly #touchMs: number;
  readonly #scrypt: ScryptParams;
  #dummyHash?: Promise<string>;

  constructor(db: Db, opts: StaffServiceOptions = {}) {
    this.#db = db;
    this.#now = opts.now ?? Date.now;
    this.#maxFailed = opts.maxFailedLogins ?? 10;
    this.#lockoutMs = opts.lockoutMs ?? 15 * 60_000;
    this.#idleMs = opts.idleTimeoutMs ?? 30 * 60_000;
    this.#absoluteMs = opts.absoluteTimeoutMs ?? 12 * 3600_000;
    this.#touchMs = opts.touchIntervalMs ?? 60_000;
    this.#scrypt = opts.scrypt ?? DEFAULT_SCRYPT;
  }

  // ---- accounts ----

  /** Creates an account. Throws StaffInputError, PasswordPolicyError, StaffExistsError or ForbiddenError. */
  async createStaff(input: NewStaff, actor: StaffActor): Promise<StaffInfo> {
    const username = normalizeUsername(input.username);
    if (!USERNAME.test(username))
      throw new StaffInputError(
        'a username is 3 to 64 characters: a letter, then letters, digits, ".", "_" or "-"',
      );
    if (!STAFF_ROLES.includes(input.role))
      throw new StaffInputError(`the role must be one of ${STAFF_ROLES.join(', ')}`);
    const municipalityCode = input.municipalityCode ?? null;
    if (input.role === 'operator' && municipalityCode !== null)
      throw new StaffInputError('operators belong to the authority, not to a municipality');
    if (input.role !== 'operator' && (municipalityCode === null || !MUNICIPALITY.test(municipalityCode)))
      throw new StaffInputError(`a ${input.role} needs the six-digit code of their municipality`);
    if (typeof actor !== 'string')
      authorize(actor, 'staff.manage', { municipalityCode, targetRole: input.role });
    checkPasswordPolicy(input.password, username);
    const passwordHash = await hashPassword(input.password, this.#scrypt);
    const now = this.#now();
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const row = await trx
          .insertInto('staff')
          .values({
            username,
            role: input.role,
            municipality_code: municipalityCode,
            password_hash: passwordHash,
            created_at: now,
            updated_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await appendAudit(trx, {
          ...this.#by(actor, now),
          action: 'staff.create',
          subject: staffActor(row.id),
          municipalityCode,
          details: { role: input.role },
        });
        return info(row, now);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new StaffExistsError(`a staff account "${username}" already exists`);
      throw err;
    }
  }

  /** Accounts, by id. A supervisor sees their municipality only; give `municipalityCode` to filter. */
  async listStaff(opts: { municipalityCode?: string; actor?: StaffActor } = {}): Promise<StaffInfo[]> {
    let municipality = opts.municipalityCode;
    if (opts.actor !== undefined && typeof opts.actor !== 'string' && opts.actor.role !== 'operator') {
      municipality = opts.actor.municipalityCode ?? undefined;
      if (opts.municipalityCode !== undefined && opts.municipalityCode !== municipality) return [];
      authorize(opts.actor, 'staff.manage', { municipalityCode: municipality, targetRole: 'clerk' });
    }
    let q = this.#db.selectFrom('staff').selectAll();
    if (municipality !== undefined) q = q.where('municipality_code', '=', municipality);
    const now = this.#now();
    return (await q.orderBy('id').execute()).map((r) => info(r, now));
  }

  async findStaff(username: string): Promise<StaffInfo | undefined> {
    const row = await this.#row(normalizeUsername(username));
    return row && info(row, this.#now());
  }

  /** Disables an account and ends its sessions. Idempotent (a second call changes and logs nothing). */
  async disableStaff(
    username: string,
    actor: StaffActor,
  ): Promise<{ changed: boolean; sessionsRevoked: number }> {
    return this.#change(username, actor, async (trx, row, now) => {
      if (row.disabled_at !== null) return { changed: false, sessionsRevoked: 0 };
      await trx
        .updateTable('staff')
        .set({ disabled_at: now, updated_at: now })
        .where('id', '=', row.id)
        .execute();
      const sessionsRevoked = await revokeSessionsOf(trx, row.id, now);
      await appendAudit(trx, {
        ...this.#by(actor, now),
        action: 'staff.disable',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
        details: { sessionsRevoked },
      });
      return { changed: true, sessionsRevoked };
    });
  }

  /** Lifts a lock-out and clears the failure count. */
  async unlockStaff(username: string, actor: StaffActor): Promise<void> {
    await this.#change(username, actor, async (trx, row, now) => {
      await trx
        .updateTable('staff')
        .set({ failed_logins: 0, locked_until: null, updated_at: now })
        .where('id', '=', row.id)
        .execute();
      await appendAudit(trx, {
        ...this.#by(actor, now),
        action: 'staff.unlock',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
      });
    });
  }

  /** Sets a new password (policy checked), clears a lock-out and ends the account's sessions. */
  async resetPassword(username: string, password: string, actor: StaffActor): Promise<void> {
    const name = normalizeUsername(username);
    checkPasswordPolicy(password, name);
    const passwordHash = await hashPassword(password, this.#scrypt);
    await this.#change(name, actor, async (trx, row, now) => {
      await trx
        .updateTable('staff')
        .set({ password_hash: passwordHash, failed_logins: 0, locked_until: null, updated_at: now })
        .where('id', '=', row.id)
        .execute();
      const sessionsRevoked = await revokeSessionsOf(trx, row.id, now);
      await appendAudit(trx, {
        ...this.#by(actor, now),
        action: 'staff.password-reset',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
        details: { sessionsRevoked },
      });
    });
  }

  // ---- logins and sessions ----

  /** Checks the password and opens a session. Throws LoginError. */
  async login(username: string, password: string): Promise<LoginResult> {
    const name = normalizeUsername(String(username));
    const row = USERNAME.test(name) ? await this.#row(name) : undefined;
    if (!row || row.disabled_at !== null) {
      // The same scrypt work as a real check, so timing does not tell which usernames exist.
      await verifyPassword(String(password), await this.#dummy());
      await appendAudit(this.#db, {
        actor: 'anonymous',
        action: 'staff.login-failed',
        // An unknown username is not logged at all: people sometimes type their password there.
        subject: row ? staffActor(row.id) : null,
        municipalityCode: row?.municipality_code ?? null,
        details: { reason: row ? 'disabled' : 'unknown-user' },
        at: this.#now(),
      });
      throw new LoginError('invalid-credentials');
    }
    const start = this.#now();
    if (row.locked_until !== null && row.locked_until > start) {
      await appendAudit(this.#db, {
        actor: 'anonymous',
        action: 'staff.login-failed',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
        details: { reason: 'locked' },
        at: start,
      });
      throw new LoginError('locked', row.locked_until);
    }

    const good = await verifyPassword(String(password), row.password_hash);
    const now = this.#now();
    if (!good) return this.#failed(row, now);

    const rehash = needsRehash(row.password_hash, this.#scrypt)
      ? await hashPassword(String(password), this.#scrypt)
      : undefined;
    const token = randomBytes(32).toString('base64url');
    const tokenHash = hashToken(token);
    const expiresAt = now + this.#absoluteMs;
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .updateTable('staff')
        .set({
          failed_logins: 0,
          locked_until: null,
          updated_at: now,
          ...(rehash ? { password_hash: rehash } : {}),
        })
        .where('id', '=', row.id)
        .execute();
      await trx
        .insertInto('staff_sessions')
        .values({
          token_hash: tokenHash,
          staff_id: row.id,
          created_at: now,
          last_seen_at: now,
          expires_at: expiresAt,
        })
        .execute();
      await appendAudit(trx, {
        actor: staffActor(row.id),
        action: 'staff.login',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
        details: { session: tokenHash.slice(0, 16), ...(rehash ? { rehashed: true } : {}) },
        at: now,
      });
    });
    return { token, sessionId: tokenHash.slice(0, 16), principal: principalOf(row), expiresAt };
  }

  async #failed(row: StaffRow, now: number): Promise<never> {
    const max = this.#maxFailed;
    const lockUntil = now + this.#lockoutMs;
    const locked = await this.#db.transaction().execute(async (trx) => {
      // One statement: concurrent failures in several processes each count exactly once.
      const after = await trx
        .updateTable('staff')
        .set({
          failed_logins: sql<number>`case when failed_logins + 1 >= ${sql.lit(max)} then 0 else failed_logins + 1 end`,
          locked_until: sql<
            number | null
          >`case when failed_logins + 1 >= ${sql.lit(max)} then ${lockUntil} else locked_until end`,
          updated_at: now,
        })
        .where('id', '=', row.id)
        .returning(['failed_logins', 'locked_until'])
        .executeTakeFirstOrThrow();
      const justLocked = after.failed_logins === 0;
      await appendAudit(trx, {
        actor: 'anonymous',
        action: 'staff.login-failed',
        subject: staffActor(row.id),
        municipalityCode: row.municipality_code,
        details: { reason: 'bad-password', failures: justLocked ? max : after.failed_logins },
        at: now,
      });
      if (justLocked)
        await appendAudit(trx, {
          actor: 'system',
          action: 'staff.locked',
          subject: staffActor(row.id),
          municipalityCode: row.municipality_code,
          details: { failures: max, until: lockUntil },
          at: now,
        });
      return justLocked;
    });
    throw locked ? new LoginError('locked', lockUntil) : new LoginError('invalid-credentials');
  }

  /**
   * The principal a session token stands for. Throws SessionError when the token is unknown, expired
   * (absolute or idle), revoked, or its account disabled. Role and municipality are read from the account
   * on every call, so a change applies to open sessions at once.
   */
  async authenticate(token: string): Promise<Principal> {
    if (typeof token !== 'string' || !TOKEN.test(token)) throw new SessionError('invalid');
    const tokenHash = hashToken(token);
    const row = await this.#db
      .selectFrom('staff_sessions as s')
      .innerJoin('staff', 'staff.id', 's.staff_id')
      .select([
        's.last_seen_at',
        's.expires_at',
        's.revoked_at',
        'staff.id',
        'staff.username',
        'staff.role',
        'staff.municipality_code',
        'staff.disabled_at',
      ])
      .where('s.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (!row) throw new SessionError('invalid');
    if (row.revoked_at !== null) throw new SessionError('revoked');
    if (row.disabled_at !== null) throw new SessionError('disabled');
    const now = this.#now();
    if (now >= row.expires_at) throw new SessionError('expired');
    if (now - row.last_seen_at >= this.#idleMs) throw new SessionError('idle');
    if (now - row.last_seen_at >= this.#touchMs)
      await this.#db
        .updateTable('staff_sessions')
        .set({ last_seen_at: now })
        .where('token_hash', '=', tokenHash)
        .where('last_seen_at', '<', now)
        .execute();
    return {
      staffId: row.id,
      username: row.username,
      role: row.role,
      municipalityCode: row.municipality_code,
    };
  }

  /** Ends a session (logout). Returns false if the token is unknown or the session already ended. */
  async logout(token: string): Promise<boolean> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return false;
    const tokenHash = hashToken(token);
    const now = this.#now();
    return this.#db.transaction().execute(async (trx) => {
      const ended = await trx
        .updateTable('staff_sessions')
        .set({ revoked_at: now })
        .where('token_hash', '=', tokenHash)
        .where('revoked_at', 'is', null)
        .returning(['staff_id'])
        .executeTakeFirst();
      if (!ended) return false;
      const staff = await trx
        .selectFrom('staff')
        .select('municipality_code')
        .where('id', '=', ended.staff_id)
        .executeTakeFirstOrThrow();
      await appendAudit(trx, {
        actor: staffActor(ended.staff_id),
        action: 'staff.session-revoked',
        subject: staffActor(ended.staff_id),
        municipalityCode: staff.municipality_code,
        details: { session: tokenHash.slice(0, 16), reason: 'logout' },
        at: now,
      });
      return true;
    });
  }

  /** Deletes sessions that ended (expired or revoked) more than `olderThanMs` ago. Returns how many. */
  async purgeSessions(olderThanMs = 24 * 3600_000): Promise<number> {
    const cutoff = this.#now() - olderThanMs;
    const res = await this.#db
      .deleteFrom('staff_sessions')
      .where((eb) =>
        eb.or([
          eb('expires_at', '<', cutoff),
          eb('revoked_at', '<', cutoff),
          eb('last_seen_at', '<', cutoff - this.#idleMs),
        ]),
      )
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  // ---- helpers ----

  #row(username: string): Promise<StaffRow | undefined> {
    return this.#db.selectFrom('staff').selectAll().where('username', '=', username).executeTakeFirst();
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword(randomBytes(16).toString('hex'), this.#scrypt);
    return this.#dummyHash;
  }

  #by(actor: StaffActor, at: number): Pick<AuditEntry, 'actor' | 'at'> {
    return { actor: typeof actor === 'string' ? actor : staffActor(actor.staffId), at };
  }

  async #change<T>(
    username: string,
    actor: StaffActor,
    fn: (trx: Db, row: StaffRow, now: number) => Promise<T>,
  ): Promise<T> {
    const name = normalizeUsername(username);
    return this.#db.transaction().execute(async (trx) => {
      // Read the row by writing it (to the same values): on PostgreSQL that locks the row, on SQLite it
      // takes the write lock first. A SQLite transaction that reads and then writes fails ("database is
      // locked") when another process wrote in between, instead of waiting.
      const row = await trx
        .updateTable('staff')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('username', '=', name)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new UnknownStaffError(`no staff account "${name}"`);
      if (typeof actor !== 'string')
        authorize(actor, 'staff.manage', { municipalityCode: row.municipality_code, targetRole: row.role });
      return fn(trx, row, this.#now());
    });
  }
}

async function revokeSessionsOf(trx: Db, staffId: number, now: number): Promise<number> {
  const res = await trx
    .updateTable('staff_sessions')
    .set({ revoked_at: now })
    .where('staff_id', '=', staffId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

function principalOf(row: StaffRow): Principal {
  return { staffId: row.id, username: row.username, role: row.role, municipalityCode: row.municipality_code };
}

function info(row: StaffRow, now: number): StaffInfo {
  return {
    id: row.id,
    username: row.username,
    role: row.role,
    municipalityCode: row.municipality_code,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    lockedUntil: row.locked_until !== null && row.locked_until > now ? row.locked_until : null,
    failedLogins: row.failed_logins,
  };
}

function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
