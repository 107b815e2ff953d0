// The verifier's caches and key import: entries are found by their exact bytes only, the LRU stays
// within its bound and keeps what is used, and the fast (JWK) key import loads exactly the keys
// OpenSSL's SPKI decoder loads and refuses what it refuses.

import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BytesLru, fingerprint, Lru } from '../../src/core/path/cache.ts';
import { importPublicKey } from '../../src/core/public-key.ts';

const SCALE = Number(process.env.JPKI_FUZZ_SCALE ?? 1);

describe('BytesLru', () => {
  it('finds an entry by equal bytes in another buffer, and never by a fingerprint alone', () => {
    const cache = new BytesLru<string>(100);
    const a = Buffer.alloc(1000, 7);
    cache.set(a, 'a');
    expect(cache.get(Buffer.from(a))).toBe('a');
    // 1000 bytes: 64 samples every 15 bytes plus the last 32; byte 1 is not sampled
    const b = Buffer.from(a);
    b[1] = 8;
    expect(fingerprint(b)).toBe(fingerprint(a));
    expect(cache.get(b)).toBeUndefined();
    cache.set(b, 'b');
    expect(cache.get(a)).toBe('a');
    expect(cache.get(b)).toBe('b');
    expect(cache.size).toBe(2);
  });

  it('keeps its own copy: changing the caller’s buffer afterwards does not change the key', () => {
    const cache = new BytesLru<number>(10);
    const a = Buffer.from('certificate bytes');
    cache.set(a, 1);
    const same = Buffer.from(a);
    a[0] = 0;
    expect(cache.get(same)).toBe(1);
    expect(cache.get(a)).toBeUndefined();
  });

  it('a bucket of colliding inputs holds a few and forgets the oldest', () => {
    const cache = new BytesLru<number>(100);
    const base = Buffer.alloc(1000, 1);
    const variants = [2, 3, 4, 5, 6, 7].map((v) => {
      const x = Buffer.from(base);
      x[1] = v;
      return x;
    });
    for (const [i, x] of variants.entries()) cache.set(x, i);
    expect(new Set(variants.map(fingerprint)).size).toBe(1);
    expect(cache.get(variants[0]!)).toBeUndefined();
    expect(cache.get(variants[5]!)).toBe(5);
    expect(cache.size).toBe(4);
  });

  it('random inputs: get returns what was set for equal bytes, nothing for others', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 30 }), (inputs) => {
        const cache = new BytesLru<number>(1000);
        const expected = new Map<string, number>();
        inputs.forEach((b, i) => {
          cache.set(b, i);
          expected.set(Buffer.from(b).toString('hex'), i);
        });
        for (const [hex, i] of expected) expect(cache.get(Buffer.from(hex, 'hex'))).toBe(i);
        expect(cache.get(Buffer.from('not set at all, longer than anything set here'.repeat(6)))).toBe(
          undefined,
        );
      }),
      { numRuns: 200 * SCALE },
    );
  });
});

describe('Lru', () => {
  it('stays within its limit and keeps entries that are used', () => {
    const lru = new Lru<number, number>(100);
    lru.set(-1, -1);
    for (let i = 0; i < 10_000; i++) {
      lru.set(i, i);
      expect(lru.get(-1)).toBe(-1); // used all the time: never forgotten
      expect(lru.size).toBeLessThanOrEqual(100);
    }
    expect(lru.get(0)).toBeUndefined(); // not used since: forgotten
    expect(lru.get(9_999)).toBe(9_999);
    expect([...lru.values()].length).toBe(lru.size);
  });
});

describe('importPublicKey', () => {
  const keys: KeyObject[] = [
    generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
    generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 3 }).publicKey,
    generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
    generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
    generateKeyPairSync('ed25519').publicKey,
  ];
  const spkis = keys.map((k) => k.export({ type: 'spki', format: 'der' }));
  const load = (f: () => KeyObject): Buffer | 'refused' => {
    try {
      return f().export({ type: 'spki', format: 'der' });
    } catch {
      return 'refused';
    }
  };

  it('loads the same key as the DER import', () => {
    for (const spki of spkis)
      expect(load(() => importPublicKey(spki))).toEqual(
        load(() => createPublicKey({ key: spki, format: 'der', type: 'spki' })),
      );
  });

  it('on mutated SPKIs, agrees with the DER import on every verdict and key', () => {
    const mutation = fc.record({
      at: fc.nat(),
      op: fc.constantFrom('flip', 'set', 'delete', 'insert', 'truncate'),
      value: fc.integer({ min: 0, max: 255 }),
    });
    fc.assert(
      fc.property(fc.nat(spkis.length - 1), fc.array(mutation, { minLength: 1, maxLength: 3 }), (k, ms) => {
        let b = Buffer.from(spkis[k]!);
        for (const m of ms) {
          if (b.length === 0) break;
          const at = m.at % b.length;
          if (m.op === 'flip') b[at]! ^= 1 << (m.value % 8);
          else if (m.op === 'set') b[at] = m.value;
          else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          else if (m.op === 'insert')
            b = Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
          else b = b.subarray(0, at);
        }
        expect(load(() => importPublicKey(b))).toEqual(
          load(() => createPublicKey({ key: b, format: 'der', type: 'spki' })),
        );
      }),
      { numRuns: 1500 * SCALE },
    );
  });
});
