// Where revocation data comes from: CRLs and OCSP responses given as files, and, when online, CRLs
// fetched from a certificate's CRL distribution points (and the delta CRLs its freshestCRL names)
// and OCSP responses fetched from its AIA OCSP responder.
//
// Fetching is plain HTTP (RFC 5280 4.2.1.13 and RFC 6960 A.1 name http URLs; https and ldap are
// refused), bounded in time and size, and never follows a redirect to anything but http. Fetched
// objects are cached by URL and reused until their nextUpdate; then they are fetched again. Parsing
// and signature checks are cached by the core (core/path/cache.ts), so a long-lived source on a
// verifier's hot path costs a map lookup per certificate once warm.

import { createHash } from 'node:crypto';
import { NULL, octetString, oid, sequence, tlv } from '../core/der.ts';
import { OID } from '../core/oids.ts';
import { Lru } from '../core/path/cache.ts';
import {
  crlFrom,
  defaultCache,
  ocspFrom,
  type ParsedCertificate,
  type ParsedCrl,
  type ParsedOcspResponse,
  PathParseError,
  type PkiCache,
} from '../core/path/index.ts';
import { decodePemAll } from '../core/pem.ts';

export interface RevocationSourceOptions {
  /** Fetch CRLs and OCSP responses named in the certificates. Default false. */
  online?: boolean;
  /** Per request, connection to last byte. Default 10 s. */
  timeoutMs?: number;
  /** Largest body accepted. Default 64 MiB. */
  maxBytes?: number;
  /** Redirects followed (to http URLs only). Default 3. */
  maxRedirects?: number;
  /** Ask the OCSP responder named in AIA as well as the CRL distribution points. Default true. */
  useOcsp?: boolean;
  /** How long a failed URL is not retried. Default 30 s. */
  failureTtlMs?: number;
  /** Clock for cache expiry (not the validation time). */
  now?: () => Date;
  /** fetch implementation (tests). Default: global fetch. */
  fetch?: typeof fetch;
  cache?: PkiCache;
}

