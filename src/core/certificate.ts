import {
  bitString,
  explicit,
  ia5String,
  implicitConstructed,
  implicitPrimitive,
  integer,
  octetString,
  oid,
  sequence,
  TRUE,
  tlv,
  x509Time,
} from './der.ts';
import { OID } from './oids.ts';
import { type Signer, signatureAlgorithmIdentifier } from './signer.ts';

/** Everything that goes into a TBSCertificate; extensions are complete Extension DERs. */
export interface TbsFields {
  /** INTEGER content octets. */
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: readonly Buffer[];
}

const VERSION_3 = explicit(0, integer(2));

export function encodeTbsCertificate(signer: Signer, f: TbsFields): Buffer {
  return sequence(
    VERSION_3,
    tlv(0x02, f.serial),
    signatureAlgorithmIdentifier(signer.algorithm),
    f.issuer,
    sequence(x509Time(f.notBefore), x509Time(f.notAfter)),
    f.subject,
    f.spki,
    explicit(3, sequence(...f.extensions)),
  );
}

/** Signs a TBSCertificate and returns the Certificate DER. */
export async function signCertificate(signer: Signer, f: TbsFields): Promise<Buffer> {
  const tbs = encodeTbsCertificate(signer, f);
  const sig = await signer.sign(tbs);
  return sequence(tbs, signatureAlgorithmIdentifier(signer.algorithm), bitString(sig));
}

// ---- Extensions (RFC 5280 4.2) ----

export function extension(type: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(type), TRUE, octetString(value)) : sequence(oid(type), octetString(value));
}

export const KeyUsageBit = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

/** keyUsage as a DER named-bit BIT STRING (trailing zero bits removed). */
export function keyUsage(bits: readonly (keyof typeof KeyUsageBit)[]): Buffer {
  let v = 0;
  for (const b of bits) v |= 0x80 >> KeyUsageBit[b];
  let unused = 0;
  while (unused < 8 && !(v & (1 << unused))) unused++;
  return extension(OID.keyUsage, true, bitString(Buffer.from([v]), unused === 8 ? 0 : unused));
}

export function basicConstraints(ca: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(TRUE);
  if (ca && pathLen !== undefined) parts.push(integer(pathLen));
  return extension(OID.basicConstraints, true, sequence(...parts));
}

export const subjectKeyIdentifier = (keyId: Buffer): Buffer =>
  extension(OID.subjectKeyIdentifier, false, octetString(keyId));

export const authorityKeyIdentifier = (keyId: Buffer): Buffer =>
  extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, keyId)));

const uri = (u: string) => implicitPrimitive(6, Buffer.from(u, 'ascii'));

/** DistributionPoint with a fullName of URIs and/or directoryNames. */
export function distributionPoint(names: {
  uris?: readonly string[];
  directoryNames?: readonly Buffer[];
}): Buffer {
  const generalNames = [
    ...(names.uris ?? []).map(uri),
    ...(names.directoryNames ?? []).map((n) => explicit(4, n)),
  ];
  // DistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName } ; fullName [0] GeneralNames
  return sequence(explicit(0, implicitConstructed(0, ...generalNames)));
}

export const crlDistributionPoints = (...points: Buffer[]): Buffer =>
  extension(OID.cRLDistributionPoints, false, sequence(...points));

export const freshestCrl = (...points: Buffer[]): Buffer =>
  extension(OID.freshestCRL, false, sequence(...points));

export function authorityInfoAccess(a: { ocsp?: string; caIssuers?: string }): Buffer {
  const ads: Buffer[] = [];
  if (a.ocsp) ads.push(sequence(oid(OID.ocsp), uri(a.ocsp)));
  if (a.caIssuers) ads.push(sequence(oid(OID.caIssuers), uri(a.caIssuers)));
  return extension(OID.authorityInfoAccess, false, sequence(...ads));
}

/** certificatePolicies with, optionally, a CPS URI qualifier on each policy. */
export function certificatePolicies(policies: readonly { oid: string; cps?: string }[]): Buffer {
  return extension(
    OID.certificatePolicies,
    false,
    sequence(
      ...policies.map((p) =>
        p.cps
          ? sequence(oid(p.oid), sequence(sequence(oid('1.3.6.1.5.5.7.2.1'), ia5String(p.cps))))
          : sequence(oid(p.oid)),
      ),
    ),
  );
}

export const extendedKeyUsage = (purposes: readonly string[]): Buffer =>
  extension(OID.extKeyUsage, false, sequence(...purposes.map((p) => oid(p))));

export const subjectAltName = (generalNamesDer: Buffer, critical = false): Buffer =>
  extension(OID.subjectAltName, critical, generalNamesDer);

export const issuerAltNameDirectory = (nameDer: Buffer): Buffer =>
  extension('2.5.29.18', false, sequence(explicit(4, nameDer)));

/** id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): the value is NULL. */
export const ocspNoCheck = (): Buffer => extension(OID.ocspNoCheck, false, Buffer.from([0x05, 0x00]));
