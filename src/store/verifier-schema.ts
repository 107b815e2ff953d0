// Kysely table types of the authorised verifiers (src/verifiers/): the registry, its append-only status
// history, API keys, client certificates and metered usage. Migration 0005_verifiers.
//
// Same conventions as schema.ts: snake_case columns, instants as integer milliseconds since the epoch,
// calendar days as 'YYYY-MM-DD' in Japan (UTC+9).

import type { ColumnType, Generated, Selectable } from 'kysely';
import type { Bytes } from './schema.ts';

export type VerifierCategory = 'administrative-body' | 'private-certification-business';
export type VerifierStatus = 'active' | 'suspended' | 'ended';
export type UsageKind = 'ocsp' | 'crl' | 'verification';
/** Which certificates' revocation information a verifier may receive: signature, user authentication. */
export type VerifierKind = 'sign' | 'auth';

type Nullable<T> = ColumnType<T | null, T | null | undefined, T | null>;

export interface VerifiersTable {
  id: Generated<number>;
  /** The organisation's name; unique. */
  name: string;
  category: VerifierCategory;
  /** First and last day of the contract (JST), both inclusive. */
  contract_from: string;
  contract_to: string;
  status: VerifierStatus;
  /** 'sign', 'auth' or 'sign,auth' (migration 0008; default 'sign,auth'). */
  kinds: ColumnType<string, string | undefined, string>;
  status_changed_at: number;
  created_at: number;
  /** Actor string ('staff:<id>', 'cli:<user>', 'api:operator-token'). */
  created_by: string;
  updated_at: number;
  updated_by: string;
}

/** Append-only (triggers refuse UPDATE and DELETE): one row per status change, the first at registration. */
export interface VerifierStatusHistoryTable {
  id: Generated<number>;
  verifier_id: number;
  status: VerifierStatus;
  previous_status: VerifierStatus | null;
  reason: string | null;
  at: number;
  actor: string;
}

export interface VerifierApiKeysTable {
  /** 16 lowercase hex digits: the public part of the key, and its lookup. */
  key_id: string;
  verifier_id: number;
  /** Lowercase hex SHA-256 of the secret part. The key itself is never stored. */
  secret_sha256: string;
  label: Nullable<string>;
  created_at: number;
  created_by: string;
  /** Null: the key lasts as long as the verifier's contract. */
  expires_at: Nullable<number>;
  revoked_at: Nullable<number>;
  revoked_by: Nullable<string>;
}

export interface VerifierCertificatesTable {
  /** Lowercase hex SHA-256 of the certificate's DER. */
  fingerprint_sha256: string;
  verifier_id: number;
  /** Lowercase hex, as node:crypto prints it. */
  serial: string;
  subject: string;
  issuer: string;
  not_before: number;
  not_after: number;
  der: Bytes;
  created_at: number;
  created_by: string;
  revoked_at: Nullable<number>;
  revoked_by: Nullable<string>;
}

export interface VerifierUsageTable {
  verifier_id: number;
  /** JST calendar day, YYYY-MM-DD. */
  day: string;
  kind: UsageKind;
  count: number;
}

export type VerifierRow = Selectable<VerifiersTable>;
export type VerifierStatusHistoryRow = Selectable<VerifierStatusHistoryTable>;
export type VerifierApiKeyRow = Selectable<VerifierApiKeysTable>;
export type VerifierCertificateRow = Selectable<VerifierCertificatesTable>;
export type VerifierUsageRow = Selectable<VerifierUsageTable>;
