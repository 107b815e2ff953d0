// Client certificates from the authority's own verifier CA: issued from a verifier's PKCS#10 request and
// registered to it in one transaction, and revoked at the authority when the registry revokes them (so
// the verifier CA's CRL lists them). docs/verifiers.md.

import { X509Certificate } from 'node:crypto';
import type { Authority, IssuedVerifierCertificate } from '../authority/authority.ts';
import {
  type CertificateInfo,
  type VerifierActor,
  type VerifierRegistry,
  VerifierStateError,
} from './registry.ts';

/** Issues a certificate for the verifier and registers it (both or neither). */
export async function issueVerifierCertificate(
  authority: Authority,
  registry: VerifierRegistry,
  verifierId: number,
  csr: string | Uint8Array,
  actor: VerifierActor,
): Promise<{ issued: IssuedVerifierCertificate; registered: CertificateInfo }> {
  if (!authority.hasVerifierCa)
    throw new VerifierStateError('this authority has no verifier CA; add one with "jpki ca add-verifier-ca"');
  let registered: CertificateInfo | undefined;
  const issued = await authority.issueVerifierCertificate(csr, verifierId, {
    inTransaction: async (trx, cert) => {
      registered = await registry.registerCertificate(verifierId, cert.der, actor, {
        db: trx,
        issuer: authority.certificate('verifier'),
      });
    },
  });
  return { issued, registered: registered! };
}

/** Revokes a registered certificate, and at the authority too when its verifier CA issued it. */
export function revokeVerifierCertificate(
  authority: Authority,
  registry: VerifierRegistry,
  verifierId: number,
  fingerprintSha256: string,
  actor: VerifierActor,
): Promise<{ revoked: boolean }> {
  const ours = authority.hasVerifierCa ? authority.certificate('verifier') : undefined;
  return registry.revokeCertificate(verifierId, fingerprintSha256, actor, {
    inTransaction: async (trx, cert) => {
      if (!ours || !issuedBy(cert.der, ours)) return;
      await authority.revoke(cert.serial, 'cessationOfOperation', undefined, { db: trx });
    },
  });
}

function issuedBy(der: Uint8Array, caDer: Buffer): boolean {
  const cert = new X509Certificate(der);
  const ca = new X509Certificate(caDer);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}
