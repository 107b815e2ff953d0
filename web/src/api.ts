// The API of the same server: the counter API (src/http/counter-routes.ts) and the operators' verifier API
// with a staff session token as Bearer, the verifier console's own-account API and POST /verify with the
// verifier's API key as Bearer (src/http/verifier-routes.ts). Errors come as { error, message } with the
// service's error name, which the page turns into a sentence; a refusal of a verifier's credential also
// carries X-JPKI-Refusal (revoked, suspended, …), which picks a more precise sentence.

export type Role = 'clerk' | 'supervisor' | 'operator';

export interface Principal {
  staffId: number;
  username: string;
  role: Role;
  municipalityCode: string | null;
}

export interface Session {
  token: string;
  expiresAt: string;
  principal: Principal;
}

export interface Resident {
  residentId: string;
  municipalityCode: string;
  name: string;
  nameKana: string | null;
  dateOfBirth: string | null;
  sex: string;
  address: string;
  status: string;
  version: number;
}

export interface ResidentCertificate {
  serial: string;
  kind: 'sign' | 'auth';
  status: 'valid' | 'revoked' | 'expired';
  current: boolean;
  notAfter: string;
  reason?: string;
  message?: { ja: string; en: string };
}

export interface ResidentRecord {
  resident: Resident;
  certificates: ResidentCertificate[];
  cardId: string | null;
}

export type CaseType = 'issuance' | 'renewal' | 'pin-reset';
export type CaseState =
  | 'opened'
  | 'identity-verified'
  | 'fee-paid'
  | 'keys-generated'
  | 'partially-issued'
  | 'issued'
  | 'completed';

export interface CounterCase {
  id: string;
  type: CaseType;
  state: CaseState;
  residentId: string;
  municipalityCode: string;
  openedBy: number;
  openedAt: string;
  updatedAt: string;
  identity: {
    documents: { type: string; last4: string | null }[];
    verifiedBy: number;
    verifiedAt: string;
  } | null;
  fee: { amountYen: number; method: string; receiptNumber: string; paidBy: number; paidAt: string } | null;
  cardId: string | null;
  signSerial: string | null;
  authSerial: string | null;
  completedAt: string | null;
  lastError: { message: string; at: string } | null;
}

export interface Receipt {
  receiptNumber: string;
  caseId: string;
  municipalityCode: string;
  residentId: string;
  amountYen: number;
  method: string;
  paidAt: string;
  receivedBy: string;
  item: { ja: string; en: string };
}

export interface CounterConfig {
  feeYen: number;
  renewalWindowDays: number;
  capacity: number;
  keyAlgorithm: string;
}

export interface IssuanceRow {
  period: string;
  municipalityCode: string;
  sign: number;
  auth: number;
  total: number;
  renewals: number;
}

export interface IssuanceStats {
  from: string;
  to: string;
  municipalityCode: string | null;
  daily: IssuanceRow[];
  monthly: IssuanceRow[];
  byMunicipality: IssuanceRow[];
  total: { sign: number; auth: number; total: number; renewals: number };
  capacity: number;
  cumulative: number;
  utilisation: number;
}

export const IDENTITY_DOCUMENT_TYPES = [
  'my-number-card',
  'resident-card-photo',
  'passport',
  'driving-licence',
  'other-photo-id',
] as const;
export const PAYMENT_METHODS = ['cash', 'cashless', 'exempt'] as const;

