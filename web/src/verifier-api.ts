// The verifier API as the pages use it (src/http/verifier-routes.ts, docs/verifiers.md): operators manage
// the registry, credentials, usage and statements with their staff session; a verifier reads its own
// account with its API key and validates signed documents (POST /verify, src/http/server.ts).

import type { Api } from './api.ts';

export const VERIFIER_CATEGORIES = ['administrative-body', 'private-certification-business'] as const;
export type VerifierCategory = (typeof VERIFIER_CATEGORIES)[number];
export const VERIFIER_STATUSES = ['active', 'suspended', 'ended'] as const;
export type VerifierStatus = (typeof VERIFIER_STATUSES)[number];
export type CredentialState = 'valid' | 'revoked' | 'expired';
export const USAGE_KINDS = ['ocsp', 'crl', 'verification'] as const;
export type UsageKind = (typeof USAGE_KINDS)[number];

export interface Verifier {
  id: number;
  name: string;
  category: VerifierCategory;
  contractFrom: string;
  contractTo: string;
  status: VerifierStatus;
  statusChangedAt: string;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

export interface StatusChange {
  status: VerifierStatus;
  previousStatus: VerifierStatus | null;
  reason: string | null;
  at: string;
  actor: string;
}

export interface ApiKeyInfo {
  keyId: string;
  label: string | null;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  state: CredentialState;
}

export interface CertificateInfo {
  fingerprintSha256: string;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  revokedBy: string | null;
  state: CredentialState;
}

export interface VerifierDetails {
  verifier: Verifier;
  history: StatusChange[];
  apiKeys: ApiKeyInfo[];
  certificates: CertificateInfo[];
}

export interface IssuedApiKey {
  keyId: string;
  apiKey: string;
  expiresAt: string | null;
  validUntil: string;
}

export type UsageCounts = Record<UsageKind, number>;

export interface VerifierUsage {
  verifierId: number;
  month: string;
  days: (UsageCounts & { day: string })[];
  total: UsageCounts;
}

export interface StatementLine {
  item: 'base-fee' | UsageKind;
  description: string;
  quantity: number;
  unitPriceYen: number;
  amountYen: number;
}

export interface Statement {
  verifier: { id: number; name: string; category: string };
  month: string;
  period: { from: string; to: string };
  currency: string;
  lines: StatementLine[];
  totalYen: number;
  final: boolean;
  generatedAt: string;
  tariff: { monthlyBaseFeeYen: number; ocspYen: number; crlYen: number; verificationYen: number };
}

export interface UsageOverview {
  month: string;
  final: boolean;
  verifiers: (UsageCounts & {
    verifierId: number;
    name: string;
    category: VerifierCategory;
    status: VerifierStatus;
    amountYen: number;
  })[];
  total: UsageCounts & { amountYen: number };
}

/** GET /api/v1/verifier: who the API key belongs to. */
export interface VerifierSelf {
  id: number;
  name: string;
  category: VerifierCategory;
  status: VerifierStatus;
  contractFrom: string;
  contractTo: string;
  credential: { type: 'api-key' | 'certificate'; keyId?: string; fingerprintSha256?: string };
}

export type Indication = 'TOTAL_PASSED' | 'TOTAL_FAILED' | 'INDETERMINATE';

/** The validation report of POST /verify (src/verifier/verify-signature.ts). */
export interface ValidationReport {
  indication: Indication;
  subIndication?: string;
  format: string;
  signingTime?: string;
  timestampTime?: string;
  validationTime: string;
  longTermValidation?: { at: string; reason: 'revoked-after-timestamp' | 'expired-after-timestamp' };
  signer?: {
    subject: string;
    issuer: string;
    serial: string;
    notBefore: string;
    notAfter: string;
    kind: 'sign' | 'auth' | 'other';
    basicFacts?: {
      name: string;
      dateOfBirth: string | null;
      sex: string;
      address: string;
      nameSubstitutes?: string;
      addressSubstitutes?: string;
    };
  };
  certificateChain: string[];
  timestamps: { time: string; valid: boolean; tsa?: string; message: string }[];
  revocation: {
    index: number;
    subject: string;
    source: 'crl' | 'ocsp' | 'none';
    status: 'good' | 'revoked' | 'unknown' | 'skipped';
    revokedAt?: string;
    reason?: string;
    crlNumber?: string;
    thisUpdate?: string;
    nextUpdate?: string;
    problem?: 'missing' | 'stale' | 'unusable';
    message?: string;
  }[];
  summary: { ja: string; en: string };
  messages: string[];
}

/** Where usage and statements of one verifier are read: the operators' routes, or the verifier's own. */
export interface BillingPaths {
  usage(month: string): string;
  statement(month: string, format?: 'json' | 'csv'): string;
}

export const ownBilling: BillingPaths = {
  usage: (month) => `/api/v1/verifier/usage?month=${month}`,
  statement: (month, format) => `/api/v1/verifier/statements/${month}${format ? `?format=${format}` : ''}`,
};

export function operatorBilling(id: number): BillingPaths {
  return {
    usage: (month) => `/api/v1/verifiers/${id}/usage?month=${month}`,
    statement: (month, format) =>
      `/api/v1/verifiers/${id}/statements/${month}${format ? `?format=${format}` : ''}`,
  };
}

export function overviewPath(month: string, format?: 'json' | 'csv'): string {
  return `/api/v1/verifier-usage?month=${month}${format ? `&format=${format}` : ''}`;
}

/** The operators' registry API (staff session of an operator). */
export class VerifierAdmin {
  constructor(readonly api: Api) {}

