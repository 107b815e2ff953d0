// Pre-signed OCSP responses (docs/ocsp.md): the batch signer, the revocation's re-sign, and the
// responders' lookup with its in-memory cache and the revocation feed that keeps that cache honest.
//
// The store is the truth. A stored response is written by the batch signer only while the serial has
// no revocation (putOcspResponse is conditional), and replaced by the "revoked" response in the very
// transaction that records a revocation. The in-memory cache (PostgreSQL only; on SQLite the primary
// key lookup is as cheap as the cache) drops a serial as soon as the revocation feed names it: LISTEN
// on `jpki_revocations` (notified at commit), and a poll of the revocations above the highest id seen,
// per CA, as the fallback.

import { sql } from 'kysely';
import pg from 'pg';
import { NULL, octetString, oid, sequence, tlv } from '../core/der.ts';
import {
  buildBasicResponse,
  type CertStatus,
  createResponder,
  type IssuerHashes,
  type OcspCertId,
  type OcspResponder,
} from '../core/ocsp.ts';
import { OID } from '../core/oids.ts';
import type { CertificateKind } from '../core/profiles.ts';
import { serialHex } from '../core/serial.ts';
import type { Signer } from '../core/signer.ts';
import { SoftwareSigner } from '../keys/software.ts';
import {
  certificateStatus,
  countCertificates,
  type Db,
  deleteOcspResponse,
  maxRevocationId,
  type PresignCandidate,
  presignPage,
  putOcspResponse,
  type RevocationRow,
  revocationsAfter,
  type StoredOcspResponse,
  storedOcspResponse,
} from '../store/certificates.ts';
import type { Store } from '../store/db.ts';
import type { AuthorityConfig } from './config.ts';

/** The PostgreSQL channel a revocation notifies at commit; the payload is the CA. */
export const REVOCATION_CHANNEL = 'jpki_revocations';

/** A stored response is served only while at least this much of its validity is left. */
const MIN_REMAINING_MS = 60_000;

export interface OcspIssuer {
  id: CertificateKind;
  hashes: IssuerHashes;
  /** Signs on the calling thread. */
  responder: OcspResponder;
  /** The same key signing on the libuv thread pool when it can (software keys): for batches. */
  batchResponder: OcspResponder;
}

/** Makes the OcspIssuer of an issuing CA from its delegated responder. */
export function ocspIssuer(id: CertificateKind, hashes: IssuerHashes, responder: OcspResponder): OcspIssuer {
  const signer = responder.signer;
  const offThread: Signer | undefined =
    signer instanceof SoftwareSigner
      ? {
          algorithm: signer.algorithm,
          publicKeySpki: signer.publicKeySpki,
          sign: (data) => signer.signOffThread(data),
        }
      : undefined;
  return {
    id,
    hashes,
    responder,
    batchResponder: offThread ? createResponder(offThread, responder.certDer) : responder,
  };
}

export interface PresignSettings {
  /** nextUpdate - thisUpdate of a pre-signed response. */
  validityMs: number;
  /** A stored response is signed again when less than this is left of it. */
  marginMs: number;
}

/** authority.json `ocsp.presignValidityHours` (default 24) and `ocsp.presignMarginHours` (default 8). */
export function presignSettings(config: AuthorityConfig): PresignSettings {
  const o = config.ocsp as AuthorityConfig['ocsp'] & {
    presignValidityHours?: number;
    presignMarginHours?: number;
  };
  const validity = o.presignValidityHours ?? 24;
  const margin = o.presignMarginHours ?? 8;
  if (!(validity > 0) || !(margin > 0) || margin >= validity)
    throw new RangeError(
      'authority.json: ocsp.presignValidityHours and presignMarginHours must be positive, the margin below the validity',
    );
  return { validityMs: validity * 3600_000, marginMs: margin * 3600_000 };
}

/** What a response says, as stored in ocsp_responses.status_key. */
export function statusKeyOf(s: CertStatus): string {
  return s.status === 'revoked' ? `r${s.revokedAt.getTime()}:${s.reason ?? 0}` : s.status;
}

/**
 * The CertID a pre-signed response answers: SHA-1 (RFC 5019 clients, openssl among them, send it),
 * hash parameters NULL, the serial as stored. A request is answered from the store only when its CertID
 * is exactly these bytes, since the response echoes the CertID.
 */
