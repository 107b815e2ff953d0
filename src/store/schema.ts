// Kysely table types for the certification authority's database.
//
// Column names are the SQL (snake_case) names; the repository functions in certificates.ts map them to
// camelCase records. Every instant is an integer number of milliseconds since the Unix epoch, stored as
// INTEGER in SQLite and BIGINT in PostgreSQL, and read back as a JS number in both (see db.ts for the
// int8 parser): one code path, no Date/timezone handling in the store.

import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** Binary columns: written as any Uint8Array (a Buffer is one), read back as a Buffer in both dialects. */
export type Bytes = ColumnType<Buffer, Uint8Array, Uint8Array>;

export interface CertificatesTable {
  /** Lowercase hex of the DER INTEGER content octets. The primary key is what makes serials unique. */
  serial: string;
  /** Issuing CA id: 'sign', 'auth', or another CA's id. */
  ca: string;
  profile: string;
  /** Display form of the subject DN (not used for matching). */
  subject: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  der: Bytes;
  resident_ref: ColumnType<string | null, string | null | undefined, string | null>;
  /** Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo. */
  spki_sha256: string;
}

export interface RevocationsTable {
  /** Monotonic sequence (AUTOINCREMENT / identity): delta CRLs are "everything with id > base's max". */
  id: Generated<number>;
  serial: string;
  ca: string;
  /** RFC 5280 CRLReason code. */
  reason: number;
  revoked_at: number;
  recorded_at: number;
  /** Copied from the certificate so CRL building needs no join. */
  not_after: number;
}

export type CrlKind = 'full' | 'delta';

export interface CrlsTable {
  ca: string;
  /** CRL number (RFC 5280 5.2.3), one increasing sequence per CA shared by full and delta CRLs. */
  number: number;
  kind: CrlKind;
  /** For a delta CRL, the number of its base (full) CRL; null for a full CRL. */
  base_number: number | null;
  this_update: number;
  next_update: number;
  /** Highest revocations.id covered by this CRL. */
  max_revocation_id: number;
  entries: number;
  der: Bytes;
  /** Lowercase hex SHA-256 of der; served as the HTTP ETag. */
  sha256: string;
}

export interface Database {
  certificates: CertificatesTable;
  revocations: RevocationsTable;
  crls: CrlsTable;
  staff: import('./staff-schema.ts').StaffTable;
  staff_sessions: import('./staff-schema.ts').StaffSessionsTable;
  audit_log: import('./staff-schema.ts').AuditLogTable;
  audit_head: import('./staff-schema.ts').AuditHeadTable;
  residents: import('./register-schema.ts').ResidentsTable;
  register_events: import('./register-schema.ts').RegisterEventsTable;
  outbox: import('./register-schema.ts').OutboxTable;
  certificate_slots: import('./register-schema.ts').CertificateSlotsTable;
  revocation_causes: import('./register-schema.ts').RevocationCausesTable;
  counter_cases: import('./counter-schema.ts').CounterCasesTable;
  counter_receipt_sequences: import('./counter-schema.ts').CounterReceiptSequencesTable;
  counter_issuances: import('./counter-schema.ts').CounterIssuancesTable;
  verifiers: import('./verifier-schema.ts').VerifiersTable;
  verifier_status_history: import('./verifier-schema.ts').VerifierStatusHistoryTable;
  verifier_api_keys: import('./verifier-schema.ts').VerifierApiKeysTable;
  verifier_certificates: import('./verifier-schema.ts').VerifierCertificatesTable;
  verifier_usage: import('./verifier-schema.ts').VerifierUsageTable;
  ocsp_responses: import('./ocsp-schema.ts').OcspResponsesTable;
}

export type CertificateRow = Selectable<CertificatesTable>;
export type NewCertificateRow = Insertable<CertificatesTable>;
export type RevocationRow = Selectable<RevocationsTable>;
export type CrlRow = Selectable<CrlsTable>;
