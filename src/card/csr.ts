// A PKCS#10 request signed through the Signer interface, for keys that never leave their card or
// token. Minimal (RFC 2986): CertificationRequestInfo version 0, subject CN=<name>, the key, empty
// attributes [0]; the authority takes the public key and nothing else from it (src/core/csr.ts).

import { bitString, integer, sequence, tlv } from '../core/der.ts';
import { encodeName } from '../core/name.ts';
import { encodePem } from '../core/pem.ts';
import { type Signer, signatureAlgorithmIdentifier } from '../core/signer.ts';

/** A DER CertificationRequest for the signer's key, self-signed by it (proof of possession). */
export async function createCsr(signer: Signer, commonName: string): Promise<Buffer> {
  const info = sequence(integer(0), encodeName([['CN', commonName]]), signer.publicKeySpki, tlv(0xa0));
  const signature = await signer.sign(info);
  return sequence(info, signatureAlgorithmIdentifier(signer.algorithm), bitString(signature));
}

/** The same request as PEM (CERTIFICATE REQUEST). */
export async function buildCsr(signer: Signer, commonName: string): Promise<string> {
  return encodePem('CERTIFICATE REQUEST', await createCsr(signer, commonName));
}