export function presignedCertId(hashes: IssuerHashes, serial: Buffer): OcspCertId {
  const der = sequence(
    SHA1_WITH_NULL,
    octetString(hashes.sha1.name),
    octetString(hashes.sha1.key),
    tlv(0x02, serial),
  );
  return {
    hashAlgorithm: 'sha1',
    issuerNameHash: hashes.sha1.name,
    issuerKeyHash: hashes.sha1.key,
    serial,
    der,
  };
}
const SHA1_WITH_NULL = sequence(oid(OID.sha1), NULL);

/** The CertID content before the serial (algorithm and both hashes), per issuer. */
const certIdPrefixes = new WeakMap<IssuerHashes, Buffer>();

/**
 * Whether `certId` is byte for byte presignedCertId(hashes, its serial): compared in place on the hot
 * path rather than building the expected DER for every request.
 */
export function isPresignedCertId(hashes: IssuerHashes, certId: OcspCertId): boolean {
  if (certId.hashAlgorithm !== 'sha1') return false;
  let prefix = certIdPrefixes.get(hashes);
  if (!prefix) {
    prefix = Buffer.concat([SHA1_WITH_NULL, octetString(hashes.sha1.name), octetString(hashes.sha1.key)]);
    certIdPrefixes.set(hashes, prefix);
  }
  const { der, serial } = certId;
  const content = prefix.length + 2 + serial.length;
  // Long-form lengths (serials far beyond RFC 5280's 20 octets): the slow, general comparison.
  if (content >= 0x80 || serial.length >= 0x80) return der.equals(presignedCertId(hashes, serial).der);
  const at = 2 + prefix.length;
  return (
    der.length === 2 + content &&
    der[0] === 0x30 &&
    der[1] === content &&
    der.compare(prefix, 0, prefix.length, 2, at) === 0 &&
    der[at] === 0x02 &&
    der[at + 1] === serial.length &&
    der.compare(serial, 0, serial.length, at + 2) === 0
  );
}

// ---------------------------------------------------------------------------------------------
// The in-memory cache

interface CachedResponse extends StoredOcspResponse {
  bytes: number;
}

/** An LRU of stored responses by serial, bounded in bytes. */
class ResponseCache {
  readonly #map = new Map<string, CachedResponse>();
  #bytes = 0;
  /** Bumped by every eviction for a revocation: a fill that started before one is not kept. */
  generation = 0;
  constructor(readonly maxBytes: number) {}

  get(serial: string): CachedResponse | undefined {
    const hit = this.#map.get(serial);
    if (hit) {
      // most recently used last
      this.#map.delete(serial);
      this.#map.set(serial, hit);
    }
    return hit;
  }

  set(serial: string, r: StoredOcspResponse): void {
    const bytes = r.der.length + serial.length * 2 + 120;
    this.remove(serial);
    this.#map.set(serial, { ...r, bytes });
    this.#bytes += bytes;
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#map.keys().next().value;
      if (oldest === undefined) break;
      this.remove(oldest);
    }
  }

  evict(serial: string): void {
    this.generation++;
    this.remove(serial);
  }

  clear(): void {
    this.generation++;
    this.#map.clear();
    this.#bytes = 0;
  }

  get size(): number {
    return this.#map.size;
  }

  private remove(serial: string): void {
    const old = this.#map.get(serial);
    if (!old) return;
    this.#map.delete(serial);
    this.#bytes -= old.bytes;
  }
}

// ---------------------------------------------------------------------------------------------

export interface OcspResponsesOptions {
  now: () => Date;
  settings: PresignSettings;
  /** For LISTEN on PostgreSQL; without it, only polling. */
  databaseUrl?: string;
  /** Keep stored responses in memory. Default: on PostgreSQL, off on SQLite. */
  memoryCache?: boolean;
  /** Bytes of responses kept in memory (default JPKI_OCSP_CACHE_MB or 256 MB). */
  cacheBytes?: number;
  /** The revocation feed's polling period (default 1 s). */
  pollMs?: number;
  onError?: (err: unknown) => void;
}

export interface PresignOptions {
  /** Certificates read per page (default 1,000). */
  batchSize?: number;
  /** Signatures in flight at once (default 8). */
  concurrency?: number;
  /** Count the certificates first, for a progress total. */
  total?: boolean;
  onProgress?: (p: PresignProgress) => void;
  signal?: AbortSignal;
}

export interface PresignProgress {
  examined: number;
  total?: number;
  signed: number;
}

