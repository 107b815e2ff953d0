// The certificate profiles, in one place. docs/profiles.md describes them for people; this file is
// what the authority actually enforces. Nothing else decides what goes into a certificate.
import { type BasicFacts, encodeBasicFactsSan, localitiesOf } from './basic-facts.ts';
import {
  authorityInfoAccess,
  authorityKeyIdentifier,
  basicConstraints,
  certificatePolicies,
  crlDistributionPoints,
  distributionPoint,
  extendedKeyUsage,
  extension,
  freshestCrl,
  issuerAltNameDirectory,
  keyUsage,
  ocspNoCheck,
  subjectAltName,
  subjectKeyIdentifier,
} from './certificate.ts';
import { checkPartitionCount, crlPartitionOf } from './crl-partition.ts';
import { oid, sequence } from './der.ts';
import { encodeName, type NameAttribute } from './name.ts';
import { OID } from './oids.ts';
import { keyIdentifier } from './spki.ts';

/** The authority's certificate authorities. */
export type CaId = 'root' | 'sign' | 'auth';
/**
 * The CA of authorised verifiers' TLS client certificates (docs/verifiers.md): under the root, apart
 * from the residents' CAs, and optional (authorities created before it have none).
 */
export type VerifierCaId = 'verifier';
/** Every CA that signs CRLs. */
export type CrlIssuerId = CaId | VerifierCaId;
/** End-entity certificate kinds: signature (署名用) and user authentication (利用者証明用). */
export type CertificateKind = 'sign' | 'auth';
export const CERTIFICATE_KINDS: readonly CertificateKind[] = ['sign', 'auth'];

export const CA_NAMES: Record<CrlIssuerId, readonly NameAttribute[]> = {
  root: [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'JPKI Root CA'],
  ],
  sign: [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'JPKI for digital signature'],
  ],
  auth: [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'JPKI for user authentication'],
  ],
  verifier: [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'JPKI Verifier CA'],
  ],
};

/** issuerAltName of end-entity certificates, as the real service sets it. */
const SERVICE_NAME = encodeName([
  ['C', 'JP'],
  ['O', '公的個人認証サービス'],
]);

export const POLICY: Record<CertificateKind, string> = { sign: OID.jpkiSignPolicy, auth: OID.jpkiAuthPolicy };

/** Where relying parties fetch things; all absolute URLs. */
export interface PublicationPoints {
  crl: string;
  deltaCrl?: string;
  /**
   * End-entity profiles only: the CA's CRLs are partitioned (docs/profiles.md). Each certificate's
   * cRLDistributionPoints and freshestCRL then name its partition's CRLs instead of `crl` and
   * `deltaCrl`; the partition follows from the serial (core/crl-partition.ts).
   */
  crlPartitions?: { count: number; crl(p: number): string; deltaCrl(p: number): string };
  ocsp?: string;
  caIssuers?: string;
  cps?: string;
}

