// Row types of the application tables (migration 0009). Kept here, with the service, and joined to
// the store's schema with `db.withTables<ApplicationTables>()`.

import type { Generated } from 'kysely';

export type ApplicationTables = {
  applications: {
    id: string;
    procedure_id: string;
    idempotency_key: string;
    request_sha256: string;
    resident_ref: string | null;
    form_json: string;
    signature_format: string;
    evidence: Buffer;
    signer_serial: string;
    signer_subject: string;
    report_json: string;
    revocation_json: string;
    /** Milliseconds since the epoch (a string from PostgreSQL bigint: read through Number). */
    timestamp_time: number;
    received_at: number;
    fee: number;
    receipt_json: string;
    receipt_token: Buffer;
  };
  application_parts: {
    application_id: string;
    part_id: string;
    agency_id: string;
    fee: number;
    status: string;
    updated_at: number;
  };
  application_part_events: {
    id: Generated<number>;
    application_id: string;
    part_id: string;
    at: number;
    actor: string;
    action: string;
    status: string;
    note: string | null;
  };
  agency_api_keys: {
    key_id: string;
    agency_id: string;
    secret_sha256: string;
    created_at: number;
    revoked_at: number | null;
  };
};