/** A refusal or failure from the API; `name` is the service's error name (AlreadyIssuedError, …). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const SESSION_KEY = 'jpki.counter.session';

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return Date.parse(s.expiresAt) > Date.now() ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  try {
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // the session then lasts as long as the page
  }
}

export type Method = 'GET' | 'POST' | 'PUT';

async function send(
  token: string | null,
  method: Method,
  path: string,
  body?: unknown,
  accept = 'application/json',
): Promise<Response> {
  const headers: Record<string, string> = { accept };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'Network', e instanceof Error ? e.message : String(e));
  }
  if (!res.ok) {
    let name = 'Unknown';
    let message = `HTTP ${res.status}`;
    try {
      const j = (await res.json()) as { error?: string; message?: string };
      if (j.error) name = j.error;
      if (j.message) message = j.message;
    } catch {
      // not JSON
    }
    const refusal = res.headers.get('x-jpki-refusal');
    if (refusal && /^[a-z-]{1,40}$/.test(refusal)) name = `refused_${refusal}`;
    else if (res.status === 401 && name === 'Unauthorized') name = 'SessionError';
    throw new ApiError(res.status, name, message);
  }
  return res;
}

export async function login(username: string, password: string): Promise<Session> {
  const res = await send(null, 'POST', '/api/v1/staff/login', { username, password });
  return (await res.json()) as Session;
}

/** API calls with one credential: a staff session token, or a verifier's API key (the verifier console). */
export class Api {
  constructor(
    readonly token: string,
    /** Called on a 401: the session ended, or the API key no longer works. */
    private readonly onSessionEnded: () => void,
  ) {}

  async call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    try {
      return (await (await send(this.token, method, path, body)).json()) as T;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.onSessionEnded();
      throw e;
    }
  }

  /** The raw body (CSV, text), for downloads. */
  async text(path: string, accept: string): Promise<Blob> {
    try {
      return await (await send(this.token, 'GET', path, undefined, accept)).blob();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.onSessionEnded();
      throw e;
    }
  }

  logout() {
    return this.call<{ loggedOut: boolean }>('POST', '/api/v1/staff/logout');
  }
  config() {
    return this.call<CounterConfig>('GET', '/api/v1/counter/config');
  }
  searchResidents(q: { name?: string; birth?: string }) {
    const p = new URLSearchParams();
    if (q.name) p.set('name', q.name);
    if (q.birth) p.set('birth', q.birth);
    return this.call<{ residents: Resident[] }>('GET', `/api/v1/residents?${p}`);
  }
  resident(id: string) {
    return this.call<ResidentRecord>('GET', `/api/v1/residents/${encodeURIComponent(id)}`);
  }
  reportLoss(id: string, channel: 'phone' | 'counter') {
    return this.call<{ revoked: string[] }>(
      'POST',
      `/api/v1/residents/${encodeURIComponent(id)}/loss-report`,
      { channel },
    );
  }
  openCase(residentId: string, type: CaseType) {
    return this.call<CounterCase>('POST', '/api/v1/counter/cases', { residentId, type });
  }
  getCase(id: string) {
    return this.call<CounterCase>('GET', `/api/v1/counter/cases/${id}`);
  }
  step(id: string, step: 'identity' | 'fee' | 'keys' | 'issue' | 'card' | 'pin-reset', body?: unknown) {
    return this.call<CounterCase>('POST', `/api/v1/counter/cases/${id}/${step}`, body);
  }
  receipt(id: string) {
    return this.call<Receipt>('GET', `/api/v1/counter/cases/${id}/receipt`);
  }
  stats(q: { from: string; to: string; municipality?: string }) {
    return this.call<IssuanceStats>('GET', statsPath(q));
  }
}

export function statsPath(q: { from: string; to: string; municipality?: string }, format?: 'csv' | 'json') {
  const p = new URLSearchParams({ from: q.from, to: q.to });
  if (q.municipality) p.set('municipality', q.municipality);
  if (format) p.set('format', format);
  return `/api/v1/stats/issuance?${p}`;
}

/** Saves a blob as a file (the API needs the Bearer header, so a plain link cannot fetch it). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Today's date in Japan, YYYY-MM-DD (the statistics count JST days). */
export function jstToday(): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Tokyo' }).format(new Date());
}

/** This month in Japan, YYYY-MM (usage and statements count JST months). */
export function jstThisMonth(): string {
  return jstToday().slice(0, 7);
}
