// Repository for certificates, revocations and CRLs.
//
// Every function takes a Kysely<Database> or a Transaction<Database> (a Transaction is a Kysely), so
// callers can compose them inside their own transaction. Stored rows are passed and returned as the
// table types of schema.ts (snake_case column names); the derived answers for the hot paths
// (certificateStatus, streamRevocations) are camelCase. Instants are milliseconds since the epoch.

import { createHash } from 'node:crypto';
import { CompiledQuery, type Insertable, type Kysely, PostgresAdapter, sql } from 'kysely';
import { runSqliteAfterBind } from './db.ts';
import type {
  CertificateRow,
  CrlKind,
  CrlRow,
  CrlsTable,
  Database,
  NewCertificateRow,
  RevocationRow,
} from './schema.ts';

export type { CertificateRow, CrlKind, CrlRow, NewCertificateRow, RevocationRow } from './schema.ts';

/** A database handle or a transaction. */
export type Db = Kysely<Database>;

// ---------------------------------------------------------------------------------------------------------
// Errors

export class DuplicateSerialError extends Error {
  override name = 'DuplicateSerialError';
  readonly serial: string;
  constructor(serial: string, options?: ErrorOptions) {
    super(`a certificate with serial ${serial} already exists`, options);
    this.serial = serial;
  }
}

export class UnknownCertificateError extends Error {
  override name = 'UnknownCertificateError';
  readonly serial: string;
  constructor(serial: string) {
    super(`no certificate with serial ${serial}`);
    this.serial = serial;
  }
}

