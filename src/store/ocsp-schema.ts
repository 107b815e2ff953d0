// Kysely table type of the pre-signed OCSP responses (docs/ocsp.md). Migration 0007_ocsp_responses.

import type { Bytes } from './schema.ts';

export interface OcspResponsesTable {
  /** The certificate's serial (lowercase hex of the DER INTEGER content octets). */
  serial: string;
  ca: string;
  /** The whole OCSPResponse, as served. */
  der: Bytes;
  /** thisUpdate and producedAt of the response (ms). */
  this_update: number;
  next_update: number;
  /** 'good' or 'r<revokedAt ms>:<reason>'. */
  status_key: string;
}
