// Caches shared by validations: parsed objects by DER hash, public keys by SPKI, signature checks by
// (signed object, key). A verifier that checks thousands of signatures a second against the same CAs
// and CRLs parses and verifies each of those once.

import type { KeyObject } from 'node:crypto';

/** A Map that forgets its least recently used entries beyond `limit`. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(readonly limit: number) {}

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as K);
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }
}

export class PkiCache {
  /** Parsed certificates by SHA-256 of their DER. */
  readonly certificates = new Lru<string, unknown>(20_000);
  /** Parsed CRLs by SHA-256 of their DER (big ones are large: keep few). */
  readonly crls = new Lru<string, unknown>(64);
  /** Parsed OCSP responses by SHA-256 of their DER. */
  readonly ocsp = new Lru<string, unknown>(20_000);
  /** node:crypto public keys by SHA-256 of the SPKI DER. */
  readonly keys = new Lru<string, KeyObject | null>(5_000);
  /** Signature checks: `${signed object hash}:${spki hash}` → whether the signature verified. */
  readonly signatures = new Lru<string, boolean>(200_000);

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