/** The issuer as a profile needs it. */
export interface IssuerInfo {
  name: Buffer;
  spki: Buffer;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** Subject, extensions and validity of a certificate about to be signed. */
export interface CertificateTemplate {
  subject: Buffer;
  subjectDisplay: string;
  extensions: Buffer[];
  validity: Validity;
}

/** Adds whole calendar years (29 February becomes 28 February when the target year is not leap). */
export function addYears(d: Date, years: number): Date {
  const out = new Date(d.getTime());
  out.setUTCFullYear(d.getUTCFullYear() + years);
  if (out.getUTCMonth() !== d.getUTCMonth()) out.setUTCDate(0);
  return out;
}

const publication = (p: PublicationPoints): Buffer[] => {
  const exts = [crlDistributionPoints(distributionPoint({ uris: [p.crl] }))];
  if (p.ocsp || p.caIssuers) exts.push(authorityInfoAccess({ ocsp: p.ocsp, caIssuers: p.caIssuers }));
  return exts;
};

const nameDisplay = (attrs: readonly NameAttribute[]) => attrs.map(([t, v]) => `${t}=${v}`).join(', ');

export function rootCaTemplate(spki: Buffer, notBefore: Date, years: number): CertificateTemplate {
  return {
    subject: encodeName(CA_NAMES.root),
    subjectDisplay: nameDisplay(CA_NAMES.root),
    extensions: [
      basicConstraints(true, 1),
      keyUsage(['keyCertSign', 'cRLSign']),
      subjectKeyIdentifier(keyIdentifier(spki)),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

export function issuingCaTemplate(
  ca: CertificateKind,
  spki: Buffer,
  issuer: IssuerInfo,
  points: PublicationPoints,
  notBefore: Date,
  years: number,
): CertificateTemplate {
  return {
    subject: encodeName(CA_NAMES[ca]),
    subjectDisplay: nameDisplay(CA_NAMES[ca]),
    extensions: [
      basicConstraints(true, 0),
      keyUsage(['keyCertSign', 'cRLSign']),
      subjectKeyIdentifier(keyIdentifier(spki)),
      authorityKeyIdentifier(keyIdentifier(issuer.spki)),
      certificatePolicies([{ oid: POLICY[ca], cps: points.cps }]),
      ...publication(points),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

/**
 * The verifier CA under the root: like the residents' issuing CAs (pathLen 0, keyCertSign + cRLSign,
 * the root's CRL DP and AIA) but without their certificate policy: it certifies organisations' TLS
 * clients, not residents.
 */
export function verifierCaTemplate(
  spki: Buffer,
  issuer: IssuerInfo,
  points: PublicationPoints,
  notBefore: Date,
  years: number,
): CertificateTemplate {
  return {
    subject: encodeName(CA_NAMES.verifier),
    subjectDisplay: nameDisplay(CA_NAMES.verifier),
    extensions: [
      basicConstraints(true, 0),
      keyUsage(['keyCertSign', 'cRLSign']),
      subjectKeyIdentifier(keyIdentifier(spki)),
      authorityKeyIdentifier(keyIdentifier(issuer.spki)),
      ...publication(points),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

/**
 * An authorised verifier's TLS client certificate: `C=JP, O=JPKI, OU=Authorised Verifier,
 * CN=verifier-<id>` (the registry's id, no personal data: the organisation's name stays in the
 * registry), keyUsage digitalSignature, extKeyUsage clientAuth, the verifier CA's CRL DP and AIA
 * caIssuers. Takes the SPKI of a PKCS#10 request and nothing else from it.
 */
export function verifierClientTemplate(
  verifierId: number,
  spki: Buffer,
  issuer: IssuerInfo,
  points: PublicationPoints,
  notBefore: Date,
  years: number,
): CertificateTemplate {
  if (!Number.isSafeInteger(verifierId) || verifierId < 1)
    throw new ProfileError(`not a verifier id: ${String(verifierId)}`);
  const attrs: NameAttribute[] = [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'Authorised Verifier'],
    ['CN', `verifier-${verifierId}`],
  ];
  return {
    subject: encodeName(attrs),
    subjectDisplay: nameDisplay(attrs),
    extensions: [
      keyUsage(['digitalSignature']),
      extendedKeyUsage([OID.clientAuth]),
      subjectKeyIdentifier(keyIdentifier(spki)),
      authorityKeyIdentifier(keyIdentifier(issuer.spki)),
      ...publication(points),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

/** Delegated OCSP signer for an issuing CA (RFC 6960 4.2.2.2), with id-pkix-ocsp-nocheck. */
export function ocspResponderTemplate(
  ca: CertificateKind,
  spki: Buffer,
  issuer: IssuerInfo,
  notBefore: Date,
  years: number,
): CertificateTemplate {
  const attrs: NameAttribute[] = [...CA_NAMES[ca], ['CN', 'OCSP Responder']];
  return {
    subject: encodeName(attrs),
    subjectDisplay: nameDisplay(attrs),
    extensions: [
      keyUsage(['digitalSignature']),
      extendedKeyUsage([OID.ocspSigning]),
      ocspNoCheck(),
      subjectKeyIdentifier(keyIdentifier(spki)),
      authorityKeyIdentifier(keyIdentifier(issuer.spki)),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

/**
 * The time-stamping authority (RFC 3161 2.3): keyUsage digitalSignature and nonRepudiation, and
 * extKeyUsage id-kp-timeStamping alone and critical. `points` adds CRL distribution point and AIA.
 */
export function timeStampingTemplate(
  spki: Buffer,
  issuer: IssuerInfo,
  notBefore: Date,
  years: number,
  points?: PublicationPoints,
): CertificateTemplate {
  const attrs: NameAttribute[] = [
    ['C', 'JP'],
    ['O', 'JPKI'],
    ['OU', 'JPKI Time Stamping Authority'],
    ['CN', 'TSA'],
  ];
  return {
    subject: encodeName(attrs),
    subjectDisplay: nameDisplay(attrs),
    extensions: [
      keyUsage(['digitalSignature', 'nonRepudiation']),
      extension(OID.extKeyUsage, true, sequence(oid(OID.timeStamping))),
      subjectKeyIdentifier(keyIdentifier(spki)),
      authorityKeyIdentifier(keyIdentifier(issuer.spki)),
      ...(points ? publication(points) : []),
    ],
    validity: { notBefore, notAfter: addYears(notBefore, years) },
  };
}

export interface EndEntityRequest {
  kind: CertificateKind;
  spki: Buffer;
  /** Opaque issuance identifier, the subject CN. */
  issuanceId: string;
  /** The serial (DER INTEGER content octets); with partitioned CRLs it picks the CRL distribution point. */
  serial?: Buffer;
  /** Required for a signature certificate, refused for an authentication certificate. */
  facts?: BasicFacts;
  /** Prefecture and city for the signature certificate's localityName; derived from the address when absent. */
  localities?: { prefecture?: string; city?: string };
  notBefore: Date;
  years: number;
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/**
 * An issuing CA's end-entity profile, prepared once per CA (the authority does it when it opens):
 * every extension that is the same in all the certificates the CA issues (key usage, extended key
 * usage, issuerAltName, authority key identifier, policies, CRL distribution point, AIA, freshest
 * CRL) is encoded here once. Per certificate only the subject, the subject key identifier and, in a
 * signature certificate, the four basic facts are encoded. Rebuilding the constant ones cost ~15 µs
 * per issuance (a SHA-1 of the CA key among them).
 */
export interface EndEntityProfile {
  readonly kind: CertificateKind;
  /** Extensions before subjectAltName (sign) or before the subject key identifier (auth). */
  readonly head: readonly Buffer[];
  /** sign only: between subjectAltName and the subject key identifier. */
  readonly middle: readonly Buffer[];
  /** After the subject key identifier, one per CRL partition (they differ in the distribution points). */
  readonly tails: readonly (readonly Buffer[])[];
}

export function endEntityProfile(
  kind: CertificateKind,
  issuer: IssuerInfo,
  points: PublicationPoints,
): EndEntityProfile {
  const aki = authorityKeyIdentifier(keyIdentifier(issuer.spki));
  const policies = certificatePolicies([{ oid: POLICY[kind], cps: points.cps }]);
  const tailFor = (p: PublicationPoints) =>
    Object.freeze([
      aki,
      policies,
      ...publication(p),
      ...(p.deltaCrl ? [freshestCrl(distributionPoint({ uris: [p.deltaCrl] }))] : []),
    ]);
  const parts = points.crlPartitions;
  if (parts) checkPartitionCount(parts.count);
  const tails = Object.freeze(
    parts && parts.count > 1
      ? Array.from({ length: parts.count }, (_, i) =>
          tailFor({ ...points, crl: parts.crl(i), deltaCrl: points.deltaCrl && parts.deltaCrl(i) }),
        )
      : [tailFor(points)],
  );
  const serviceName = issuerAltNameDirectory(SERVICE_NAME);
  if (kind === 'sign')
    return Object.freeze({
      kind,
      head: Object.freeze([keyUsage(['digitalSignature', 'nonRepudiation'])]),
      middle: Object.freeze([serviceName]),
      tails,
    });
  return Object.freeze({
    kind,
    head: Object.freeze([keyUsage(['digitalSignature']), extendedKeyUsage([OID.clientAuth]), serviceName]),
    middle: Object.freeze([]),
    tails,
  });
}

/**
 * The end-entity profiles: signature certificate (with the four facts) and authentication
 * certificate (without), under the issuing CA's prepared profile.
 */
export function endEntityTemplate(req: EndEntityRequest, profile: EndEntityProfile): CertificateTemplate {
  if (req.kind !== profile.kind)
    throw new ProfileError(`a ${req.kind} request under the ${profile.kind} profile`);
  if (!/^[A-Za-z0-9]{8,64}$/.test(req.issuanceId)) throw new ProfileError('malformed issuance identifier');
  const ski = subjectKeyIdentifier(keyIdentifier(req.spki));
  const tail = tailOf(profile, req.serial);
  const validity = { notBefore: req.notBefore, notAfter: addYears(req.notBefore, req.years) };
  if (req.kind === 'sign') {
    if (!req.facts) throw new ProfileError('a signature certificate needs the four basic facts');
    const loc = { ...localitiesOf(req.facts.address), ...definedOnly(req.localities) };
    const attrs: NameAttribute[] = [['C', 'JP']];
    if (loc.prefecture) attrs.push(['L', loc.prefecture]);
    if (loc.city) attrs.push(['L', loc.city]);
    attrs.push(['CN', req.issuanceId]);
    return {
      subject: encodeName(attrs),
      subjectDisplay: nameDisplay(attrs),
      extensions: [
        ...profile.head,
        subjectAltName(encodeBasicFactsSan(req.facts)),
        ...profile.middle,
        ski,
        ...tail,
      ],
      validity,
    };
  }
  if (req.facts) throw new ProfileError('an authentication certificate carries no personal data');
  const attrs: NameAttribute[] = [
    ['C', 'JP'],
    ['CN', req.issuanceId],
  ];
  return {
    subject: encodeName(attrs),
    subjectDisplay: nameDisplay(attrs),
    extensions: [...profile.head, ski, ...tail],
    validity,
  };
}

/** The profile's tail for the certificate's CRL partition. */
function tailOf(profile: EndEntityProfile, serial: Buffer | undefined): readonly Buffer[] {
  if (profile.tails.length === 1) return profile.tails[0]!;
  if (!serial) throw new ProfileError('with partitioned CRLs the serial decides the CRL distribution point');
  return profile.tails[crlPartitionOf(serial, profile.tails.length)]!;
}

function definedOnly<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Partial<T>;
}
