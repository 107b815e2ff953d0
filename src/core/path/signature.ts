// Signature verification with node:crypto for certificates, CRLs and OCSP responses.

import { constants, createHash, type KeyObject, verify } from 'node:crypto';
import { importPublicKey } from '../public-key.ts';
import {
  type AlgorithmId,
  algorithm,
  expectTag,
  kids,
  node,
  oidOf,
  PathParseError,
  smallInt,
} from './asn1.ts';
import type { PkiCache } from './cache.ts';
import { PKIX } from './oids.ts';

type Kind = 'rsa' | 'rsa-pss' | 'ecdsa' | 'dsa' | 'eddsa';

const ALGORITHMS: ReadonlyMap<string, { kind: Kind; hash: string | null; name: string }> = new Map([
  ['1.2.840.113549.1.1.5', { kind: 'rsa', hash: 'sha1', name: 'sha1WithRSAEncryption' }],
  ['1.3.14.3.2.29', { kind: 'rsa', hash: 'sha1', name: 'sha1WithRSAEncryption (OIW)' }],
  ['1.2.840.113549.1.1.14', { kind: 'rsa', hash: 'sha224', name: 'sha224WithRSAEncryption' }],
  ['1.2.840.113549.1.1.11', { kind: 'rsa', hash: 'sha256', name: 'sha256WithRSAEncryption' }],
  ['1.2.840.113549.1.1.12', { kind: 'rsa', hash: 'sha384', name: 'sha384WithRSAEncryption' }],
  ['1.2.840.113549.1.1.13', { kind: 'rsa', hash: 'sha512', name: 'sha512WithRSAEncryption' }],
  [PKIX.rsassaPss, { kind: 'rsa-pss', hash: null, name: 'RSASSA-PSS' }],
  ['1.2.840.10045.4.1', { kind: 'ecdsa', hash: 'sha1', name: 'ecdsa-with-SHA1' }],
  ['1.2.840.10045.4.3.1', { kind: 'ecdsa', hash: 'sha224', name: 'ecdsa-with-SHA224' }],
  ['1.2.840.10045.4.3.2', { kind: 'ecdsa', hash: 'sha256', name: 'ecdsa-with-SHA256' }],
  ['1.2.840.10045.4.3.3', { kind: 'ecdsa', hash: 'sha384', name: 'ecdsa-with-SHA384' }],
  ['1.2.840.10045.4.3.4', { kind: 'ecdsa', hash: 'sha512', name: 'ecdsa-with-SHA512' }],
  ['1.2.840.10040.4.3', { kind: 'dsa', hash: 'sha1', name: 'dsa-with-sha1' }],
  ['2.16.840.1.101.3.4.3.1', { kind: 'dsa', hash: 'sha224', name: 'dsa-with-sha224' }],
  ['2.16.840.1.101.3.4.3.2', { kind: 'dsa', hash: 'sha256', name: 'dsa-with-sha256' }],
  [PKIX.ed25519, { kind: 'eddsa', hash: null, name: 'Ed25519' }],
  [PKIX.ed448, { kind: 'eddsa', hash: null, name: 'Ed448' }],
]);

const HASH_OIDS: ReadonlyMap<string, string> = new Map([
  ['1.3.14.3.2.26', 'sha1'],
  ['2.16.840.1.101.3.4.2.4', 'sha224'],
  ['2.16.840.1.101.3.4.2.1', 'sha256'],
  ['2.16.840.1.101.3.4.2.2', 'sha384'],
  ['2.16.840.1.101.3.4.2.3', 'sha512'],
]);

const KEY_KINDS: Record<Kind, readonly string[]> = {
  rsa: ['rsa'],
  'rsa-pss': ['rsa', 'rsa-pss'],
  ecdsa: ['ec'],
  dsa: ['dsa'],
  eddsa: ['ed25519', 'ed448'],
};

export const algorithmName = (alg: AlgorithmId): string => ALGORITHMS.get(alg.oid)?.name ?? alg.oid;

export interface VerifyResult {
  ok: boolean;
  /** Why it failed, when it did. */
  reason?: string;
}

/** The node:crypto key for an SPKI, or null if node cannot load it (cached either way). */
export function publicKey(spki: Buffer, spkiHash: string, cache: PkiCache): KeyObject | null {
  const hit = cache.keys.get(spkiHash);
  if (hit !== undefined) return hit;
  let key: KeyObject | null;
  try {
    key = importPublicKey(spki);
  } catch {
    key = null;
  }
  cache.keys.set(spkiHash, key);
  return key;
}

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Verifies `signature` over `data` with the key in `spki` under `alg`. `objectHash` identifies the
 * signed object (its DER hash): results are cached under (objectHash, SPKI hash).
 */
