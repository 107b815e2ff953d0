// Repository for certificates, revocations and CRLs.
//
// Every function takes a Kysely<Database> or a Transaction<Database> (a Transaction is a Kysely), so
// callers can compose them inside their own transaction. Stored rows are passed and returned as the
// table types of schema.ts (snake_case column names); the derived answers for the hot paths
// (certificateStatus, streamRevocations) are camelCase. Instants are milliseconds since the epoch.

import { createHash } from 'node:crypto';
import { type Insertable, type Kysely, PostgresAdapter, sql } from 'kysely';
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
 * transaction survives a duplicate and can retry with another serial.
 */
export async function insertCertificate(db: Db, row: NewCertificateRow): Promise<void> {
  if (!isCanonicalSerialHex(row.serial)) {
    throw new TypeError(`not a canonical lowercase hex DER serial: ${JSON.stringify(row.serial)}`);
  }
  try {
    await underSavepoint(db, () =>
      db
        .insertInto('certificates')
        .values({
          serial: row.serial,
          ca: row.ca,
          profile: row.profile,
          subject: row.subject,
          not_before: row.not_before,
          not_after: row.not_after,
          issued_at: row.issued_at,
          der: row.der,
          resident_ref: row.resident_ref ?? null,
          spki_sha256: row.spki_sha256,
        })
        .execute(),
    );
  } catch (err) {
    if (isUniqueViolation(err, 'certificates_pkey', 'certificates.serial')) {
      throw new DuplicateSerialError(row.serial, { cause: err });
    }
    throw err;
  }
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
  const row = await db
    .selectFrom('certificates as c')
    .leftJoin('revocations as r', 'r.serial', 'c.serial')
    .select(['c.ca', 'c.not_after', 'r.id', 'r.reason', 'r.revoked_at'])
    .where('c.serial', '=', serial)
    .executeTakeFirst();
  if (!row) return undefined;
  const status: CertificateStatus = { ca: row.ca, notAfter: row.not_after };
  if (row.id !== null && row.reason !== null && row.revoked_at !== null) {
    status.revocation = { id: row.id, reason: row.reason, revokedAt: row.revoked_at };
  }
  return status;
}

export interface RevocationQuery {
  ca: string;
  /** Only revocations with id > afterId (a delta CRL: its base's maxRevocationId). */
  afterId?: number;
  /** Only revocations with id <= throughId: pass the maxRevocationId the CRL will record. */
  throughId?: number;
  /** Only certificates with notAfter >= notAfterFrom (expired ones may leave the CRL). */
  notAfterFrom: number;
  /** Rows fetched per round trip on PostgreSQL (SQLite steps row by row). Default 1000. */
  chunkSize?: number;
}

export interface RevocationEntry {
  id: number;
  serial: string;
  reason: number;
  revokedAt: number;
}

/**
 * Revocations of one CA in id order, streamed: at most one chunk is in memory at a time.
 *
 * The stream holds a database connection until it ends or the loop exits (break/throw close it). On
 * SQLite there is only ONE connection, so do not run other queries on the same store while iterating:
 * they would wait for the stream forever. Collect what you need to write and write it after the loop.
 */
export async function* streamRevocations(
  db: Db,
  query: RevocationQuery,
): AsyncGenerator<RevocationEntry, void, undefined> {
  let q = db
    .selectFrom('revocations')
    .select(['id', 'serial', 'reason', 'revoked_at'])
    .where('ca', '=', query.ca)
    .where('not_after', '>=', query.notAfterFrom);
  if (query.afterId !== undefined) q = q.where('id', '>', query.afterId);
  if (query.throughId !== undefined) q = q.where('id', '<=', query.throughId);
  for await (const row of q.orderBy('id').stream(query.chunkSize ?? 1000)) {
    yield { id: row.id, serial: row.serial, reason: row.reason, revokedAt: row.revoked_at };
  }
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
export async function insertCrl(db: Db, row: NewCrlRow): Promise<CrlRow> {
  const { number: fixedNumber, der: derOrBuild, sha256: expectedSha256, ...fields } = row;
  const baseNumber = fields.base_number ?? null;
  if ((fields.kind === 'delta') !== (baseNumber !== null)) {
    throw new TypeError('a delta CRL needs a base_number and a full CRL must not have one');
  }
  for (let attempt = 1; ; attempt++) {
    const number = fixedNumber ?? (await nextCrlNumber(db, fields.ca));
    const der = toBuffer(typeof derOrBuild === 'function' ? await derOrBuild(number) : derOrBuild);
    const sha256 = createHash('sha256').update(der).digest('hex');
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
      await underSavepoint(db, () => db.insertInto('crls').values(crl).execute());
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

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
