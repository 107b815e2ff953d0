// Kysely table types for staff accounts, their sessions and the audit log (migration 0003_staff_audit).
//
// Same conventions as schema.ts: snake_case column names, instants as integer milliseconds since the
// epoch (INTEGER in SQLite, BIGINT in PostgreSQL, a JS number in both).

import type { ColumnType, Generated, Selectable } from 'kysely';

export type StaffRole = 'clerk' | 'supervisor' | 'operator';

export interface StaffTable {
  /** Identity / AUTOINCREMENT: ids are never reused, so `staff:<id>` in the audit log stays unambiguous. */
  id: Generated<number>;
  /** Lower case, `[a-z][a-z0-9._-]{2,63}`, unique. */
  username: string;
  role: StaffRole;
  /** Six-digit local government code; NULL exactly when role = 'operator' (a CHECK says so). */
  municipality_code: string | null;
  /** PHC string `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64 without padding): the parameters travel with it. */
  password_hash: string;
  /** Failed logins since the last success or lock-out. */
  failed_logins: ColumnType<number, number | undefined, number>;
  /** Logins are refused until this instant (lock-out after too many failures). */
  locked_until: ColumnType<number | null, number | null | undefined, number | null>;
  /** Set when the account is disabled; rows are never deleted (audit entries refer to them). */
  disabled_at: ColumnType<number | null, number | null | undefined, number | null>;
  created_at: number;
  updated_at: number;
}

export interface StaffSessionsTable {
  /** Lowercase hex SHA-256 of the bearer token. The token itself is never stored. */
  token_hash: string;
  staff_id: number;
  created_at: number;
  /** Last authenticated use (updated at most once a minute): idle expiry counts from here. */
  last_seen_at: number;
  /** Absolute expiry. */
  expires_at: number;
  revoked_at: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface AuditLogTable {
  /** 1, 2, 3, … with no gaps: taken from audit_head inside the appending transaction. */
  seq: number;
  at: number;
  /** 'staff:<id>', 'resident:<id>', 'system', 'cli:<os user>', 'anonymous' … */
  actor: string;
  /** Dotted name, e.g. 'staff.login', 'certificate.issue'. */
  action: string;
  subject: string | null;
  municipality_code: string | null;
  /** Canonical JSON (sorted keys) of a JSON object. */
  details: string;
  /** Lowercase hex; 64 zeros for the first entry. */
  prev_hash: string;
  /** Lowercase hex SHA-256 of the canonical encoding of the entry (see src/audit/audit-log.ts). */
  hash: string;
}

/** One row (id = 1): the last entry of the chain. Advanced by a trigger on every insert into audit_log. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export type StaffRow = Selectable<StaffTable>;
export type StaffSessionRow = Selectable<StaffSessionsTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