/** Another CRL of the same CA already has this number (a concurrent issuer got there first). */
export class DuplicateCrlNumberError extends Error {
  override name = 'DuplicateCrlNumberError';
  readonly ca: string;
  readonly number: number;
  constructor(ca: string, number: number, options?: ErrorOptions) {
    super(`CA ${ca} already has a CRL number ${number}`, options);
    this.ca = ca;
    this.number = number;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Certificates

/**
 * True if `hex` is the lowercase hex of the content octets of a positive DER INTEGER, minimally
 * encoded. Serials are unique as text, so one number must have exactly one text form: no upper case,
 * no superfluous leading 00, no negative or zero values (RFC 5280 4.1.2.2 requires positive serials).
 */
export function isCanonicalSerialHex(hex: string): boolean {
  if (!/^(?:[0-9a-f]{2})+$/.test(hex)) return false;
  const first = Number.parseInt(hex.slice(0, 2), 16);
  if (first >= 0x80) return false; // negative
  if (first === 0) {
    if (hex.length === 2) return false; // zero
    if (Number.parseInt(hex.slice(2, 4), 16) < 0x80) return false; // leading 00 not needed
  }
  return true;
}

/**
 * Stores a newly issued certificate. Throws DuplicateSerialError if the serial exists (nothing is
 * written). Inside a PostgreSQL transaction the insert runs under a savepoint, so the caller's
 * transaction survives a duplicate and can retry with another serial; a caller that abandons the
 * whole transaction on any error anyway passes `savepoint: false` and saves two round trips.
 */
export async function insertCertificate(
  db: Db,
  row: NewCertificateRow,
  opts: { savepoint?: boolean } = {},
): Promise<void> {
  const parameters = certificateParameters(row);
  const text = hotSql(db, 'insertCertificate', CERTIFICATE_COLUMNS, (d, p) =>
    d.insertInto('certificates').values(certificateValues(p, 0)),
  );
  const run = () => db.executeQuery(CompiledQuery.raw(text, parameters));
  try {
    await (opts.savepoint === false ? run() : underSavepoint(db, run));
  } catch (err) {
    if (isUniqueViolation(err, 'certificates_pkey', 'certificates.serial')) {
      throw new DuplicateSerialError(row.serial, { cause: err });
    }
    throw err;
  }
}

/**
 * Stores several newly issued certificates with one statement: one round trip and, outside a
 * transaction, one commit for all of them. All or nothing: if any row fails (a duplicate serial
 * included), none is stored and the database's error is thrown as it is; see CertificateWriter,
 * which then stores them one at a time to give each its own answer.
 */
export async function insertCertificates(db: Db, rows: readonly NewCertificateRow[]): Promise<void> {
  if (rows.length === 0) return;
  const parameters = rows.flatMap(certificateParameters);
  const text = hotSql(db, `insertCertificates:${rows.length}`, rows.length * CERTIFICATE_COLUMNS, (d, p) =>
    d.insertInto('certificates').values(rows.map((_, i) => certificateValues(p, i * CERTIFICATE_COLUMNS))),
  );
  await db.executeQuery(CompiledQuery.raw(text, parameters));
}

/**
 * Group commit of newly issued certificates. A certificate goes to the store at once, as one
 * statement (outside any transaction: the statement is its commit), as long as fewer than
 * `maxInFlight` batches are being written. The certificates that arrive while that many are in
 * flight wait, and then go together: one statement, one round trip and one commit (on PostgreSQL
 * one WAL flush, which costs about as much as the CA signature) for all of them. One issuance at a
 * time waits for nothing more than before.
 *
 * On PostgreSQL 4 batches may be in flight, on as many pooled connections: the server then works on
 * one batch while another waits for its WAL flush, and flushes commits that arrive together in one
 * go. With one batch at a time, 8 issuances in flight were slower than with no batching at all
 * (measured: BENCHMARKS.md); 4 leaves most of the pool to everything else.
 *
 * Every caller is answered after the commit that holds its row, with its own answer: when a batch
 * fails because of one of its rows (a duplicate serial, a constraint), none of it is stored and
 * its rows are stored again one at a time, so the others are stored and the failing one gets its
 * own error (DuplicateSerialError for a duplicate) and leaves no row. When it fails for any other
 * reason (the connection or the server gave out), every caller in it gets that error: the store
 * may or may not have committed it, so trying again could store a certificate twice.
 */
export class CertificateWriter {
  readonly #db: Db;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #postgres: boolean;
  #waiting: Waiting[] = [];
  /** Batches being written. */
  #inFlight = 0;
  /** A write is scheduled for the end of this event-loop turn (SQLite, gather). */
  #scheduled = false;

  /**
   * `db` must not be a transaction: each batch is its own commit. `maxInFlight`: batches written at
   * the same time, on as many connections (default: 4 on PostgreSQL, 1 on SQLite, whose one
   * connection runs one statement at a time anyway).
   */
  constructor(db: Db, opts: { maxBatch?: number; maxInFlight?: number } = {}) {
    if (db.isTransaction)
      throw new TypeError('CertificateWriter commits on its own; give it the store, not a transaction');
    this.#maxBatch = opts.maxBatch ?? 64;
    if (!Number.isSafeInteger(this.#maxBatch) || this.#maxBatch < 1)
      throw new RangeError(`bad maxBatch ${opts.maxBatch}`);
    this.#db = db;
    this.#postgres = isPostgres(db);
    this.#maxInFlight = opts.maxInFlight ?? (this.#postgres ? 4 : 1);
    if (!Number.isSafeInteger(this.#maxInFlight) || this.#maxInFlight < 1)
      throw new RangeError(`bad maxInFlight ${opts.maxInFlight}`);
  }

  /**
   * Stores `row`; resolves once it is committed. Throws as insertCertificate does. `gather`: other
   * certificates are on their way (issuances in flight), worth waiting a moment for.
   */
  insert(row: NewCertificateRow, opts: { gather?: boolean } = {}): Promise<void> {
    try {
      certificateParameters(row); // a malformed row is refused before it can join a batch
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push({ row, resolve, reject });
      if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return;
      // On PostgreSQL batches form while commits are in flight. A SQLite statement runs to its end
      // without giving the event loop a turn, so nothing could join it: when other issuances are
      // in flight, wait for the end of this turn, and the certificates whose signatures complete
      // in it go in the same statement.
      if (opts.gather && !this.#postgres) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      } else this.#pump();
    });
  }

  /** Starts writing what waits, as far as the batches in flight allow. */
  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.#maxBatch);
      this.#inFlight++;
      void this.#write(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  /** Writes one batch and answers each of its callers; never throws. */
  async #write(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) {
      const [one] = batch;
      await insertCertificate(this.#db, one!.row).then(one!.resolve, one!.reject);
      return;
    }
    try {
      await insertCertificates(
        this.#db,
        batch.map((w) => w.row),
      );
    } catch (err) {
      if (!isRowError(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      for (const w of batch) await insertCertificate(this.#db, w.row).then(w.resolve, w.reject);
      return;
    }
    for (const w of batch) w.resolve();
  }
}

interface Waiting {
  row: NewCertificateRow;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Whether an error of insertCertificate(s) is about the rows (a constraint, a bad value), not the store. */
function isRowError(err: unknown): boolean {
  if (err instanceof DuplicateSerialError || err instanceof TypeError || err instanceof RangeError)
    return true;
  if (typeof err !== 'object' || err === null) return false;
  const { code } = err as { code?: unknown };
  if (typeof code !== 'string') return false;
  // PostgreSQL SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation).
  if (/^2[23][0-9A-Z]{3}$/.test(code)) return true;
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

const CERTIFICATE_COLUMNS = 10;

/** The parameters of one certificate row, in the order of certificateValues. */
function certificateParameters(row: NewCertificateRow): unknown[] {
  if (!isCanonicalSerialHex(row.serial)) {
    throw new TypeError(`not a canonical lowercase hex DER serial: ${JSON.stringify(row.serial)}`);
  }
  return [
    row.serial,
    row.ca,
    row.profile,
    row.subject,
    row.not_before,
    row.not_after,
    row.issued_at,
    row.der,
    row.resident_ref ?? null,
    row.spki_sha256,
  ];
}

// biome-ignore lint/suspicious/noExplicitAny: placeholders stand in for values of any column type.
function certificateValues(p: any[], at: number) {
  return {
    serial: p[at],
    ca: p[at + 1],
    profile: p[at + 2],
    subject: p[at + 3],
    not_before: p[at + 4],
    not_after: p[at + 5],
    issued_at: p[at + 6],
    der: p[at + 7],
    resident_ref: p[at + 8],
    spki_sha256: p[at + 9],
  };
}

export async function findCertificate(db: Db, serial: string): Promise<CertificateRow | undefined> {
  return db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
}

// ---------------------------------------------------------------------------------------------------------
// Revocations

/** RFC 5280 5.3.1 CRLReason codes accepted for a revocation (7 is unused, 8 removeFromCRL is not a reason). */
export const REVOCATION_REASONS: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 5, 6, 9, 10]);

export interface RevokeRequest {
  serial: string;
  /** RFC 5280 CRLReason code; 0 = unspecified. */
  reason: number;
  /** When the revocation took effect (the CRL / OCSP revocationDate). */
  revokedAt: number;
  /** When the CA recorded it. */
  recordedAt: number;
}

// Namespace for pg_advisory_xact_lock(int, int): "JPKI" in ASCII.
const REVOCATION_LOCK_NAMESPACE = 0x4a504b49;

/**
 * Records the revocation of a certificate. Revocation is final: revoking again keeps the FIRST record
 * (reason and time) and returns it with created=false. Throws UnknownCertificateError for an unknown
 * serial. The CA and notAfter are copied from the certificate.
 *
 * On PostgreSQL, identity values are handed out when a row is inserted, not when it commits, so two
 * concurrent revocations could become visible out of id order and a delta CRL built in between would
 * skip the lower id forever. To keep "every id a reader will ever see is above the max it already saw",
 * revocations of one CA are serialised with a transaction-scoped advisory lock held until commit (in
 * the caller's transaction if there is one, otherwise in a transaction of our own). SQLite has a single
 * writer, which gives the same guarantee.
 */
export async function revoke(
  db: Db,
  req: RevokeRequest,
): Promise<{ revocation: RevocationRow; created: boolean }> {
  if (!REVOCATION_REASONS.has(req.reason)) {
    throw new RangeError(`not a revocation reason code: ${req.reason}`);
  }
  const postgres = isPostgres(db);
  const run = async (tx: Db) => {
    const cert = await tx
      .selectFrom('certificates')
      .select(['ca', 'not_after'])
      .where('serial', '=', req.serial)
      .executeTakeFirst();
    if (!cert) throw new UnknownCertificateError(req.serial);
    if (postgres) {
      await sql`select pg_advisory_xact_lock(${REVOCATION_LOCK_NAMESPACE}::int4, hashtext(${cert.ca}))`.execute(
        tx,
      );
    }
    const inserted = await tx
      .insertInto('revocations')
      .values({
        serial: req.serial,
        ca: cert.ca,
        reason: req.reason,
        revoked_at: req.revokedAt,
        recorded_at: req.recordedAt,
        not_after: cert.not_after,
      })
      .onConflict((oc) => oc.column('serial').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { revocation: inserted, created: true };
    const existing = await findRevocation(tx, req.serial);
    // Only possible in a REPEATABLE READ / SERIALIZABLE caller transaction whose snapshot predates the
    // concurrent revocation that made ours a no-op.
    if (!existing) throw new Error(`revocation of ${req.serial} conflicts with a concurrent one; retry`);
    return { revocation: existing, created: false };
  };
  if (!postgres || db.isTransaction) return run(db);
  return db.transaction().execute(run);
}

export async function findRevocation(db: Db, serial: string): Promise<RevocationRow | undefined> {
  return db.selectFrom('revocations').selectAll().where('serial', '=', serial).executeTakeFirst();
}

export interface CertificateStatus {
  ca: string;
  notAfter: number;
  /** Present if the certificate is revoked. */
  revocation?: { id: number; reason: number; revokedAt: number };
}

/**
 * What an OCSP responder needs about one serial, in one indexed query (certificates primary key, left
 * join on the unique revocations.serial). undefined = no such certificate.
 */
export async function certificateStatus(db: Db, serial: string): Promise<CertificateStatus | undefined> {
  const text = hotSql(db, 'certificateStatus', 1, (d, p) =>
    d
      .selectFrom('certificates as c')
      .leftJoin('revocations as r', 'r.serial', 'c.serial')
      .select(['c.ca', 'c.not_after', 'r.id', 'r.reason', 'r.revoked_at'])
      .where('c.serial', '=', p[0]),
  );
  const { rows } = await db.executeQuery<StatusRow>(CompiledQuery.raw(text, [serial]));
  const row = rows[0];
  if (!row) return undefined;
  const status: CertificateStatus = { ca: row.ca, notAfter: row.not_after };
  if (row.id !== null && row.reason !== null && row.revoked_at !== null) {
    status.revocation = { id: row.id, reason: row.reason, revokedAt: row.revoked_at };
  }
  return status;
}

interface StatusRow {
  ca: string;
  not_after: number;
  id: number | null;
  reason: number | null;
  revoked_at: number | null;
}

// ---------------------------------------------------------------------------------------------------------
// Pre-signed OCSP responses (docs/ocsp.md)

export interface StoredOcspResponse {
  ca: string;
  der: Buffer;
  thisUpdate: number;
  nextUpdate: number;
}

/** The pre-signed response of one serial, by primary key; undefined if there is none. */
export async function storedOcspResponse(db: Db, serial: string): Promise<StoredOcspResponse | undefined> {
  const text = hotSql(db, 'storedOcspResponse', 1, (d, p) =>
    d
      .selectFrom('ocsp_responses')
      .select(['ca', 'der', 'this_update', 'next_update'])
      .where('serial', '=', p[0]),
  );
  const { rows } = await db.executeQuery<{
    ca: string;
    der: Buffer;
    this_update: number;
    next_update: number;
  }>(CompiledQuery.raw(text, [serial]));
  const row = rows[0];
  return row && { ca: row.ca, der: row.der, thisUpdate: row.this_update, nextUpdate: row.next_update };
}

export interface OcspResponseRow {
  serial: string;
  ca: string;
  der: Uint8Array;
  this_update: number;
  next_update: number;
  /** 'good' or 'r<revokedAt>:<reason>'. */
  status_key: string;
}

/**
 * Stores a response, replacing the serial's stored one. For a "good" response the write is
 * conditional, so that a batch that read the status before a revocation cannot store "good" after
 * it: nothing is written when the serial has a revocation row (committed), and a stored response that
 * is not "good" is never replaced by one that is. Returns whether a row was written.
 */
export async function putOcspResponse(db: Db, row: OcspResponseRow): Promise<boolean> {
  const pg = isPostgres(db);
  const good = row.status_key === 'good';
  const values = [row.serial, row.ca, row.der, row.this_update, row.next_update, row.status_key];
  const text = good
    ? pg
      ? `insert into ocsp_responses (serial, ca, der, this_update, next_update, status_key)
         select $1::text, $2::text, $3::bytea, $4::bigint, $5::bigint, $6::text
         where not exists (select 1 from revocations where serial = $1::text)
         on conflict (serial) do update set ca = excluded.ca, der = excluded.der, this_update = excluded.this_update,
           next_update = excluded.next_update, status_key = excluded.status_key
         where ocsp_responses.status_key = 'good'`
      : `insert into ocsp_responses (serial, ca, der, this_update, next_update, status_key)
         select ?, ?, ?, ?, ?, ? where not exists (select 1 from revocations where serial = ?)
         on conflict (serial) do update set ca = excluded.ca, der = excluded.der, this_update = excluded.this_update,
           next_update = excluded.next_update, status_key = excluded.status_key
         where ocsp_responses.status_key = 'good'`
    : `insert into ocsp_responses (serial, ca, der, this_update, next_update, status_key)
       values (${pg ? '$1, $2, $3, $4, $5, $6' : '?, ?, ?, ?, ?, ?'})
       on conflict (serial) do update set ca = excluded.ca, der = excluded.der, this_update = excluded.this_update,
         next_update = excluded.next_update, status_key = excluded.status_key`;
  // SQLite's anonymous parameters: the serial once more for the revocation check.
  if (good && !pg) values.push(row.serial);
  const result = await db.executeQuery(CompiledQuery.raw(text, values));
  return Number(result.numAffectedRows ?? 0n) > 0;
}

export async function deleteOcspResponse(db: Db, serial: string): Promise<void> {
  await db.deleteFrom('ocsp_responses').where('serial', '=', serial).execute();
}

export interface PresignCandidate {
  serial: string;
  ca: string;
  notAfter: number;
  revocation?: { reason: number; revokedAt: number };
  /** nextUpdate of the stored response, if there is one. */
  storedNextUpdate?: number;
}

/**
 * One keyset page of unexpired certificates in serial order (after `afterSerial`), each with its
 * revocation and the nextUpdate of its stored response: a merge of three primary keys.
 */
export async function presignPage(
  db: Db,
  q: { afterSerial: string; limit: number; notAfterFrom: number },
): Promise<{ candidates: PresignCandidate[]; lastSerial: string | undefined }> {
  const rows = await db
    .selectFrom('certificates as c')
    .leftJoin('revocations as r', 'r.serial', 'c.serial')
    .leftJoin('ocsp_responses as o', 'o.serial', 'c.serial')
    .select(['c.serial', 'c.ca', 'c.not_after', 'r.reason', 'r.revoked_at', 'o.next_update'])
    .where('c.serial', '>', q.afterSerial)
    .orderBy('c.serial')
    .limit(q.limit)
    .execute();
  const candidates: PresignCandidate[] = [];
  for (const r of rows) {
    if (r.not_after < q.notAfterFrom) continue;
    const c: PresignCandidate = { serial: r.serial, ca: r.ca, notAfter: r.not_after };
    if (r.reason !== null && r.revoked_at !== null)
      c.revocation = { reason: r.reason, revokedAt: r.revoked_at };
    if (r.next_update !== null) c.storedNextUpdate = r.next_update;
    candidates.push(c);
  }
  return { candidates, lastSerial: rows.at(-1)?.serial };
}

/** Revocations of one CA with id > afterId, in id order (the (ca, id) index): the responders' revocation feed. */
export async function revocationsAfter(
  db: Db,
  ca: string,
  afterId: number,
  limit: number,
): Promise<{ id: number; serial: string }[]> {
  return db
    .selectFrom('revocations')
    .select(['id', 'serial'])
    .where('ca', '=', ca)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
}

/** How many certificates the store holds (the batch signer's progress total). */
export async function countCertificates(db: Db): Promise<number> {
  const row = await db
    .selectFrom('certificates')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export interface RevocationQuery {
  ca: string;
  /** Only revocations with id > afterId (a delta CRL: its base's maxRevocationId). */
  afterId?: number;
  /**
   * Only revocations with id <= throughId: pass the maxRevocationId the CRL will record. With it, the
   * pages (separate queries) add up to what one query would have returned when that id was read: ids
   * become visible in increasing order (see revoke) and revocations are never deleted.
   */
  throughId?: number;
  /** Only certificates with notAfter >= notAfterFrom (expired ones may leave the CRL). */
  notAfterFrom: number;
  /**
   * Only serials with `from <= serial < below` (a CRL partition, core/crl-partition.ts). Without
   * `afterId` the pages then walk the (ca, serial) index in serial order, an index range scan over
   * the partition's rows alone; with it (a delta CRL, few rows) they still walk ids.
   */
  serialRange?: { from: string; below: string };
  /** Rows per page (one query each). Default 10,000. */
  chunkSize?: number;
}

export interface RevocationEntry {
  id: number;
  serial: string;
  reason: number;
  revokedAt: number;
}

const REVOCATION_PAGE_ROWS = 10_000;

/**
 * Revocations of one CA in id order, a page (array) at a time: keyset pagination,
 * `… and id > <last id of the previous page> order by id limit <chunkSize>`, which walks the ids in
 * order (the primary key, or the (ca, id) index) and never skips or repeats a row. At most two
 * pages are in memory at a time, and no connection is held between pages, so other queries on the
 * same store (OCSP lookups, on SQLite's single connection too) run in between.
 *
 * A database cursor (Kysely's `.stream()`) handed rows over one at a time through several async
 * generators on SQLite: draining a million rows took 1.9 s that way, 0.8 s in pages. On PostgreSQL
 * the next page is fetched while the caller works on the current one.
 */
export async function* streamRevocationPages(
  db: Db,
  query: RevocationQuery,
): AsyncGenerator<RevocationEntry[], void, undefined> {
  const pageRows = query.chunkSize ?? REVOCATION_PAGE_ROWS;
  if (!Number.isSafeInteger(pageRows) || pageRows < 1) throw new RangeError(`bad chunkSize ${pageRows}`);
  const prefetch = isPostgres(db);
  const range = query.serialRange;
  // A full CRL of a partition: keyset pages by serial over the (ca, serial) index.
  const bySerial = range !== undefined && query.afterId === undefined;
  const page = (after: number | string | undefined): Promise<RevocationEntry[]> => {
    let q = db
      .selectFrom('revocations')
      .select(['id', 'serial', 'reason', 'revoked_at as revokedAt'])
      .where('ca', '=', query.ca)
      .where('not_after', '>=', query.notAfterFrom);
    if (range) q = q.where('serial', '>=', range.from).where('serial', '<', range.below);
    if (query.throughId !== undefined) q = q.where('id', '<=', query.throughId);
    if (bySerial) {
      if (after !== undefined) q = q.where('serial', '>', after as string);
      return q.orderBy('serial').limit(pageRows).execute();
    }
    if (after !== undefined) q = q.where('id', '>', after as number);
    return q.orderBy('id').limit(pageRows).execute();
  };
  let pending: Promise<RevocationEntry[]> | undefined = page(query.afterId);
  try {
    while (pending) {
      const rows: RevocationEntry[] = await pending;
      pending = undefined;
      if (rows.length === 0) return;
      const more = rows.length === pageRows;
      const last = rows[rows.length - 1]!;
      const next = () => page(bySerial ? last.serial : last.id);
      if (more && prefetch) pending = next();
      yield rows;
      if (more && !prefetch) pending = next();
    }
  } finally {
    // The consumer stopped early: let a prefetched page finish rather than leave it unobserved.
    await pending?.catch(() => undefined);
  }
}

/**
 * Revocations of one CA in id order, one at a time: {@link streamRevocationPages} flattened. Prefer
 * the pages when there are many rows (a full CRL): one async step per row costs more than the row.
 */
export async function* streamRevocations(
  db: Db,
  query: RevocationQuery,
): AsyncGenerator<RevocationEntry, void, undefined> {
  for await (const rows of streamRevocationPages(db, query)) yield* rows;
}

/** Highest revocations.id of this CA, 0 if it has none (ids start at 1). */
export async function maxRevocationId(db: Db, ca: string): Promise<number> {
  const row = await db
    .selectFrom('revocations')
    .select((eb) => eb.fn.max('id').as('max'))
    .where('ca', '=', ca)
    .executeTakeFirst();
  return row?.max ?? 0;
}

// ---------------------------------------------------------------------------------------------------------
// CRLs

/** CRL columns other than der, sha256 and number, which insertCrl treats specially. */
type CrlFields = Omit<Insertable<CrlsTable>, 'number' | 'der' | 'sha256'>;

/**
 * A CRL to store. Either with its number (the caller allocated it with nextCrlNumber and signed the
 * CRL with it), or without one: then `der` is a function that signs the CRL for the number insertCrl
 * allocates (called again with a fresh number if that one is lost to a concurrent insert).
 */
export type NewCrlRow = CrlFields & {
  /** Lowercase hex SHA-256 of der. Computed here; if given it must match. */
  sha256?: string;
} & (
    | { number: number; der: Uint8Array }
    | { number?: undefined; der: (crlNumber: number) => Uint8Array | Promise<Uint8Array> }
  );

/** A stored CRL without its DER. */
export type CrlMetaRow = Omit<CrlRow, 'der'>;

const CRL_INSERT_ATTEMPTS = 2;

/**
 * The number the CA's next CRL should carry: max + 1 over its full AND delta CRLs (one increasing
 * sequence per CA, RFC 5280 5.2.3), 1 for the first. One probe of the (ca, number) primary key.
 * Only a proposal: the (ca, number) key decides, see insertCrl.
 */
export async function nextCrlNumber(db: Db, ca: string): Promise<number> {
  const row = await db
    .selectFrom('crls')
    .select((eb) => eb.fn.max('number').as('max'))
    .where('ca', '=', ca)
    .executeTakeFirst();
  return (row?.max ?? 0) + 1;
}

/**
 * Stores a CRL. The (ca, number) primary key decides races between concurrent issuers:
 *  - with `number` given, a CRL of that number already stored throws DuplicateCrlNumberError (the
 *    caller should take a new nextCrlNumber, re-sign, and try again);
 *  - without, the number is allocated here (nextCrlNumber), `der(number)` signs it, and on a conflict
 *    this is retried once with a fresh number before DuplicateCrlNumberError is thrown.
 * Since every successful insert is "current max + 1", numbers stay contiguous and are committed in
 * increasing order. Inside a caller's PostgreSQL transaction the retry needs READ COMMITTED (the
 * default) to see the winner's row; a failed insert is rolled back to a savepoint, so the caller's
 * transaction stays usable.
 */
export async function insertCrl(
  db: Db,
  row: NewCrlRow,
  opts: {
    /**
     * Called once the store holds its own copy of the DER and before the row is written (on SQLite:
     * once the statement has its parameters), so that the caller can free a large CRL early. The
     * DER is not used after that (the row returned holds the same buffer). Not called on PostgreSQL.
     */
    afterCopy?: () => void;
  } = {},
): Promise<CrlRow> {
  const { number: fixedNumber, der: derOrBuild, sha256: expectedSha256, ...fields } = row;
  const baseNumber = fields.base_number ?? null;
  if ((fields.kind === 'delta') !== (baseNumber !== null)) {
    throw new TypeError('a delta CRL needs a base_number and a full CRL must not have one');
  }
  for (let attempt = 1; ; attempt++) {
    const number = fixedNumber ?? (await nextCrlNumber(db, fields.ca));
    const der = toBuffer(typeof derOrBuild === 'function' ? await derOrBuild(number) : derOrBuild);
    const sha256 = await sha256Hex(der);
    if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
      throw new TypeError('sha256 does not match the CRL DER');
    }
    const crl: CrlRow = {
      ca: fields.ca,
      number,
      kind: fields.kind,
      base_number: baseNumber,
      this_update: fields.this_update,
      next_update: fields.next_update,
      max_revocation_id: fields.max_revocation_id,
      entries: fields.entries,
      der,
      sha256,
    };
    try {
      await underSavepoint(db, async () => {
        const insert = db.insertInto('crls').values(crl);
        const { afterCopy } = opts;
        if (!afterCopy || !(await runSqliteAfterBind(db, insert.compile(), afterCopy)))
          await insert.execute();
      });
      return crl;
    } catch (err) {
      if (!isUniqueViolation(err, 'crls_pkey', 'crls.ca, crls.number')) throw err;
      if (fixedNumber !== undefined || attempt >= CRL_INSERT_ATTEMPTS) {
        throw new DuplicateCrlNumberError(fields.ca, number, { cause: err });
      }
    }
  }
}

const CRL_META_COLUMNS = [
  'ca',
  'number',
  'kind',
  'base_number',
  'this_update',
  'next_update',
  'max_revocation_id',
  'entries',
  'sha256',
] as const satisfies readonly (keyof CrlsTable)[];

/**
 * The CA's highest-numbered CRL of this kind, or undefined if none. Without its DER (a full CRL can
 * be tens of megabytes) unless `withDer` is set. One backwards probe of the (ca, kind, number) index.
 */
export function latestCrl(
  db: Db,
  ca: string,
  kind: CrlKind,
  opts?: { withDer?: false },
): Promise<CrlMetaRow | undefined>;
export function latestCrl(
  db: Db,
  ca: string,
  kind: CrlKind,
  opts: { withDer: true },
): Promise<CrlRow | undefined>;
export async function latestCrl(
  db: Db,
  ca: string,
  kind: CrlKind,
  opts?: { withDer?: boolean },
): Promise<CrlMetaRow | CrlRow | undefined> {
  const latest = db
    .selectFrom('crls')
    .where('ca', '=', ca)
    .where('kind', '=', kind)
    .orderBy('number', 'desc')
    .limit(1);
  if (opts?.withDer) return latest.select([...CRL_META_COLUMNS, 'der']).executeTakeFirst();
  return latest.select(CRL_META_COLUMNS).executeTakeFirst();
}

/**
 * The latest full and delta CRL of each of several series (CA ids or partition scopes such as
 * `sign-p17`), without their DER: one query (a probe of the (ca, kind, number) index per series and
 * kind), for a refresh that looks at a few hundred series every minute.
 */
export async function latestCrls(db: Db, scopes: readonly string[]): Promise<CrlMetaRow[]> {
  if (scopes.length === 0) return [];
  return db
    .selectFrom('crls as c')
    .select(CRL_META_COLUMNS.map((k) => `c.${k}` as const))
    .where('c.ca', 'in', scopes)
    .where((eb) =>
      eb(
        'c.number',
        '=',
        eb
          .selectFrom('crls as l')
          .select((e) => e.fn.max('l.number').as('n'))
          .whereRef('l.ca', '=', 'c.ca')
          .whereRef('l.kind', '=', 'c.kind'),
      ),
    )
    .execute();
}

/** The DER of CRL `number` of this CA, or undefined. */
export async function crlDer(db: Db, ca: string, number: number): Promise<Buffer | undefined> {
  const row = await db
    .selectFrom('crls')
    .select('der')
    .where('ca', '=', ca)
    .where('number', '=', number)
    .executeTakeFirst();
  return row?.der;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** SQL of the hot queries, per dialect and name. */
const hotSqlCache = new Map<string, string>();

/**
 * The SQL text of one of the hot queries (issuance's insert, OCSP's status lookup), built with
 * Kysely once per dialect: building and compiling the query on every call cost more than the lookup
 * itself. `build` gets `n` distinct placeholders as the values; they must come out as the
 * parameters in that order, which is checked. Each call then runs the text with its own parameters
 * (`db.executeQuery`), in the caller's transaction if `db` is one; on SQLite the statement is also
 * prepared only once (db.ts).
 */
function hotSql(
  db: Db,
  name: string,
  n: number,
  // biome-ignore lint/suspicious/noExplicitAny: placeholders stand in for values of any column type.
  build: (db: Db, placeholders: any[]) => { compile(): { sql: string; parameters: readonly unknown[] } },
): string {
  const key = `${isPostgres(db) ? 'postgres' : 'sqlite'}:${name}`;
  let text = hotSqlCache.get(key);
  if (text === undefined) {
    const placeholders = Array.from({ length: n }, (_, i) => `\u0000placeholder ${i}`);
    const compiled = build(db, placeholders).compile();
    if (compiled.parameters.length !== n || compiled.parameters.some((p, i) => p !== placeholders[i]))
      throw new Error(`${name}: the compiled parameters are not in placeholder order`);
    text = compiled.sql;
    hotSqlCache.set(key, text);
  }
  return text;
}

function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Runs one statement so that its failure leaves the caller's transaction usable. PostgreSQL aborts
 * the whole transaction on an error, so there we wrap it in a savepoint; SQLite only rolls back the
 * failed statement, and outside a transaction there is nothing to protect.
 */
async function underSavepoint<T>(db: Db, statement: () => Promise<T>): Promise<T> {
  if (!db.isTransaction || !isPostgres(db)) return statement();
  await sql`savepoint jpki_statement`.execute(db);
  try {
    const result = await statement();
    await sql`release savepoint jpki_statement`.execute(db);
    return result;
  } catch (err) {
    await sql`rollback to savepoint jpki_statement`.execute(db);
    throw err;
  }
}

/**
 * Whether err is a unique/primary-key violation of the given constraint: PostgreSQL SQLSTATE 23505
 * with that constraint name, or SQLite's SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE naming those columns.
 */
function isUniqueViolation(err: unknown, pgConstraint: string, sqliteColumns: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, constraint, message } = err as { code?: unknown; constraint?: unknown; message?: unknown };
  if (code === '23505') return constraint === undefined || constraint === pgConstraint;
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return typeof message !== 'string' || message.endsWith(`: ${sqliteColumns}`);
  }
  return false;
}

/** SHA-256 of a CRL, in steps of a few megabytes with a turn of the event loop in between. */
async function sha256Hex(der: Buffer): Promise<string> {
  const step = 4 << 20;
  const hash = createHash('sha256');
  for (let p = 0; p < der.length; p += step) {
    if (p > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    hash.update(der.subarray(p, p + step));
  }
  return hash.digest('hex');
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