  list(status?: VerifierStatus) {
    return this.api.call<{ verifiers: Verifier[] }>(
      'GET',
      `/api/v1/verifiers${status ? `?status=${status}` : ''}`,
    );
  }
  register(v: { name: string; category: VerifierCategory; contractFrom: string; contractTo: string }) {
    return this.api.call<Verifier>('POST', '/api/v1/verifiers', v);
  }
  details(id: number) {
    return this.api.call<VerifierDetails>('GET', `/api/v1/verifiers/${id}`);
  }
  setStatus(id: number, status: VerifierStatus, reason?: string) {
    return this.api.call<Verifier>('POST', `/api/v1/verifiers/${id}/status`, {
      status,
      ...(reason ? { reason } : {}),
    });
  }
  setContract(id: number, contractFrom: string, contractTo: string) {
    return this.api.call<Verifier>('PUT', `/api/v1/verifiers/${id}/contract`, { contractFrom, contractTo });
  }
  issueKey(id: number, o: { label?: string; expiresAt?: string }) {
    return this.api.call<IssuedApiKey>('POST', `/api/v1/verifiers/${id}/keys`, o);
  }
  revokeKey(id: number, keyId: string) {
    return this.api.call<{ revoked: boolean }>('POST', `/api/v1/verifiers/${id}/keys/${keyId}/revocation`);
  }
  registerCertificate(id: number, certificate: string) {
    return this.api.call<CertificateInfo>('POST', `/api/v1/verifiers/${id}/certificates`, { certificate });
  }
  revokeCertificate(id: number, fingerprint: string) {
    return this.api.call<{ revoked: boolean }>(
      'POST',
      `/api/v1/verifiers/${id}/certificates/${fingerprint}/revocation`,
    );
  }
  overview(month: string) {
    return this.api.call<UsageOverview>('GET', overviewPath(month));
  }
}

/** The verifier's own account (its API key). */
export class VerifierAccount {
  constructor(readonly api: Api) {}

  self() {
    return this.api.call<VerifierSelf>('GET', '/api/v1/verifier');
  }
  credentials() {
    return this.api.call<{ apiKeys: ApiKeyInfo[]; certificates: CertificateInfo[] }>(
      'GET',
      '/api/v1/verifier/credentials',
    );
  }
  verify(body: { signature: string; content?: string }) {
    return this.api.call<ValidationReport>('POST', '/verify', body);
  }
}

const KEY_STORAGE = 'jpki.verifier.apiKey';

/** The API key lives in this tab's sessionStorage only: gone when the tab closes, never in localStorage. */
export function loadApiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function saveApiKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // then it lasts as long as the page
  }
}

/** POST /verify takes at most 16 MiB of JSON: the files, base64 (4/3 larger), must fit. */
export const MAX_VERIFY_FILE_BYTES = 12 * 1024 * 1024 - 4096;

/** A file's bytes as base64 (through a data: URL, which the browser makes natively and fast). */
export function fileBase64(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const url = String(r.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    r.onerror = () => reject(r.error ?? new Error('the file could not be read'));
    r.readAsDataURL(file);
  });
}
