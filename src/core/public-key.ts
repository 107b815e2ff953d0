// Public keys from a SubjectPublicKeyInfo (DER).
//
// OpenSSL 3's SPKI decoder costs ~90 µs a key, more than the RSA verification it is for. The two
// key types the profiles allow, in their one DER form (RSA; P-256 with an uncompressed point), are
// imported from their parts as a JWK instead (a few µs). "Canonical" means the SPKI is byte for byte
// the DER its parts encode to, so both imports load the same key; any other key or encoding goes
// through OpenSSL's decoder, which accepts or refuses it as it always did.

import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { bitString, NULL, oid, readChildren, readTlv, sequence, unsignedInteger } from './der.ts';
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
    const modulus = spki.subarray(n.contentStart, n.end);
    const exponent = spki.subarray(e.contentStart, e.end);
    // Negative or empty INTEGERs are not keys; re-encoding below catches every non-minimal form.
    if (modulus.length === 0 || exponent.length === 0 || modulus[0]! & 0x80 || exponent[0]! & 0x80)
      return undefined;
    const canonical = sequence(
      RSA_ALGORITHM,
      bitString(sequence(unsignedInteger(modulus), unsignedInteger(exponent))),
    );
    if (!canonical.equals(spki)) return undefined;
    const strip = (b: Buffer) => (b.length > 1 && b[0] === 0 ? b.subarray(1) : b);
    return { kty: 'RSA', n: strip(modulus).toString('base64url'), e: strip(exponent).toString('base64url') };
  } catch {
    return undefined; // malformed: OpenSSL's decoder decides and says why
  }
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
