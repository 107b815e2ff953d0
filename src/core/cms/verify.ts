// Verification of CMS signatures (RFC 5652), CAdES-BES and CAdES-T: structure, signer certificate
// identification, signed attributes, message digest, signature, and the signature time-stamps.
// Cryptographic only: the caller validates the signer's (and each TSA's) certificate path and
// revocation status with the certificates returned here.

import { DerError } from '../der.ts';
import { OID } from '../oids.ts';
import { type TimeStampVerification, verifyTimeStampToken } from '../tsp/token.ts';
import { Asn1FormatError, type HashAlgorithm } from './asn1.ts';
import {
  type CmsSubIndication,
  MAX_CMS_BYTES,
  type ParsedSignedData,
  parseSignedData,
  type SignerOutcome,
  verifySignerInfo,
} from './signed-data.ts';

export interface VerifyCmsOptions {
  /** The content of a detached signature (or, for an attached one, the content it must encapsulate). */
  detachedContent?: Buffer;
  /** Certificates to look the signer certificate up in besides those embedded in the signature. */
  certificates?: readonly Buffer[];
}

/** One id-aa-signatureTimeStampToken of the signature (CAdES-T). */
export interface SignatureTimeStamp extends TimeStampVerification {
  /** The TimeStampToken DER, as found in the unsigned attribute. */
  token: Buffer;
}

interface Common {
  message: string;
  /** Certificates embedded in the SignedData, DER. */
  certificates: Buffer[];
  /** CRLs embedded in the SignedData, DER. */
  crls: Buffer[];
  /** Number of SignerInfos (all are verified; the result describes the first, or the first failing). */
  signerCount: number;
  /** eContentType, dotted. */
  contentType?: string;
  /** The signed content: the encapsulated content, or the detached content given. */
  content?: Buffer;
  /** Raw id-aa-signatureTimeStampToken values (TimeStampToken DER), in order. */
  signatureTimeStamps: Buffer[];
  /** Each signature time-stamp verified: its own signature, and its imprint against the signature value. */
  timeStamps: SignatureTimeStamp[];
}

export interface CmsValid extends Common {
  status: 'valid';
  subIndication?: undefined;
  signerCertificate: Buffer;
  signingTime?: Date;
  /** The digest algorithm of the message digest and signed attributes, for crypto-constraint checks. */
  signedAttributesDigestAlgorithm: HashAlgorithm;
  /** rsaEncryption, sha256WithRSAEncryption, rsassaPss, ecdsa-with-SHA256, ... */
  signatureAlgorithm: string;
  signatureValue: Buffer;
  /** Whether the signature has signed attributes (CAdES requires them). */
  signedAttributes: boolean;
  /** The ESS signing-certificate attribute present (and matching the signer certificate), if any. */
  signingCertificateAttribute?: 'v1' | 'v2';
}

export interface CmsFailed extends Common {
  status: 'failed';
  subIndication: CmsSubIndication;
  signerCertificate?: Buffer;
  signingTime?: Date;
  signedAttributesDigestAlgorithm?: HashAlgorithm;
  signatureAlgorithm?: string;
  signatureValue?: Buffer;
}

export type CmsVerification = CmsValid | CmsFailed;

/**
 * Verifies a CMS SignedData signature (DER or BER, as `openssl cms -sign` writes with or without
 * -stream). Never throws on bad input; the failure's sub-indication says why:
 * FORMAT_FAILURE (malformed, unsupported algorithm, content-type mismatch), SIGNED_DATA_NOT_FOUND
 * (detached and no content given), NO_SIGNING_CERTIFICATE_FOUND (no certificate matches the signer
 * identifier, or the signing-certificate(-v2) attribute names another certificate), HASH_FAILURE
 * (message digest, or detached content differing from the encapsulated content),
 * SIG_CRYPTO_FAILURE (the signature does not verify). Signature time-stamps are verified and
 * reported in `timeStamps` but do not change `status`: unsigned attributes are not protected by
 * the signature, so a broken one is reported, not held against the signature.
 */
export function verifyCms(der: Uint8Array, opts: VerifyCmsOptions = {}): CmsVerification {
  const empty: Common = {
    message: '',
    certificates: [],
    crls: [],
    signerCount: 0,
    signatureTimeStamps: [],
    timeStamps: [],
  };
  if (der.length > MAX_CMS_BYTES)
    return { ...empty, status: 'failed', subIndication: 'FORMAT_FAILURE', message: 'CMS too large' };
  let sd: ParsedSignedData;
  try {
    sd = parseSignedData(der);
  } catch (e) {
    if (e instanceof Asn1FormatError || e instanceof DerError)
      return { ...empty, status: 'failed', subIndication: 'FORMAT_FAILURE', message: e.message };
    throw e;
  }
  const common: Common = {
    ...empty,
    certificates: sd.certificates,
    crls: sd.crls,
    signerCount: sd.signerInfos.length,
    contentType: sd.eContentType,
  };
  const failed = (
    subIndication: CmsSubIndication,
    message: string,
    extra: Partial<CmsFailed> = {},
  ): CmsFailed => ({
    ...common,
    ...extra,
    status: 'failed',
    subIndication,
    message,
  });
  if (sd.signerInfos.length === 0) return failed('FORMAT_FAILURE', 'a SignedData without SignerInfo');

  let content: Buffer;
  if (sd.eContent) {
    if (opts.detachedContent && !opts.detachedContent.equals(sd.eContent))
      return failed('HASH_FAILURE', 'the content given differs from the content the signature encapsulates');
    content = sd.eContent;
  } else if (opts.detachedContent) content = opts.detachedContent;
  else return failed('SIGNED_DATA_NOT_FOUND', 'a detached signature and no content to verify it against');
  common.content = content;

  const candidates = [...sd.certificates, ...(opts.certificates ?? [])];
  let first: { outcome: SignerOutcome; index: number } | undefined;
  for (const [index, si] of sd.signerInfos.entries()) {
    const outcome = verifySignerInfo(sd, si, content, candidates);
    if (!outcome.ok) {
      const r = sd.signerInfos.length > 1 ? `SignerInfo ${index + 1}: ` : '';
      return failed(outcome.subIndication!, r + outcome.message, {
        signerCertificate: outcome.signerCertificate,
        signingTime: outcome.signingTime,
        signedAttributesDigestAlgorithm: outcome.digestAlgorithm,
        signatureAlgorithm: outcome.signatureAlgorithm,
        signatureValue: outcome.signatureValue,
      });
    }
    first ??= { outcome, index };
  }
  const { outcome, index } = first!;
  const si = sd.signerInfos[index]!;
  const tokens: Buffer[] = [];
  for (const a of si.unsignedAttrs?.attributes ?? [])
    if (a.type === OID.signatureTimeStampToken) for (const v of a.values) tokens.push(sd.reader.slice(v));
  const timeStamps = tokens.map((token) => ({
    token,
    ...verifyTimeStampToken(token, { data: si.signature, certificates: opts.certificates }),
  }));
  return {
    ...common,
    status: 'valid',
    message: outcome.message,
    signerCertificate: outcome.signerCertificate!,
    signingTime: outcome.signingTime,
    signedAttributesDigestAlgorithm: outcome.digestAlgorithm!,
    signatureAlgorithm: outcome.signatureAlgorithm!,
    signatureValue: outcome.signatureValue!,
    signedAttributes: si.signedAttrs !== undefined,
    signingCertificateAttribute: outcome.signingCertificateAttribute,
    signatureTimeStamps: tokens,
    timeStamps,
  };
}
