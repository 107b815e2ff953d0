// Certificates for path tests, made with the project's own certificate builder.
import { randomBytes } from 'node:crypto';
import {
  authorityKeyIdentifier,
  basicConstraints,
  extension,
  keyUsage,
  signCertificate,
  subjectKeyIdentifier,
} from '../../src/core/certificate.ts';
import { integerContent } from '../../src/core/der.ts';
import { encodeName, type NameAttribute } from '../../src/core/name.ts';
import { keyIdentifier } from '../../src/core/spki.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';

export interface TestCert {
  der: Buffer;
  name: Buffer;
  signer: SoftwareSigner;
}

const YEAR = 365 * 24 * 3600_000;

export async function makeCert(opts: {
  subject: readonly NameAttribute[];
  /** The issuing certificate; self-signed when absent. */
  issuer?: TestCert;
  /** The subject's key; a new P-256 key when absent. */
  signer?: SoftwareSigner;
  ca?: boolean;
  pathLen?: number;
  notBefore?: Date;
  notAfter?: Date;
  extensions?: Buffer[];
}): Promise<TestCert> {
  const signer = opts.signer ?? SoftwareSigner.generate('ecdsa-p256');
  const name = encodeName(opts.subject);
  const issuer = opts.issuer ?? { der: Buffer.alloc(0), name, signer };
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const der = await signCertificate(issuer.signer, {
    serial: integerContent(randomBytes(16)),
    issuer: issuer.name,
    subject: name,
    notBefore,
    notAfter: opts.notAfter ?? new Date(notBefore.getTime() + 5 * YEAR),
    spki: signer.publicKeySpki,
    extensions: [
      ...(opts.ca
        ? [basicConstraints(true, opts.pathLen), keyUsage(['keyCertSign', 'cRLSign'])]
        : [keyUsage(['digitalSignature'])]),
      subjectKeyIdentifier(keyIdentifier(signer.publicKeySpki)),
      authorityKeyIdentifier(keyIdentifier(issuer.signer.publicKeySpki)),
      ...(opts.extensions ?? []),
    ],
  });
  return { der, name, signer };
}

export { extension };
