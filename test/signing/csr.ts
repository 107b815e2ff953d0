// A PKCS#10 request signed through the Signer interface, for keys that never leave their token (src
// has no CSR builder: the authority only reads requests). Minimal: version 0, a CN, the key, no
// attributes; the authority takes the public key and nothing else from it.

import { bitString, integer, sequence, tlv } from '../../src/core/der.ts';
import { encodeName } from '../../src/core/name.ts';
import { encodePem } from '../../src/core/pem.ts';
import { type Signer, signatureAlgorithmIdentifier } from '../../src/core/signer.ts';

/** A PEM CERTIFICATE REQUEST for the signer's key, self-signed by it (proof of possession). */
export async function buildCsr(signer: Signer, commonName: string): Promise<string> {
  const info = sequence(integer(0), encodeName([['CN', commonName]]), signer.publicKeySpki, tlv(0xa0));
  const signature = await signer.sign(info);
  return encodePem(
    'CERTIFICATE REQUEST',
    sequence(info, signatureAlgorithmIdentifier(signer.algorithm), bitString(signature)),
  );
}
