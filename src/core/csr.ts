import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { readChildren, readTlv, slice } from './der.ts';
import { OID } from './oids.ts';
import { decodePem } from './pem.ts';

export class CsrError extends Error {
  override name = 'CsrError';
}

/** Largest request accepted: a PKCS#10 request for an RSA-4096 key is about 1.7 KB. */
export const MAX_CSR_BYTES = 16 * 1024;

export interface VerifiedCsr {
  /** SubjectPublicKeyInfo, DER, exactly as in the request. */
  spki: Buffer;
  publicKey: KeyObject;
}

const SIGNATURE_HASHES: Record<string, { hash: string; keyType: 'rsa' | 'ec' }> = {
  [OID.sha256WithRSAEncryption]: { hash: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa' },
  [OID.ecdsaWithSHA256]: { hash: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec' },
};

/**
 * Parses a PKCS#10 request (PEM or DER), checks its self-signature (proof of possession of the
 * private key) and that the key is one the profiles allow. The subject and attributes of the
 * request are ignored: the profile decides what the certificate says.
 */
export function verifyCsr(input: Uint8Array | string): VerifiedCsr {
  const der = typeof input === 'string' ? pemOrThrow(input) : Buffer.from(input);
  if (der.length === 0) throw new CsrError('the certificate request is empty');
  if (der.length > MAX_CSR_BYTES)
    throw new CsrError(`the certificate request is larger than ${MAX_CSR_BYTES} bytes`);
  let csr: CertificationRequest;
  let tbs: Buffer;
  let spki: Buffer;
  try {
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) throw new Error('trailing data');
    const [info] = readChildren(der, outer);
    if (!info) throw new Error('empty');
    tbs = slice(der, info);
    const infoChildren = readChildren(der, info);
    spki = slice(der, infoChildren[2]!);
    csr = AsnConvert.parse(der, CertificationRequest);
  } catch {
    throw new CsrError('the certificate request is not valid PKCS#10 DER');
  }
  const alg = SIGNATURE_HASHES[csr.signatureAlgorithm.algorithm];
  if (!alg)
    throw new CsrError(
      `signature algorithm ${csr.signatureAlgorithm.algorithm} is not accepted (use SHA-256 or better)`,
    );
  const publicKey = checkSubjectKey(spki);
  // The SPKI is copied into the certificate byte for byte: it must be DER (OpenSSL also parses BER
  // lengths and a missing RSA NULL, and the certificate would then not be DER).
  if (!publicKey.export({ type: 'spki', format: 'der' }).equals(spki))
    throw new CsrError('the public key in the request is not DER-encoded');
  if (publicKey.asymmetricKeyType !== alg.keyType)
    throw new CsrError('the request signature algorithm does not match its key');
  let ok = false;
  try {
    ok = verify(alg.hash, tbs, publicKey, Buffer.from(csr.signature));
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('the certificate request signature does not verify (no proof of possession)');
  return { spki, publicKey };
}

/**
 * The key policy of every end-entity profile: RSA of at least 2048 bits with public exponent of at
 * least 65537, or ECDSA on P-256. Anything else, or a key that does not parse, is refused.
 */
export function checkSubjectKey(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('the public key in the request is malformed');
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < 2048) throw new CsrError(`RSA key of ${bits} bits is too weak (2048 at least)`);
    if (bits > 8192) throw new CsrError(`RSA key of ${bits} bits is larger than allowed (8192)`);
    const e = d.publicExponent ?? 0n;
    if (e < 65537n || e % 2n === 0n) throw new CsrError(`RSA public exponent ${e} is not allowed`);
    return key;
  }
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve !== 'prime256v1')
      throw new CsrError(`EC curve ${d.namedCurve ?? '?'} is not allowed (P-256 only)`);
    return key;
  }
  throw new CsrError(
    `key type ${key.asymmetricKeyType ?? 'unknown'} is not allowed (RSA-2048+ or ECDSA P-256)`,
  );
}

function pemOrThrow(text: string): Buffer {
  try {
    return decodePem(text, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  } catch (e) {
    throw new CsrError((e as Error).message);
  }
}
