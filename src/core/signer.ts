import { NULL, oid, sequence } from './der.ts';
import { OID } from './oids.ts';

/** Key algorithms the authority can hold. RSA-2048/SHA-256 is what the real service uses. */
export type KeyAlgorithm = 'rsa-2048' | 'ecdsa-p256';

export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['rsa-2048', 'ecdsa-p256'];

/**
 * A private key that can sign but never shows itself: a software key in memory, a key inside an
 * HSM or on an IC card. Every signature the authority makes goes through this interface.
 */
export interface Signer {
  readonly algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKeySpki: Buffer;
  /**
   * Signs `data` (the chunks are concatenated, so large inputs such as CRLs can be streamed) with
   * SHA-256 and returns the signature as it appears in X.509 (ECDSA as a DER Ecdsa-Sig-Value).
   */
  sign(data: Buffer | readonly Buffer[]): Promise<Buffer>;
}

/** AlgorithmIdentifier (DER) of the signatures a signer of this algorithm makes. */
export function signatureAlgorithmIdentifier(algorithm: KeyAlgorithm): Buffer {
  return algorithm === 'rsa-2048'
    ? sequence(oid(OID.sha256WithRSAEncryption), NULL)
    : sequence(oid(OID.ecdsaWithSHA256));
}
