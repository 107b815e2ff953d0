// Caches shared by validations: parsed objects by their DER, public keys by SPKI, signature checks by
// (signed object, key). A verifier that checks thousands of signatures a second against the same CAs
// and CRLs parses and verifies each of those once.

import type { KeyObject } from 'node:crypto';

/**
 * A bounded Map that forgets what has not been used for a while. Two generations: hits in the young
 * one cost one lookup (no reordering on every hit, which for a verifier's hot keys cost more than the
 * lookup); a hit in the old one moves the entry to the young one; when the young one is full it
 * becomes the old one and the old one is dropped. So it holds at most `limit` entries, and an entry
 * used once per `limit / 2` insertions is never forgotten.
 */
export class Lru<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;
  constructor(readonly limit: number) {
    this.half = Math.max(1, Math.floor(limit / 2));
  }

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.put(key, o);
    }
    return o;
  }

  set(key: K, value: V): void {
    this.old.delete(key);
    this.put(key, value);
  }

  private put(key: K, value: V): void {
    if (!this.young.has(key) && this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  *values(): IterableIterator<V> {
    yield* this.young.values();
    for (const [k, v] of this.old) if (!this.young.has(k)) yield v;
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/**
 * A bounded Map keyed by the bytes of a DER object. Finding an entry costs a fingerprint of ~100
 * sampled bytes and one comparison of the whole input with the stored copy (memcmp), not a
 * cryptographic hash of the input: on a verifier's hot path the same certificates arrive in fresh
 * buffers with every signature. Two inputs share an entry only when they are equal byte for byte;
 * inputs crafted to share a fingerprint only share a bucket, which holds a few entries and then
 * forgets its oldest.
 */
export class BytesLru<V> {
  private readonly buckets: Lru<number, { bytes: Buffer; value: V }[]>;
  constructor(readonly limit: number) {
    this.buckets = new Lru(limit);
  }

  get(bytes: Uint8Array): V | undefined {
    const bucket = this.buckets.get(fingerprint(bytes));
    if (!bucket) return undefined;
    for (const e of bucket) if (e.bytes.length === bytes.length && e.bytes.equals(bytes)) return e.value;
    return undefined;
  }

  /**
   * Stores `value` under a copy of `bytes` (the caller may reuse its buffer), or under `own`: a
   * buffer with the same bytes that nobody will modify (a parsed object's own copy of its DER).
   */
  set(bytes: Uint8Array, value: V, own?: Buffer): void {
    const key = fingerprint(bytes);
    const bucket = (this.buckets.get(key) ?? []).filter(
      (e) => !(e.bytes.length === bytes.length && e.bytes.equals(bytes)),
    );
    if (bucket.length >= BUCKET_LIMIT) bucket.shift();
    bucket.push({ bytes: own ?? Buffer.from(bytes), value });
    this.buckets.set(key, bucket);
  }

  /** Number of entries. */
  get size(): number {
    let n = 0;
    for (const bucket of this.buckets.values()) n += bucket.length;
    return n;
  }

  clear(): void {
    this.buckets.clear();
  }
}

const BUCKET_LIMIT = 4;

/**
 * A cheap 53-bit fingerprint: the length, 64 bytes sampled evenly over the input and its last 32
 * bytes (where a certificate's or a CRL's signature is), FNV-1a style.
 */
export function fingerprint(b: Uint8Array): number {
  const n = b.length;
  let h1 = 0x811c9dc5 ^ n;
  const step = n > 64 ? Math.floor(n / 64) : 1;
  for (let i = 0; i < n; i += step) h1 = Math.imul(h1 ^ b[i]!, 0x01000193);
  let h2 = 0x9747b28c ^ n;
  for (let i = n > 32 ? n - 32 : 0; i < n; i++) h2 = Math.imul(h2 ^ b[i]!, 0x01000193);
  return (h1 >>> 0) * 0x200000 + (h2 & 0x1fffff);
}

/** The outcome of verifying one object's signature with one key. */
export interface SignatureCheck {
  spkiHash: string;
  algorithm: string;
  ok: boolean;
}

export class PkiCache {
  /** Parsed certificates by their DER. */
  readonly certificates = new BytesLru<unknown>(20_000);
  /** Parsed CRLs by their DER (big ones are large: keep few). */
  readonly crls = new BytesLru<unknown>(64);
  /** Parsed OCSP responses by their DER. */
  readonly ocsp = new BytesLru<unknown>(20_000);
  /** node:crypto public keys by SHA-256 of the SPKI DER. */
  readonly keys = new Lru<string, KeyObject | null>(5_000);
  /**
   * Signature checks of certificates, CRLs and OCSP responses: by the signed object's DER hash, each
   * key (SPKI hash) and algorithm tried on it, and whether the signature verified.
   */
  readonly signatures = new Lru<string, SignatureCheck[]>(200_000);

  clear(): void {
    this.certificates.clear();
    this.crls.clear();
    this.ocsp.clear();
    this.keys.clear();
    this.signatures.clear();
  }
}

/** The process-wide cache used when a caller does not bring its own. */
export const defaultCache = new PkiCache();
