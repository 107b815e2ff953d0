// The audit log: an append-only, hash-chained record of who did what.
//
// Every entry carries the hash of the one before it, and its own hash:
//
//   hash = lowercase hex SHA-256 of the UTF-8 canonical JSON (sorted keys, RFC 8785) of
//          { action, actor, at, details, municipality_code, prev_hash, seq, subject }
//
// with `details` as the JSON value (not its text) and the first entry's prev_hash 64 zeros. Editing,
// deleting, inserting or reordering entries breaks the chain; verifyAuditChain finds the first entry where
// it breaks. Rewriting the whole chain from some entry on (a forged tail) yields a valid-looking chain, so
// the head hash should be anchored outside the database from time to time (printed by `jpki audit verify`,
// written into an operations log, a ticket, a signed time stamp) and passed back as `anchors`.
//
// Appending: seq = head + 1 is taken from the one-row audit_head table, locked for the rest of the
// appending transaction (SELECT … FOR UPDATE on PostgreSQL; on SQLite a write to the row, which takes the
// database's single write lock). The database itself refuses an entry that does not extend the head, and
// advances the head with the insert (triggers of migration 0003), so two processes can never fork the chain
// and a rolled-back transaction leaves no gap. Because the head stays locked until the caller's transaction
// ends, append as the last step of a transaction, not the first.
//
// What goes in: ids, not names. `details` must not hold secrets (PINs, passwords, tokens, keys) or the
// four basic facts; keys that look like either are refused (a guard rail, not a substitute for review).

import { createHash } from 'node:crypto';
import { type Kysely, PostgresAdapter } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { AuditLogRow } from '../store/staff-schema.ts';
import { inTransaction } from '../store/transaction.ts';
import { CanonicalJsonError, canonicalJson, type JsonObject, type JsonValue } from './canonical-json.ts';

export type { JsonObject, JsonValue } from './canonical-json.ts';

/** A database handle or a transaction. */
export type Db = Kysely<Database>;

export const GENESIS_HASH = '0'.repeat(64);
/** Largest canonical `details` encoding accepted, in bytes. */
export const MAX_DETAILS_BYTES = 4096;

export interface AuditEntry {
  /** 'staff:<id>', 'resident:<id>', 'system', 'cli:<os user>', 'anonymous', … (see auditActor helpers). */
  actor: string;
  /** Dotted lower-case name: 'staff.login', 'certificate.issue', … */
  action: string;
  /** What the action was about: 'resident:<id>', 'certificate:<serial>', 'staff:<id>' … */
  subject?: string | null;
  /** Six-digit code of the municipality concerned, if any (supervisors see their municipality's entries). */
  municipalityCode?: string | null;
  details?: JsonObject;
  /** Milliseconds since the epoch; default Date.now(). */
  at?: number;
}

export interface AuditRecord {
  seq: number;
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  municipalityCode: string | null;
  details: JsonObject;
  prevHash: string;
  hash: string;
}

export interface AuditHead {
  /** Number of entries (0 for an empty log). */
  seq: number;
  /** Hash of the last entry (64 zeros for an empty log). */
  hash: string;
}

export class AuditEntryError extends Error {
  override name = 'AuditEntryError';
}

