// Public keys from a SubjectPublicKeyInfo (DER).
//
// OpenSSL 3's SPKI decoder costs ~90 µs a key, more than the RSA verification it is for. The two
// key types the profiles allow, in their one DER form (RSA; P-256 with an uncompressed point), are
// imported from their parts as a JWK instead (a few µs). "Canonical" means the SPKI is byte for byte
// the DER its parts encode to, so both imports load the same key; any other key or encoding goes
// through OpenSSL's decoder, which accepts or refuses it as it always did.

import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { NULL, oid, readChildren, readTlv, sequence, type Tlv } from './der.ts';
import { OID } from './oids.ts';

const RSA_ALGORITHM = sequence(oid(OID.rsaEncryption), NULL);
/** SubjectPublicKeyInfo of a P-256 key up to the point: SEQUENCE, AlgorithmIdentifier, BIT STRING header. */
const P256_PREFIX = Buffer.concat([
  Buffer.from([0x30, 0x59]),
  sequence(oid(OID.ecPublicKey), oid(OID.prime256v1)),
  Buffer.from([0x03, 0x42, 0x00]),
]);

/** The JWK of an RSA or P-256 key whose SPKI is canonical DER; undefined for anything else. */
export function canonicalJwk(spki: Buffer): JsonWebKey | undefined {
  if (spki.length === P256_PREFIX.length + 65) {
    if (spki[P256_PREFIX.length] !== 0x04 || !spki.subarray(0, P256_PREFIX.length).equals(P256_PREFIX))
      return undefined;
    const x = spki.subarray(P256_PREFIX.length + 1, P256_PREFIX.length + 33);
    const y = spki.subarray(P256_PREFIX.length + 33);
    return { kty: 'EC', crv: 'P-256', x: x.toString('base64url'), y: y.toString('base64url') };
  }
  try {
    const top = readTlv(spki, 0);
    const [alg, bits, extra] = readChildren(spki, top);
    if (top.tag !== 0x30 || top.end !== spki.length || alg?.tag !== 0x30 || bits?.tag !== 0x03 || extra)
      return undefined;
    if (!spki.subarray(alg.start, alg.end).equals(RSA_ALGORITHM) || spki[bits.contentStart] !== 0)
      return undefined;
    const rsaKey = readTlv(spki, bits.contentStart + 1);
    const [n, e, more] = readChildren(spki, rsaKey);
    if (rsaKey.tag !== 0x30 || rsaKey.end !== bits.end || n?.tag !== 0x02 || e?.tag !== 0x02 || more)
      return undefined;
    // DER: every length minimal, both INTEGERs minimal and positive. Then the SPKI is the one
    // encoding of its key, which is what OpenSSL's decoder would accept and re-encode identically.
    for (const t of [top, alg, bits, rsaKey, n, e]) if (!minimalLength(spki, t)) return undefined;
    const modulus = spki.subarray(n.contentStart, n.end);
    const exponent = spki.subarray(e.contentStart, e.end);
    if (!minimalPositive(modulus) || !minimalPositive(exponent)) return undefined;
    const magnitude = modulus[0] === 0 ? modulus.subarray(1) : modulus;
    return { kty: 'RSA', n: magnitude.toString('base64url'), e: exponent.toString('base64url') };
  } catch {
    return undefined; // malformed: OpenSSL's decoder decides and says why
  }
}

function minimalLength(buf: Buffer, t: Tlv): boolean {
  const length = t.end - t.contentStart;
  const lengthOctets =
    length < 0x80 ? 0 : length < 0x100 ? 1 : length < 0x10000 ? 2 : length < 0x1000000 ? 3 : 4;
  return t.contentStart - t.start === 2 + lengthOctets && (lengthOctets === 0 || buf[t.start + 2] !== 0);
}

/** The content octets of a positive INTEGER in minimal form. */
function minimalPositive(c: Buffer): boolean {
  if (c.length === 0 || c[0]! & 0x80) return false;
  return !(c.length > 1 && c[0] === 0 && !(c[1]! & 0x80));
}

/** A node:crypto public key from an SPKI. Throws what createPublicKey throws. */
export function importPublicKey(spki: Buffer): KeyObject {
  const jwk = canonicalJwk(spki);
  if (jwk) {
    try {
      return createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      // e.g. a point off the curve: OpenSSL's decoder refuses it with its own message
    }
  }
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}
