// Object identifiers used by path validation (RFC 5280, RFC 6960) that the profiles do not need.
import { OID } from '../oids.ts';

export const PKIX = {
  ...OID,
  // certificate extensions
  subjectDirectoryAttributes: '2.5.29.9',
  issuerAltName: '2.5.29.18',
  nameConstraints: '2.5.29.30',
  policyMappings: '2.5.29.33',
  policyConstraints: '2.5.29.36',
  inhibitAnyPolicy: '2.5.29.54',
  anyPolicy: '2.5.29.32.0',
  anyExtendedKeyUsage: '2.5.29.37.0',

  // CRL and CRL entry extensions
  holdInstructionCode: '2.5.29.23',
  invalidityDate: '2.5.29.24',
  certificateIssuer: '2.5.29.29',
  expiredCertsOnCRL: '2.5.29.60',

  // attribute types that name constraints look at
  emailAddress: '1.2.840.113549.1.9.1',

  // public keys
  dsa: '1.2.840.10040.4.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
} as const;