const ACTOR = /^[a-z][a-z0-9-]*(?::[^\s\p{Cc}]{1,128})?$/u;
const ACTION = /^[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+$/;
const MUNICIPALITY = /^[0-9]{6}$/;
const SUBJECT = /^[^\p{Cc}]{1,256}$/u;

/** Keys (compared in lower case without separators) that would put a secret into the log. */
const SECRET_KEY = /pin$|^pins?$|password|passphrase|passwd|secret|token|privatekey|^key$|otp$/;
/** Keys that would put a resident's basic facts or contact data into the log: record ids instead. */
const PERSONAL_KEYS = new Set([
  'name',
  'fullname',
  'familyname',
  'givenname',
  'kana',
  'address',
  'dateofbirth',
  'birthdate',
  'birthday',
  'birth',
  'dob',
  'sex',
  'gender',
  'phone',
  'telephone',
  'email',
  'mynumber',
  'individualnumber',
]);

/** The actor string of a staff member. */
export const staffActor = (staffId: number): string => `staff:${staffId}`;
/** The actor string of a resident acting for themselves (portal, card). */
export const residentActor = (residentId: string | number): string => `resident:${residentId}`;

/**
 * Appends one entry and returns it with its seq and hashes. Given a transaction, the entry commits or
 * rolls back with it; given a plain handle, it runs in a transaction of its own. Throws AuditEntryError
 * for an entry that may not be logged (bad actor/action/subject, secrets or personal data in details).
 */
export async function appendAudit(db: Db, entry: AuditEntry): Promise<AuditRecord> {
  const e = prepareEntry(entry);
  if (inTransaction(db)) return appendIn(db, e);
  return db.transaction().execute((trx) => appendIn(trx, e));
}

interface PreparedEntry {
  at: number;
  actor: string;
  action: string;
  subject: string | null;
  municipalityCode: string | null;
  details: JsonObject;
  detailsText: string;
}

async function appendIn(trx: Db, e: PreparedEntry): Promise<AuditRecord> {
  const head = isPostgres(trx)
    ? await trx
        .selectFrom('audit_head')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .forUpdate()
        .executeTakeFirstOrThrow()
    : // SQLite has no row locks: writing the row (to the same values) takes the database's write lock
      // now, so the read below cannot go stale before the insert.
      await trx
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb.ref('seq') }))
        .where('id', '=', 1)
        .returning(['seq', 'hash'])
        .executeTakeFirstOrThrow();
  const record: AuditRecord = {
    seq: head.seq + 1,
    at: e.at,
    actor: e.actor,
    action: e.action,
    subject: e.subject,
    municipalityCode: e.municipalityCode,
    details: e.details,
    prevHash: head.hash,
    hash: '',
  };
  record.hash = entryHash(record);
  await trx
    .insertInto('audit_log')
    .values({
      seq: record.seq,
      at: record.at,
      actor: record.actor,
      action: record.action,
      subject: record.subject,
      municipality_code: record.municipalityCode,
      details: e.detailsText,
      prev_hash: record.prevHash,
      hash: record.hash,
    })
    .execute();
  return record;
}

function prepareEntry(entry: AuditEntry): PreparedEntry {
  const at = entry.at ?? Date.now();
  if (!Number.isSafeInteger(at) || at < 0) throw new AuditEntryError(`audit entry: bad time ${String(at)}`);
  if (typeof entry.actor !== 'string' || !ACTOR.test(entry.actor))
    throw new AuditEntryError(`audit entry: bad actor ${JSON.stringify(entry.actor)}`);
  if (typeof entry.action !== 'string' || entry.action.length > 64 || !ACTION.test(entry.action))
    throw new AuditEntryError(`audit entry: bad action ${JSON.stringify(entry.action)}`);
  const subject = entry.subject ?? null;
  if (subject !== null && (typeof subject !== 'string' || !SUBJECT.test(subject)))
    throw new AuditEntryError('audit entry: subject must be 1 to 256 characters without control characters');
  const municipalityCode = entry.municipalityCode ?? null;
  if (municipalityCode !== null && !MUNICIPALITY.test(municipalityCode))
    throw new AuditEntryError(`audit entry: municipality code must be six digits`);
  const details = entry.details ?? {};
  if (typeof details !== 'object' || details === null || Array.isArray(details))
    throw new AuditEntryError('audit entry: details must be a JSON object');
  checkDetailKeys(details, 'details');
  let detailsText: string;
  try {
    detailsText = canonicalJson(details);
  } catch (err) {
    if (err instanceof CanonicalJsonError) throw new AuditEntryError(`audit entry: ${err.message}`);
    throw err;
  }
  if (Buffer.byteLength(detailsText) > MAX_DETAILS_BYTES)
    throw new AuditEntryError(`audit entry: details exceed ${MAX_DETAILS_BYTES} bytes`);
  // Stored and hashed as parsed back from the canonical text, so what verification sees is what was hashed.
  return {
    at,
    actor: entry.actor,
    action: entry.action,
    subject,
    municipalityCode,
    details: JSON.parse(detailsText) as JsonObject,
    detailsText,
  };
}

function checkDetailKeys(value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      checkDetailKeys(v, `${path}[${i}]`);
    });
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const norm = k.toLowerCase().replace(/[^a-z0-9]/g, '');
    if (SECRET_KEY.test(norm))
      throw new AuditEntryError(`audit entry: ${path}.${k} looks like a secret; secrets are never logged`);
    if (PERSONAL_KEYS.has(norm))
      throw new AuditEntryError(`audit entry: ${path}.${k} looks like personal data; log record ids instead`);
    checkDetailKeys(v, `${path}.${k}`);
  }
}