export interface PresignResult {
  examined: number;
  signed: number;
  good: number;
  revoked: number;
  /** Good responses not stored because the certificate was revoked meanwhile. */
  superseded: number;
  seconds: number;
}

export interface FeedStats {
  /** Revocations seen by the feed. */
  evictions: number;
  notifications: number;
  polls: number;
  listening: boolean;
}

/**
 * The pre-signed responses of one authority: lookup for the responder, re-sign on revocation, batch
 * signing, and the revocation feed of the memory cache.
 */
export class OcspResponses {
  readonly #store: Store;
  readonly #issuers: Record<CertificateKind, OcspIssuer>;
  readonly #opts: OcspResponsesOptions;
  readonly #cache: ResponseCache | undefined;
  /** Serials being revoked in this process (not yet committed, or not yet seen by the feed): not cached. */
  readonly #revoking = new Map<string, number>();
  readonly #pollMs: number;
  readonly #hwm = new Map<string, number>();
  #feed: Promise<void> | undefined;
  #feedReady = false;
  #lastPoll = 0;
  #polling: Promise<void> | undefined;
  #pollAgain = false;
  #timer: NodeJS.Timeout | undefined;
  #listener: pg.Client | undefined;
  #stopped = false;
  readonly stats: FeedStats = { evictions: 0, notifications: 0, polls: 0, listening: false };

  constructor(store: Store, issuers: Record<CertificateKind, OcspIssuer>, opts: OcspResponsesOptions) {
    this.#store = store;
    this.#issuers = issuers;
    this.#opts = opts;
    this.#pollMs = opts.pollMs ?? 1000;
    const memory = opts.memoryCache ?? store.dialect === 'postgres';
    const mb = Number(process.env.JPKI_OCSP_CACHE_MB);
    const bytes = opts.cacheBytes ?? (mb > 0 ? mb * 1024 * 1024 : 256 * 1024 * 1024);
    this.#cache = memory ? new ResponseCache(bytes) : undefined;
  }

  get settings(): PresignSettings {
    return this.#opts.settings;
  }

  /** Responses held in memory. */
  get cached(): number {
    return this.#cache?.size ?? 0;
  }

