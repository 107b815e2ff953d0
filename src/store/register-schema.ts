// Kysely table types of the resident register (住民基本台帳), the outbox that turns register events into
// certificate revocations, and the Art. 6 certificate slots. Created by migration 0002_register.
//
// Dates of the register (date of birth, effective dates) are Gregorian calendar dates as text,
// YYYY-MM-DD, which sort and compare correctly as strings. Instants are milliseconds since the epoch.

import type { ColumnType, Generated, Selectable } from 'kysely';

export type ResidentStatus = 'resident' | 'moved-out' | 'deceased';

export type RegisterEventType =
  | 'registered'
  | 'moved-within'
  | 'moved-in'
  | 'moved-out'
  | 'name-changed'
  | 'address-corrected'
  | 'facts-corrected'
  | 'died';

/** The current state of one resident: the fold of their register_events. Updated, never the history. */
export interface ResidentsTable {
  /** 住民票コード: 11 digits. */
  resident_id: string;
  /** 全国地方公共団体コード of the municipality whose register holds the resident: 6 digits with check digit. */
  municipality_code: string;
  /** Family and given name separated by one U+3000, as normaliseBasicFacts leaves it. */
  name: string;
  /** Reading in katakana, or null when not recorded. */
  name_kana: string | null;
  date_of_birth: string | null;
  sex: 'male' | 'female' | 'unknown';
  address: string;
  name_substitutes: string;
  address_substitutes: string;
  status: ResidentStatus;
  /** Latest effective date among the resident's events: an event dated before it is a late event. */
  effective_date: string;
  /** Number of events recorded for the resident; a certificate slot records the version its facts came from. */
  version: number;
  updated_at: number;
}

/**
 * Append-only history: one row per event, never updated or deleted. The fact columns hold the facts
 * snapshot right after the event at its place in the timeline; `changed` names the fields the event set.
 */
export interface RegisterEventsTable {
  id: Generated<number>;
  resident_id: string;
  type: RegisterEventType;
  effective_date: string;
  /** Comma-separated field names the event set (see RESIDENT_FIELDS in src/register/facts.ts). */
  changed: string;
  municipality_code: string;
  name: string;
  name_kana: string | null;
  date_of_birth: string | null;
  sex: 'male' | 'female' | 'unknown';
  address: string;
  name_substitutes: string;
  address_substitutes: string;
  status: ResidentStatus;
  /** The resident's version after this event. */
  version: number;
  /** 1 when the event was dated before the resident's latest event (recorded late). */
  late: number;
  /** Idempotency key from the register network; null for rows of a CSV import. */
  source_event_id: string | null;
  /** SHA-256 of the normalised request, to tell a repeated event from a conflicting reuse of its id. */
  source_hash: string | null;
  /** The CSV import and data row (header = row 1) a registration came from. */
  import_id: string | null;
  import_row: number | null;
  recorded_at: number;
}

/** Transactional outbox: work that must follow a committed write, done by a processor. */
export interface OutboxTable {
  id: Generated<number>;
  /** What to do: 'register.certificates' = act on the certificates of the event's resident. */
  topic: string;
  /** The row the work is about (register_events.id for 'register.certificates'). */
  ref_id: number;
  resident_id: string | null;
  created_at: number;
  /** Null while pending. */
  processed_at: number | null;
  processed_by: string | null;
  attempts: ColumnType<number, number | undefined, number>;
  /** A failed row is retried from this instant on (backoff). */
  next_attempt_at: number;
  last_error: string | null;
}

/** Art. 6 (法第6条): at most one current certificate of each kind per resident, by primary key. */
export interface CertificateSlotsTable {
  resident_id: string;
  /** 'sign' or 'auth'. */
  kind: string;
  serial: string;
  /** residents.version whose facts the certificate was issued with. */
  facts_version: number;
  taken_at: number;
}

/** Why a resident's certificate was revoked, beyond its CRLReason: the register event, or another cause. */
export interface RevocationCausesTable {
  serial: string;
  resident_id: string;
  /** The register event that caused the revocation, if one did. */
  event_id: number | null;
  /** 'register-event' | 'superseded' | 'loss-report' | 'holder-request' | … */
  cause: string;
  recorded_at: number;
}

export type ResidentRow = Selectable<ResidentsTable>;
export type RegisterEventRow = Selectable<RegisterEventsTable>;
export type OutboxRow = Selectable<OutboxTable>;
export type CertificateSlotRow = Selectable<CertificateSlotsTable>;
export type RevocationCauseRow = Selectable<RevocationCausesTable>;
