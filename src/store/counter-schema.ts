// Kysely table types of the municipal counter workflow (窓口受付): issuance, renewal and PIN-reset cases,
// receipt numbering, and one row per certificate issued at the counter (statistics). Migration 0004_counter.
//
// Same conventions as schema.ts: snake_case columns, instants as integer milliseconds since the epoch.

import type { Selectable } from 'kysely';

export type CounterCaseType = 'issuance' | 'renewal' | 'pin-reset';

export type CounterCaseState =
  | 'opened'
  | 'identity-verified'
  | 'fee-paid'
  | 'keys-generated'
  | 'partially-issued'
  | 'issued'
  | 'completed';

/** One visit at the counter: a resident, a clerk, and the steps done so far. */
export interface CounterCasesTable {
  /** Random, 'C' + 20 hex digits. */
  id: string;
  type: CounterCaseType;
  state: CounterCaseState;
  resident_id: string;
  /** The municipality whose counter handles the case (the clerk's, equal to the resident's at opening). */
  municipality_code: string;
  opened_by: number;
  opened_at: number;
  updated_at: number;
  /** JSON array of { type, last4|null } (never a full document number). */
  identity_documents: string | null;
  identity_verified_by: number | null;
  identity_verified_at: number | null;
  fee_amount: number | null;
  fee_method: string | null;
  receipt_number: string | null;
  fee_paid_by: number | null;
  fee_paid_at: number | null;
  card_id: string | null;
  /** PKCS#10 requests made on the card, base64 DER. */
  sign_csr: string | null;
  auth_csr: string | null;
  sign_serial: string | null;
  auth_serial: string | null;
  completed_at: number | null;
  /** The last failed step and why (cleared when a step succeeds). */
  last_error: string | null;
  last_error_at: number | null;
}

/** Receipt numbers: one sequence per municipality and calendar year (JST). */
export interface CounterReceiptSequencesTable {
  municipality_code: string;
  year: number;
  last_number: number;
}

/** One row per certificate issued at the counter: what the statistics count. */
export interface CounterIssuancesTable {
  serial: string;
  case_id: string;
  municipality_code: string;
  kind: string;
  /** 1 for a renewal (replaced a valid certificate). */
  renewal: number;
  issued_at: number;
  /** Calendar date in Japan (UTC+9), YYYY-MM-DD. */
  day: string;
}

export type CounterCaseRow = Selectable<CounterCasesTable>;
export type CounterIssuanceRow = Selectable<CounterIssuancesTable>;