export function verifySignature(
  alg: AlgorithmId,
  spki: Buffer,
  spkiHash: string,
  data: Buffer,
  signature: Buffer,
  objectHash: string,
  cache: PkiCache,
): VerifyResult {
  const info = ALGORITHMS.get(alg.oid);
  if (!info) return { ok: false, reason: `unsupported signature algorithm ${alg.oid}` };
  // The hashes and OIDs come from parsed (cached) objects: the same string instances every time,
  // whose hashes V8 keeps, so this is two cheap lookups.
  let checks = cache.signatures.get(objectHash);
  const hit = checks?.find((c) => c.spkiHash === spkiHash && c.algorithm === alg.oid);
  if (hit) return hit.ok ? { ok: true } : { ok: false, reason: 'the signature does not verify' };
  const key = publicKey(spki, spkiHash, cache);
  if (!key) return { ok: false, reason: 'the issuer public key cannot be loaded' };
  if (!KEY_KINDS[info.kind].includes(key.asymmetricKeyType ?? ''))
    return {
      ok: false,
      reason: `a ${key.asymmetricKeyType} key cannot verify a ${info.name} signature`,
    };
  let ok = false;
  try {
    switch (info.kind) {
      case 'rsa':
        if (alg.params && !(alg.params.length === 2 && alg.params[0] === 0x05 && alg.params[1] === 0))
          return { ok: false, reason: `${info.name} with parameters other than NULL` };
        ok = verify(info.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
        break;
      case 'rsa-pss': {
        const pss = pssParams(alg.params);
        ok = verify(
          pss.hash,
          data,
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength },
          signature,
        );
        break;
      }
      case 'ecdsa':
      case 'dsa':
        if (alg.params) return { ok: false, reason: `${info.name} with parameters` };
        ok = verify(info.hash, data, { key, dsaEncoding: 'der' }, signature);
        break;
      case 'eddsa':
        ok = verify(null, data, key, signature);
        break;
    }
  } catch (e) {
    if (e instanceof PathParseError) return { ok: false, reason: e.message };
    ok = false;
  }
  if (!checks) {
    checks = [];
    cache.signatures.set(objectHash, checks);
  }
  // A crafted input can name many keys for one object: keep a bounded few.
  if (checks.length >= 8) checks.shift();
  checks.push({ spkiHash, algorithm: alg.oid, ok });
  return ok ? { ok: true } : { ok: false, reason: 'the signature does not verify' };
}

/** RSASSA-PSS-params (RFC 4055): hash, MGF1 with the same hash, salt length, trailer 1. */
function pssParams(params: Buffer | undefined): { hash: string; saltLength: number } {
  let hash = 'sha1';
  let mgfHash = 'sha1';
  let saltLength = 20;
  if (!params) throw new PathParseError('RSASSA-PSS without parameters');
  const top = node(params, 0);
  expectTag(top, 0x30, 'RSASSA-PSS-params');
  for (const k of kids(params, top)) {
    const [inner] = kids(params, k);
    if (!inner) throw new PathParseError('malformed RSASSA-PSS-params');
    if (k.tag === 0xa0) {
      const h = HASH_OIDS.get(algorithm(params, inner).oid);
      if (!h) throw new PathParseError('unsupported RSASSA-PSS hash');
      hash = h;
    } else if (k.tag === 0xa1) {
      const mgf = algorithm(params, inner);
      if (mgf.oid !== PKIX.mgf1 || !mgf.params)
        throw new PathParseError('unsupported RSASSA-PSS mask generation');
      const h = HASH_OIDS.get(oidOf(mgf.params, kids(mgf.params, node(mgf.params, 0))[0]!));
      if (!h) throw new PathParseError('unsupported MGF1 hash');
      mgfHash = h;
    } else if (k.tag === 0xa2) saltLength = smallInt(params, inner);
    else if (k.tag === 0xa3) {
      if (smallInt(params, inner) !== 1) throw new PathParseError('unsupported RSASSA-PSS trailer field');
    } else throw new PathParseError('malformed RSASSA-PSS-params');
  }
  if (mgfHash !== hash) throw new PathParseError('RSASSA-PSS with an MGF1 hash other than the message hash');
  return { hash, saltLength };
}

/**
 * DSA parameter inheritance (RFC 5280 6.1.4 (e)-(f)): a DSA key without parameters takes its
 * issuer's. Returns the SPKI with the parameters filled in.
 */
export function spkiWithParameters(spki: Buffer, params: Buffer): Buffer {
  const top = node(spki, 0);
  const [alg, key] = kids(spki, top);
  const algKids = kids(spki, alg!);
  const oidTlv = spki.subarray(algKids[0]!.start, algKids[0]!.end);
  const algBody = Buffer.concat([oidTlv, params]);
  const algDer = Buffer.concat([lengthHeader(0x30, algBody.length), algBody]);
  const body = Buffer.concat([algDer, spki.subarray(key!.start, key!.end)]);
  return Buffer.concat([lengthHeader(0x30, body.length), body]);
}

function lengthHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const b: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) b.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | b.length, ...b]);
}
