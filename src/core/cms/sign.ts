// CMS signatures (RFC 5652) with the CAdES-BES signed attributes (ETSI EN 319 122-1), and CAdES-T:
// adding a signature time-stamp (RFC 3161 token over the signature value) as an unsigned attribute.

import { tlv, x509Time } from '../der.ts';
import { OID } from '../oids.ts';
import type { Signer } from '../signer.ts';
import { parseTimeStampToken } from '../tsp/token.ts';
import { Asn1FormatError, type BerNode, digest, type HashAlgorithm, replaceNode } from './asn1.ts';
import {
  attribute,
  buildSignedData,
  CmsError,
  type ParsedSignedData,
  parseSignedData,
} from './signed-data.ts';

export interface SignCmsInput {
  signer: Signer;
  /** The signer certificate, DER; it must hold the signer's public key. */
  certificate: Buffer;
  /** CA certificates to embed with it. */
  chain?: readonly Buffer[];
  content: Buffer;
  /** Leave the content out of the signature (the verifier is given it separately). */
  detached: boolean;
  /** The signing-time attribute; now when absent. */
  signingTime?: Date;
}

/**
 * A CAdES-BES signature: ContentInfo/SignedData (version 1, digestAlgorithms {sha256}, id-data with
 * the content unless detached, the signer certificate and chain) with one SignerInfo
 * (issuerAndSerialNumber, sha256, signed attributes content-type, message-digest, signing-time,
 * signing-certificate-v2; rsaEncryption or ecdsa-with-SHA256). Signed through `signer.sign()`, so
 * PKCS#11 tokens and IC cards work unchanged. Returns DER.
 */
export async function signCms(input: SignCmsInput): Promise<Buffer> {
  const signingTime = input.signingTime ?? new Date();
  if (Number.isNaN(signingTime.getTime())) throw new CmsError('invalid signing time');
  return buildSignedData({
    signer: input.signer,
    certificate: input.certificate,
    chain: input.chain,
    includeCertificates: true,
    eContentType: OID.data,
    content: input.content,
    detached: input.detached,
    // RFC 5652 11.3: UTCTime through 2049, GeneralizedTime from 2050
    extraSignedAttributes: [attribute(OID.signingTime, x509Time(signingTime))],
  });
}

function parseForEdit(cmsDer: Uint8Array): ParsedSignedData {
  let sd: ParsedSignedData;
  try {
    sd = parseSignedData(cmsDer);
  } catch (e) {
    throw new CmsError(`not a CMS signature: ${e instanceof Error ? e.message : e}`, { cause: e });
  }
  if (sd.signerInfos.length !== 1)
    throw new CmsError(`expected one SignerInfo, found ${sd.signerInfos.length}`);
  return sd;
}

/**
 * The imprint to request a signature time-stamp with: the hash of the (only) SignerInfo's signature
 * value (ETSI EN 319 122-1 5.3).
 */
export function signatureTimeStampImprint(
  cmsDer: Uint8Array,
  algorithm: HashAlgorithm = 'sha256',
): { algorithm: HashAlgorithm; digest: Buffer } {
  const si = parseForEdit(cmsDer).signerInfos[0]!;
  return { algorithm, digest: digest(algorithm, si.signature) };
}

/**
 * CAdES-T: adds `token` (a TimeStampToken, DER) as an id-aa-signatureTimeStampToken unsigned
 * attribute of the (only) SignerInfo, after checking that the token's imprint is the hash of that
 * SignerInfo's signature value. Another instance is appended if the signature already has one.
 * BER input keeps its indefinite lengths; only the lengths around the insertion change.
 */
export function addSignatureTimeStamp(cmsDer: Uint8Array, token: Buffer): Buffer {
  const sd = parseForEdit(cmsDer);
  const si = sd.signerInfos[0]!;
  let imprint: { algorithm: HashAlgorithm; digest: Buffer };
  try {
    imprint = parseTimeStampToken(token).tstInfo.imprint;
  } catch (e) {
    if (e instanceof Asn1FormatError)
      throw new CmsError(`not a time-stamp token: ${e.message}`, { cause: e });
    throw e;
  }
  if (!digest(imprint.algorithm, si.signature).equals(imprint.digest))
    throw new CmsError('the time-stamp token does not cover this signature value');
  const attr = attribute(OID.signatureTimeStampToken, token);
  const r = sd.reader;
  const path: BerNode[] = [...sd.path, sd.signerInfosNode, si.node];
  let replacement: Buffer;
  if (si.unsignedAttrs) {
    const u = si.unsignedAttrs.node;
    path.push(u);
    replacement = tlv(0xa1, Buffer.from(r.buf.subarray(u.contentStart, u.contentEnd)), attr);
  } else {
    const n = si.node;
    replacement = tlv(0x30, Buffer.from(r.buf.subarray(n.contentStart, n.contentEnd)), tlv(0xa1, attr));
  }
  return replaceNode(r, path, replacement);
}