  /**
   * The stored response answering `certId` of issuing CA `ca`, if there is one that is fresh;
   * undefined means: sign on demand.
   */
  async lookup(
    ca: CertificateKind,
    certId: OcspCertId,
    nowMs: number,
  ): Promise<StoredOcspResponse | undefined> {
    if (certId.hashAlgorithm !== 'sha1') return undefined;
    if (!isPresignedCertId(this.#issuers[ca].hashes, certId)) return undefined;
    const serial = serialHex(certId.serial);
    const cache = this.#cacheInUse(serial);
    if (cache) {
      const hit = cache.get(serial);
      if (hit && hit.nextUpdate - nowMs > MIN_REMAINING_MS) return hit;
    }
    const generation = cache?.generation;
    const row = await storedOcspResponse(this.#store.db, serial);
    if (!row || row.ca !== ca || row.nextUpdate - nowMs <= MIN_REMAINING_MS) return undefined;
    // Kept only if no revocation was seen while the row was being read (it may predate it).
    if (cache && cache.generation === generation && this.#cacheInUse(serial)) cache.set(serial, row);
    return row;
  }

  #cacheInUse(serial: string): ResponseCache | undefined {
    const cache = this.#cache;
    if (!cache || this.#stopped) return undefined;
    if (!this.#feedReady) {
      this.#feed ??= this.#startFeed().catch((err) => {
        this.#feed = undefined;
        this.#opts.onError?.(err);
      });
      return undefined;
    }
    // A feed that has not answered for 3 periods: read the store instead.
    if (Date.now() - this.#lastPoll > 3 * this.#pollMs) return undefined;
    const until = this.#revoking.get(serial);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.#revoking.delete(serial);
    }
    return cache;
  }

  /** Called before a revocation is written: the serial leaves the cache and stays out of it until it is settled. */
  beginRevocation(serial: string): void {
    this.#cache?.evict(serial);
    // Settled by endRevocation, by the feed seeing it, or after a minute (a caller's transaction rolled back).
    this.#revoking.set(serial, Date.now() + 60_000);
  }

  /** The revocation's transaction has committed (or failed). */
  endRevocation(serial: string): void {
    this.#cache?.evict(serial);
    this.#revoking.delete(serial);
  }

  /**
   * In the transaction that recorded `revocation`: signs the "revoked" response and stores it in place
   * of the stored one; if signing fails, deletes the stored one (the responders then sign on demand
   * from the revocation row). On PostgreSQL, notifies the responders at commit.
   */
  async revokedInTransaction(trx: Db, revocation: RevocationRow): Promise<void> {
    const issuer = this.#issuers[revocation.ca as CertificateKind];
    if (issuer) {
      try {
        const der = await this.#sign(
          issuer,
          revocation.serial,
          {
            status: 'revoked',
            revokedAt: new Date(revocation.revoked_at),
            reason: revocation.reason || undefined,
          },
          this.#opts.now(),
        );
        await putOcspResponse(trx, der);
      } catch (err) {
        this.#opts.onError?.(err);
        await deleteOcspResponse(trx, revocation.serial);
      }
    }
    if (this.#store.dialect === 'postgres')
      await sql`select pg_notify(${REVOCATION_CHANNEL}, ${revocation.ca})`.execute(trx);
  }

  async #sign(issuer: OcspIssuer, serial: string, status: CertStatus, now: Date, validityMs?: number) {
    const producedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const nextUpdate = new Date(producedAt.getTime() + (validityMs ?? this.#opts.settings.validityMs));
    const der = await buildBasicResponse(
      issuer.batchResponder,
      [
        {
          certId: presignedCertId(issuer.hashes, Buffer.from(serial, 'hex')),
          status,
          thisUpdate: producedAt,
          nextUpdate,
        },
      ],
      { producedAt },
    );
    return {
      serial,
      ca: issuer.id,
      der,
      this_update: producedAt.getTime(),
      next_update: nextUpdate.getTime(),
      status_key: statusKeyOf(status),
    };
  }

  /**
   * Signs a response for every unexpired certificate whose stored response is missing or has less
   * than the refresh margin left, a page of certificates at a time, with `concurrency` signatures in
   * flight (on the thread pool with software keys). Each page is written in one transaction while
   * the next is signed.
   */
  async presign(o: PresignOptions = {}): Promise<PresignResult> {
    const started = performance.now();
    const batchSize = o.batchSize ?? 1000;
    const concurrency = o.concurrency ?? 8;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1)
      throw new RangeError(`bad batch size ${batchSize}`);
    if (!Number.isSafeInteger(concurrency) || concurrency < 1)
      throw new RangeError(`bad concurrency ${concurrency}`);
    const db = this.#store.db;
    const total = o.total ? await countCertificates(db) : undefined;
    const now = this.#opts.now();
    const staleBefore = now.getTime() + this.#opts.settings.marginMs;
    const result: PresignResult = { examined: 0, signed: 0, good: 0, revoked: 0, superseded: 0, seconds: 0 };
    let after = '';
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      if (o.signal?.aborted) break;
      const page = await presignPage(db, {
        afterSerial: after,
        limit: batchSize,
        notAfterFrom: now.getTime(),
      });
      if (page.lastSerial === undefined) break;
      after = page.lastSerial;
      const todo = page.candidates.filter(
        (c) =>
          Object.hasOwn(this.#issuers, c.ca) &&
          (c.storedNextUpdate === undefined || c.storedNextUpdate < staleBefore),
      );
      const rows = await mapConcurrently(todo, concurrency, (c: PresignCandidate) =>
        this.#sign(this.#issuers[c.ca as CertificateKind], c.serial, candidateStatus(c), now),
      );
      await writing;
      const examined = page.candidates.length;
      writing = (async () => {
        if (rows.length > 0)
          await db.transaction().execute(async (trx) => {
            for (const row of rows) {
              const written = await putOcspResponse(trx, row);
              if (row.status_key === 'good') {
                if (written) result.good++;
                else result.superseded++;
              } else result.revoked++;
            }
          });
        result.examined += examined;
        result.signed += rows.length;
        o.onProgress?.({ examined: result.examined, total, signed: result.signed });
      })();
      // Written before the next page is read, so a failed write stops the batch here.
      writing.catch(() => undefined);
    }
    await writing;
    result.seconds = (performance.now() - started) / 1000;
    return result;
  }

  /**
   * Signs and stores the responses of the named certificates only (unknown or expired serials are
   * skipped), whatever their stored response: for an operator who needs some answers now, and for
   * benchmarks that ask for a sample of a population too large to pre-sign in the time.
   */
  async presignSerials(serials: readonly string[], o: { concurrency?: number } = {}): Promise<PresignResult> {
    const started = performance.now();
    const db = this.#store.db;
    const now = this.#opts.now();
    const result: PresignResult = { examined: 0, signed: 0, good: 0, revoked: 0, superseded: 0, seconds: 0 };
    for (let i = 0; i < serials.length; i += 1000) {
      const page = serials.slice(i, i + 1000);
      const found = await Promise.all(page.map((serial) => certificateStatus(db, serial)));
      const todo: PresignCandidate[] = [];
      page.forEach((serial, j) => {
        const c = found[j];
        if (c && c.notAfter >= now.getTime() && Object.hasOwn(this.#issuers, c.ca))
          todo.push({ serial, ca: c.ca, notAfter: c.notAfter, revocation: c.revocation });
      });
      const rows = await mapConcurrently(todo, o.concurrency ?? 8, (c) =>
        this.#sign(this.#issuers[c.ca as CertificateKind], c.serial, candidateStatus(c), now),
      );
      await db.transaction().execute(async (trx) => {
        for (const row of rows) {
          const written = await putOcspResponse(trx, row);
          if (row.status_key !== 'good') result.revoked++;
          else if (written) result.good++;
          else result.superseded++;
        }
      });
      result.examined += page.length;
      result.signed += rows.length;
    }
    result.seconds = (performance.now() - started) / 1000;
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // The revocation feed

  async #startFeed(): Promise<void> {
    const db = this.#store.db;
    for (const ca of Object.keys(this.#issuers)) this.#hwm.set(ca, await maxRevocationId(db, ca));
    if (this.#stopped) return;
    if (this.#opts.databaseUrl) {
      try {
        await this.#listen(this.#opts.databaseUrl);
      } catch (err) {
        this.#opts.onError?.(err); // polling still works
      }
    }
    this.#lastPoll = Date.now();
    this.#timer = setInterval(() => {
      void this.poll();
    }, this.#pollMs);
    this.#timer.unref();
    // Anything revoked between the high-water marks and LISTEN is caught by this first poll.
    await this.poll();
    this.#feedReady = true;
  }

  async #listen(url: string): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    client.on('error', (err) => {
      this.stats.listening = false;
      this.#listener = undefined;
      this.#opts.onError?.(err);
    });
    client.on('notification', () => {
      this.stats.notifications++;
      void this.poll();
    });
    await client.connect();
    await client.query(`listen ${REVOCATION_CHANNEL}`);
    if (this.#stopped) {
      await client.end();
      return;
    }
    this.#listener = client;
    this.stats.listening = true;
  }

  /** Reads the revocations above the high-water marks and evicts their serials. */
  poll(): Promise<void> {
    if (this.#polling) {
      this.#pollAgain = true;
      return this.#polling;
    }
    this.#polling = (async () => {
      try {
        do {
          this.#pollAgain = false;
          const startedAt = Date.now();
          for (const [ca, hwm] of this.#hwm) {
            let after = hwm;
            for (;;) {
              const rows = await revocationsAfter(this.#store.db, ca, after, 10_000);
              for (const r of rows) {
                this.#cache?.evict(r.serial);
                this.#revoking.delete(r.serial);
                this.stats.evictions++;
              }
              if (rows.length > 0) after = rows[rows.length - 1]!.id;
              if (rows.length < 10_000) break;
            }
            this.#hwm.set(ca, after);
          }
          this.stats.polls++;
          this.#lastPoll = startedAt;
        } while (this.#pollAgain && !this.#stopped);
      } catch (err) {
        this.#opts.onError?.(err);
      } finally {
        this.#polling = undefined;
      }
    })();
    return this.#polling;
  }

  /** Stops the feed (and closes its LISTEN connection). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#feed?.catch(() => undefined);
    await this.#polling?.catch(() => undefined);
    const l = this.#listener;
    this.#listener = undefined;
    await l?.end().catch(() => undefined);
    this.#cache?.clear();
  }
}

function candidateStatus(c: Pick<PresignCandidate, 'revocation'>): CertStatus {
  return c.revocation
    ? {
        status: 'revoked',
        revokedAt: new Date(c.revocation.revokedAt),
        reason: c.revocation.reason || undefined,
      }
    : { status: 'good' };
}

/** Maps with at most `limit` calls in flight, results in input order. */
async function mapConcurrently<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