/** The hash of an entry (its `hash` field is ignored). */
export function entryHash(r: Omit<AuditRecord, 'hash'>): string {
  const encoded = canonicalJson({
    action: r.action,
    actor: r.actor,
    at: r.at,
    details: r.details,
    municipality_code: r.municipalityCode,
    prev_hash: r.prevHash,
    seq: r.seq,
    subject: r.subject,
  });
  return createHash('sha256').update(encoded, 'utf8').digest('hex');
}

/** The head of the chain: the number of entries and the last hash. */
export async function auditHead(db: Db): Promise<AuditHead> {
  const row = await db
    .selectFrom('audit_head')
    .select(['seq', 'hash'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  return { seq: row.seq, hash: row.hash };
}

export interface ReadAuditOptions {
  /** Only entries of this municipality. */
  municipalityCode?: string;
  /** Only entries with seq below this (paging backwards). */
  beforeSeq?: number;
  /** Default 20, at most 1000. */
  limit?: number;
}

/** The latest entries (optionally of one municipality), oldest first. */
export async function tailAudit(db: Db, opts: ReadAuditOptions = {}): Promise<AuditRecord[]> {
  const limit = Math.min(Math.max(Math.trunc(opts.limit ?? 20), 1), 1000);
  let q = db.selectFrom('audit_log').selectAll();
  if (opts.municipalityCode !== undefined) q = q.where('municipality_code', '=', opts.municipalityCode);
  if (opts.beforeSeq !== undefined) q = q.where('seq', '<', opts.beforeSeq);
  const rows = await q.orderBy('seq', 'desc').limit(limit).execute();
  return rows.reverse().map(toRecord);
}

function toRecord(row: AuditLogRow): AuditRecord {
  return {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    action: row.action,
    subject: row.subject,
    municipalityCode: row.municipality_code,
    details: JSON.parse(row.details) as JsonObject,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Verification

export type AuditProblem =
  /** An entry is missing (deleted), or the log does not start at 1. */
  | 'gap'
  /** prev_hash is not the previous entry's hash (an entry was inserted, replaced or reordered). */
  | 'broken-link'
  /** The stored hash is not the hash of the entry's contents (the entry was edited). */
  | 'hash-mismatch'
  /** The entry cannot be read (details not canonical JSON, bad field). */
  | 'malformed'
  /** Entries are missing at the end: the head records more entries than the log holds. */
  | 'truncated'
  /** Entries beyond the recorded head: added without going through the chain. */
  | 'beyond-head'
  /** The head's hash is not the last entry's hash. */
  | 'head-mismatch'
  /** An entry's hash differs from an anchor recorded outside the database (a forged tail). */
  | 'anchor-mismatch';

export interface AuditAnchor {
  seq: number;
  hash: string;
}

export interface VerifyAuditOptions {
  /** First seq to check (default 1). The entry before it is trusted as the starting point. */
  from?: number;
  /** Last seq to check (default: to the end, which also checks the head). */
  to?: number;
  /** Head hashes recorded earlier outside the database; each one inside the range must still match. */
  anchors?: readonly AuditAnchor[];
  /** Rows fetched per round trip while streaming (default 1000). */
  chunkSize?: number;
}

export interface AuditVerification {
  ok: boolean;
  /** Entries whose hash and link were checked and found good. */
  checked: number;
  /** The first entry found bad (or missing). */
  firstBadSeq?: number;
  reason?: AuditProblem;
  /** One sentence for people. */
  message?: string;
  /** The head of the chain as recorded in the database (what to anchor). */
  head: AuditHead;
  /** The last entry checked, if any. */
  last?: AuditHead;
}

/**
 * Streams the log in seq order, recomputing every hash and link, and returns where it first breaks.
 * Runs in one read-only snapshot (a REPEATABLE READ transaction on PostgreSQL, a read transaction on
 * SQLite) so appends made meanwhile are neither half-seen nor mistaken for damage. On SQLite pass the
 * store's `reader` so that a long verification does not hold the writer's connection. Given a
 * transaction, it runs in that one: the caller chooses the isolation (REPEATABLE READ on PostgreSQL, or a
 * concurrent append can look like a 'beyond-head' entry).
 */
export async function verifyAuditChain(db: Db, opts: VerifyAuditOptions = {}): Promise<AuditVerification> {
  const from = opts.from ?? 1;
  const to = opts.to;
  if (!Number.isSafeInteger(from) || from < 1) throw new RangeError('verifyAuditChain: from must be >= 1');
  if (to !== undefined && (!Number.isSafeInteger(to) || to < from))
    throw new RangeError('verifyAuditChain: to must be an integer >= from');
  for (const a of opts.anchors ?? [])
    if (!Number.isSafeInteger(a.seq) || a.seq < 1 || !/^[0-9a-f]{64}$/.test(a.hash))
      throw new RangeError('verifyAuditChain: an anchor is a seq >= 1 and a 64-digit lowercase hex hash');
  const run = (trx: Db) => verifyIn(trx, from, to, opts.anchors ?? [], opts.chunkSize ?? 1000);
  if (inTransaction(db)) return run(db);
  if (isPostgres(db))
    return db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(run);
  return db.transaction().execute(run);
}

async function verifyIn(
  db: Db,
  from: number,
  to: number | undefined,
  anchors: readonly AuditAnchor[],
  chunkSize: number,
): Promise<AuditVerification> {
  const head = await auditHead(db);
  const anchorAt = new Map<number, string>();
  for (const a of anchors)
    if (a.seq >= from && (to === undefined || a.seq <= to)) anchorAt.set(a.seq, a.hash);
  let checked = 0;
  let last: AuditHead | undefined;
  const fail = (seq: number, reason: AuditProblem, message: string): AuditVerification => ({
    ok: false,
    checked,
    firstBadSeq: seq,
    reason,
    message,
    head,
    last,
  });

  let prevHash = GENESIS_HASH;
  if (from > 1) {
    const before = await db
      .selectFrom('audit_log')
      .select('hash')
      .where('seq', '=', from - 1)
      .executeTakeFirst();
    if (!before) return fail(from - 1, 'gap', `entry ${from - 1} (before the range) is missing`);
    prevHash = before.hash;
  }

  let expected = from;
  let q = db.selectFrom('audit_log').selectAll().where('seq', '>=', from);
  if (to !== undefined) q = q.where('seq', '<=', to);
  for await (const row of q.orderBy('seq').stream(chunkSize)) {
    if (row.seq !== expected) return fail(expected, 'gap', `entry ${expected} is missing`);
    let details: JsonObject;
    try {
      const parsed = JSON.parse(row.details) as JsonValue;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error();
      if (canonicalJson(parsed) !== row.details) throw new Error();
      details = parsed;
    } catch {
      return fail(row.seq, 'malformed', `entry ${row.seq}: details are not a canonical JSON object`);
    }
    if (row.prev_hash !== prevHash)
      return fail(row.seq, 'broken-link', `entry ${row.seq} does not link to the entry before it`);
    const hash = entryHash({
      seq: row.seq,
      at: row.at,
      actor: row.actor,
      action: row.action,
      subject: row.subject,
      municipalityCode: row.municipality_code,
      details,
      prevHash: row.prev_hash,
    });
    if (hash !== row.hash)
      return fail(
        row.seq,
        'hash-mismatch',
        `entry ${row.seq} was altered: its hash does not match its contents`,
      );
    const anchored = anchorAt.get(row.seq);
    if (anchored !== undefined && anchored !== row.hash)
      return fail(row.seq, 'anchor-mismatch', `entry ${row.seq} differs from the anchored hash ${anchored}`);
    anchorAt.delete(row.seq);
    prevHash = row.hash;
    last = { seq: row.seq, hash: row.hash };
    checked++;
    expected++;
  }

  const lastSeq = expected - 1;
  const end = to === undefined ? head.seq : Math.min(to, head.seq);
  if (lastSeq < end)
    return fail(
      lastSeq + 1,
      to === undefined || to >= head.seq ? 'truncated' : 'gap',
      `entries ${lastSeq + 1}..${end} are missing`,
    );
  if (to === undefined) {
    if (lastSeq > head.seq)
      return fail(head.seq + 1, 'beyond-head', `entries after ${head.seq} were added outside the chain`);
    if (prevHash !== head.hash)
      return fail(head.seq, 'head-mismatch', `the recorded head hash differs from entry ${head.seq}`);
  }
  for (const seq of anchorAt.keys())
    if (seq > lastSeq) return fail(seq, 'anchor-mismatch', `anchored entry ${seq} is missing`);
  return { ok: true, checked, head, last };
}

function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}