/** A revocation-data fetch that did not succeed. */
export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${url}: ${message}`);
  }
}

interface CachedCrl {
  crl: ParsedCrl;
  /** Reuse until (ms since epoch): the CRL's nextUpdate, or an hour when it has none. */
  until: number;
}

interface CachedOcsp {
  response: ParsedOcspResponse;
  until: number;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export class RevocationSource {
  private readonly options: Required<Omit<RevocationSourceOptions, 'fetch' | 'cache' | 'now'>>;
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => Date;
  readonly cache: PkiCache;
  private readonly fileCrls = new Map<string, ParsedCrl>();
  private readonly fileOcsp = new Map<string, ParsedOcspResponse>();
  private readonly crlByUrl = new Lru<string, CachedCrl>(1_000);
  private readonly ocspByKey = new Lru<string, CachedOcsp>(20_000);
  private readonly failures = new Lru<string, { until: number; error: FetchError }>(1_000);
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(opts: RevocationSourceOptions = {}) {
    this.options = {
      online: opts.online ?? false,
      timeoutMs: opts.timeoutMs ?? 10_000,
      maxBytes: opts.maxBytes ?? DEFAULT_MAX_BYTES,
      maxRedirects: opts.maxRedirects ?? 3,
      useOcsp: opts.useOcsp ?? true,
      failureTtlMs: opts.failureTtlMs ?? 30_000,
    };
    this.fetchImpl = opts.fetch ?? globalThis.fetch;
    this.now = opts.now ?? (() => new Date());
    this.cache = opts.cache ?? defaultCache;
  }

  get online(): boolean {
    return this.options.online;
  }

  /** Adds a CRL given as DER or PEM (one or more `X509 CRL` blocks). Throws PathParseError if malformed. */
  addCrl(data: Uint8Array): ParsedCrl[] {
    const out: ParsedCrl[] = [];
    for (const der of derBlocks(data, 'X509 CRL')) {
      const crl = crlFrom(der, this.cache);
      this.fileCrls.set(crl.hash, crl);
      out.push(crl);
    }
    return out;
  }

  /** Adds an OCSP response (DER OCSPResponse). Throws PathParseError if malformed. */
  addOcspResponse(data: Uint8Array): ParsedOcspResponse {
    const r = ocspFrom(data, this.cache);
    this.fileOcsp.set(r.hash, r);
    return r;
  }

  /** Every CRL known: files, and fetched ones (stale ones too: the core says why they do not count). */
  crls(): ParsedCrl[] {
    const out = new Map(this.fileCrls);
    for (const c of this.crlByUrl.values()) out.set(c.crl.hash, c.crl);
    return [...out.values()];
  }

  ocspResponses(): ParsedOcspResponse[] {
    const out = new Map(this.fileOcsp);
    for (const c of this.ocspByKey.values()) out.set(c.response.hash, c.response);
    return [...out.values()];
  }

  /**
   * Fetches what the certificates name (when online): their CRLs (and delta CRLs), and an OCSP
   * response from their issuer's responder. Returns whether anything new arrived and what failed.
   */
  async fetchFor(
    items: readonly { cert: ParsedCertificate; issuer: ParsedCertificate }[],
  ): Promise<{ fetched: number; errors: string[] }> {
    if (!this.options.online) return { fetched: 0, errors: [] };
    const errors: string[] = [];
    let fetched = 0;
    const tasks: Promise<void>[] = [];
    const crlUrls = new Set<string>();
    for (const { cert, issuer } of items) {
      for (const u of [...urlsOf(cert.crlDistributionPoints), ...urlsOf(cert.freshestCrl)]) crlUrls.add(u);
      if (this.options.useOcsp) {
        const url = cert.ocspUrls.find((u) => u.startsWith('http://'));
        if (url)
          tasks.push(
            this.ocspFor(url, cert, issuer).then(
              (fresh) => {
                if (fresh) fetched++;
              },
              (e: unknown) => {
                errors.push(message(e));
              },
            ),
          );
      }
    }
    const crlTask = (url: string): Promise<void> =>
      this.crlFrom(url).then(
        async ({ crl, fresh }) => {
          if (fresh) fetched++;
          // a complete CRL names its delta CRL in freshestCRL
          for (const d of urlsOf(crl.freshestCrl)) if (!crlUrls.has(d)) await crlTask(d);
        },
        (e: unknown) => {
          errors.push(message(e));
        },
      );
    for (const url of crlUrls) tasks.push(crlTask(url));
    await Promise.all(tasks);
    return { fetched, errors };
  }

  /** The CRL at `url`: from the cache while before its nextUpdate, else fetched. */
  private async crlFrom(url: string): Promise<{ crl: ParsedCrl; fresh: boolean }> {
    const now = this.now().getTime();
    const hit = this.crlByUrl.get(url);
    if (hit && now < hit.until) return { crl: hit.crl, fresh: false };
    this.checkFailure(url, now);
    return this.once(`crl ${url}`, async () => {
      try {
        const body = await this.request(url, { method: 'GET', headers: { accept: 'application/pkix-crl' } });
        let crl: ParsedCrl;
        try {
          const blocks = derBlocks(body, 'X509 CRL');
          crl = crlFrom(blocks[0]!, this.cache);
        } catch (e) {
          throw new FetchError(url, `not a CRL: ${message(e)}`);
        }
        const until = crl.nextUpdate ? crl.nextUpdate.getTime() : now + 3600_000;
        this.crlByUrl.set(url, { crl, until });
        return { crl, fresh: !hit || hit.crl.hash !== crl.hash };
      } catch (e) {
        this.remember(url, e);
        throw e;
      }
    });
  }

  /** An OCSP response for one certificate from `url`, cached until its nextUpdate. */
  private async ocspFor(url: string, cert: ParsedCertificate, issuer: ParsedCertificate): Promise<boolean> {
    const request = ocspRequest(cert, issuer);
    const key = `${url}|${request.toString('base64')}`;
    const now = this.now().getTime();
    const hit = this.ocspByKey.get(key);
    if (hit && now < hit.until) return false;
    this.checkFailure(key, now);
    return this.once(`ocsp ${key}`, async () => {
      try {
        const body = await this.request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
          body: request,
        });
        let response: ParsedOcspResponse;
        try {
          response = ocspFrom(body, this.cache);
        } catch (e) {
          throw new FetchError(url, `not an OCSP response: ${message(e)}`);
        }
        if (response.responseStatus !== 0)
          throw new FetchError(
            url,
            `the OCSP responder answered ${OCSP_STATUS[response.responseStatus] ?? response.responseStatus}`,
          );
        const single = response.basic?.responses.find((s) => s.serial.equals(cert.serial));
        const until = single?.nextUpdate ? single.nextUpdate.getTime() : now + 5 * 60_000;
        this.ocspByKey.set(key, { response, until });
        return true;
      } catch (e) {
        this.remember(key, e);
        throw e;
      }
    });
  }

  private checkFailure(key: string, now: number): void {
    const f = this.failures.get(key);
    if (f && now < f.until) throw f.error;
  }

  private remember(key: string, e: unknown): void {
    const error = e instanceof FetchError ? e : new FetchError(key, message(e));
    this.failures.set(key, { until: this.now().getTime() + this.options.failureTtlMs, error });
  }

  /** One request per key at a time: concurrent callers share it. */
  private once<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** HTTP with a timeout, a size cap and http-only redirects. */
  private async request(
    url: string,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: Buffer },
  ): Promise<Buffer> {
    let current = checkedUrl(url, url);
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await this.fetchImpl(current, {
          method: init.method,
          headers: init.headers,
          ...(init.body ? { body: new Uint8Array(init.body) } : {}),
          redirect: 'manual',
          signal,
        });
      } catch (e) {
        const why =
          (e as Error).name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : message(e);
        throw new FetchError(url, `request failed: ${why}`);
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        const location = res.headers.get('location');
        if (!location) throw new FetchError(url, `HTTP ${res.status} without a Location`);
        if (hop >= this.options.maxRedirects) throw new FetchError(url, 'too many redirects');
        if (init.method === 'POST' && res.status !== 307 && res.status !== 308)
          throw new FetchError(url, `HTTP ${res.status} redirect of an OCSP request refused`);
        current = checkedUrl(new URL(location, current).toString(), url);
        continue;
      }
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new FetchError(url, `HTTP ${res.status}`);
      }
      const length = Number(res.headers.get('content-length') ?? Number.NaN);
      if (length > this.options.maxBytes) {
        await res.body?.cancel().catch(() => undefined);
        throw new FetchError(
          url,
          `response of ${length} bytes exceeds the limit of ${this.options.maxBytes}`,
        );
      }
      return readCapped(res, this.options.maxBytes, url);
    }
  }
}

const OCSP_STATUS: Record<number, string> = {
  1: 'malformedRequest',
  2: 'internalError',
  3: 'tryLater',
  5: 'sigRequired',
  6: 'unauthorized',
};

function checkedUrl(u: string, original: string): string {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new FetchError(original, `not a URL: ${u}`);
  }
  if (parsed.protocol !== 'http:')
    throw new FetchError(
      original,
      `only http URLs are fetched${u === original ? '' : ` (redirect to ${u} refused)`}`,
    );
  return parsed.toString();
}

async function readCapped(res: Response, max: number, url: string): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => undefined);
        throw new FetchError(url, `response exceeds the limit of ${max} bytes`);
      }
      chunks.push(Buffer.from(value));
    }
  } catch (e) {
    if (e instanceof FetchError) throw e;
    const why = (e as Error).name === 'TimeoutError' ? 'timed out while reading' : message(e);
    throw new FetchError(url, `reading the response failed: ${why}`);
  }
  return Buffer.concat(chunks, total);
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** http URIs of the fullName of distribution points. */
function urlsOf(dps: ParsedCertificate['crlDistributionPoints']): string[] {
  const out: string[] = [];
  for (const dp of dps ?? [])
    for (const g of dp.fullName ?? [])
      if (g.type === 'uniformResourceIdentifier' && g.value.startsWith('http://')) out.push(g.value);
  return out;
}

/** DER objects from DER or PEM input. */
export function derBlocks(data: Uint8Array, label: string): Buffer[] {
  // A view, not a copy: the parsers copy what they keep.
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.subarray(0, 1024).indexOf('-----BEGIN') === -1) return [buf];
  const blocks = decodePemAll(buf.toString('utf8'), label);
  if (blocks.length === 0) throw new PathParseError(`no ${label} PEM block found`);
  return blocks;
}

/** A DER OCSPRequest for one certificate (SHA-1 CertID, no nonce, so responses can be cached). */
export function ocspRequest(cert: ParsedCertificate, issuer: ParsedCertificate): Buffer {
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest();
  const certId = sequence(
    sequence(oid(OID.sha1), NULL),
    octetString(sha1(issuer.subject.der)),
    octetString(sha1(issuer.publicKey)),
    tlv(0x02, cert.serial),
  );
  return sequence(sequence(sequence(sequence(certId))));
}
