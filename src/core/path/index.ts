// Certification path validation (RFC 5280 section 6) with revocation checking: the pure core.
export { PathParseError } from './asn1.ts';
export { defaultCache, PkiCache } from './cache.ts';
export {
  type DistributionPoint,
  describeCertificate,
  type KeyUsageName,
  KU,
  type ParsedCertificate,
  parseCertificate,
} from './certificate.ts';
export { type CrlEntry, type ParsedCrl, parseCrl } from './crl.ts';
export type { GeneralName, ParsedName } from './name.ts';
export { type ParsedOcspResponse, parseOcspResponse } from './ocsp.ts';
export { PKIX } from './oids.ts';
export { ANY_POLICY } from './policy.ts';
export { REASON_NAMES, type RevocationInfo } from './revocation.ts';
export {
  type CertificateInput,
  type CertificateRevocation,
  type CrlInput,
  certificateFrom,
  crlFrom,
  type OcspInput,
  ocspFrom,
  type PathValidationInput,
  type PathValidationOptions,
  type PathValidationResult,
  validatePath,
} from './validate.ts';
