// The OCSP core (RFC 6960, profiled by RFC 5019): parse a request, compute and match CertIDs, and
// build signed responses. Pure: no I/O, no database; the HTTP layer and the status lookup live
// elsewhere.
//
// Requests are untrusted input. Anything wrong with one becomes an OcspRequestError
// (-> malformedRequest), never another error type. The parser first walks the whole input as strict
// DER (definite, minimal lengths; primitive strings; no trailing bytes; bounded size and depth) and
// checks the OCSPRequest layout tag by tag, which also yields the exact bytes of each CertID to echo
// back. The CertIDs and extensions, which that walk has already taken apart down to their OIDs,
// OCTET STRINGs and INTEGERs, are read from it directly: this is the responder's hot path, and
// the asn1js schema parse of a CertID cost more than the rest of an answer from the cache. The
// schemas (@peculiar/asn1-ocsp / asn1-x509) still parse what is rare: a requestorName, a request
// signature, and a CertID whose hash algorithm is not one we know (for its message).
//
// Responses are assembled by hand with der.ts: this is the responder's hot path. Everything that
// does not depend on the answer (ResponderID, signature AlgorithmIdentifier, the certs field with
// the responder certificate) is encoded once, in createResponder.

import { createHash } from 'node:crypto';
import { CertID, Signature } from '@peculiar/asn1-ocsp';
import { AsnParser } from '@peculiar/asn1-schema';
import { Certificate, GeneralName } from '@peculiar/asn1-x509';
import {
  content,
  encodeLength,
  explicit,
  generalizedTime,
  header,
  octetString,
  oid,
  readChildren,
  readTlv,
  sequence,
  slice,
  type Tlv,
  tlv,
} from './der.ts';
import { OID } from './oids.ts';
import { type Signer, signatureAlgorithmIdentifier } from './signer.ts';
import { spkiKeyBits } from './spki.ts';

// ---------------------------------------------------------------------------------------------
// Types

/** What the responder says about one certificate. */
export type CertStatus =
  | { status: 'good' }
  /** `reason` is an RFC 5280 CRLReason code; omit it (or pass 0) for unspecified. */
  | { status: 'revoked'; revokedAt: Date; reason?: number }
  | { status: 'unknown' };

export type OcspHashAlgorithm = 'sha1' | 'sha256';

/** One CertID of a request. */
export interface OcspCertId {
  hashAlgorithm: OcspHashAlgorithm;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** The INTEGER content octets exactly as received (a leading 0x00 included, if sent). */
  serial: Buffer;
  /** The CertID DER as received; echoed back verbatim in the SingleResponse. */
  der: Buffer;
}

export interface ParsedOcspRequest {
  /** 1 to MAX_OCSP_REQUESTS entries, in request order. */
  certIds: OcspCertId[];
  /** The nonce extension's extnValue contents, to be echoed back as-is. */
  nonce?: Buffer;
}

/** A request the responder must answer with malformedRequest. */
export class OcspRequestError extends Error {
  override name = 'OcspRequestError';
}

/** Most CertIDs accepted in one request. */
export const MAX_OCSP_REQUESTS = 16;
/** Largest request accepted (a signed request with a certificate chain fits easily). */
export const MAX_OCSP_REQUEST_BYTES = 64 * 1024;
/** Longest nonce accepted (RFC 9654: 1 to 128 octets). */
const MAX_NONCE_BYTES = 128;
/** Deepest nesting accepted; a real request (signature certificates included) needs about 10. */
const MAX_DEPTH = 32;

const HASH_LENGTH: Record<OcspHashAlgorithm, number> = { sha1: 20, sha256: 32 };

// ---------------------------------------------------------------------------------------------
// Requests

/**
 * Parses a DER OCSPRequest. Throws OcspRequestError on anything malformed or unsupported: bad or
 * non-DER encoding, trailing bytes, zero or more than MAX_OCSP_REQUESTS requests, a CertID hash
 * other than SHA-1/SHA-256 (or with a wrong hash length), a version other than v1, a critical
 * extension other than the nonce, a repeated or empty or over-long nonce. A signed request is
 * accepted (its structure is checked); its signature is ignored.
 */
export function parseOcspRequest(der: Uint8Array): ParsedOcspRequest {
  try {
    return parseRequest(der);
  } catch (e) {
    if (e instanceof OcspRequestError) throw e;
    throw new OcspRequestError(`malformed OCSP request: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

const fail = (message: string): never => {
  throw new OcspRequestError(message);
};

const REQUIRED = false;
const OPTIONAL = true;
/** `[0] EXPLICIT INTEGER 0`: an explicitly encoded default version. */
const V1 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x00]);

function parseRequest(der: Uint8Array): ParsedOcspRequest {
  if (der.length === 0) fail('empty OCSP request');
  if (der.length > MAX_OCSP_REQUEST_BYTES) fail('OCSP request too large');
  const root = readTlv(der, 0);
  if (root.end !== der.length) fail('trailing bytes after the OCSP request');
  checkDer(der, root, 0);
  if (root.tag !== 0x30) fail('an OCSPRequest is a SEQUENCE');

  const [tbs, signature] = expectChildren(der, root, [
    [0x30, REQUIRED], // tbsRequest
    [0xa0, OPTIONAL], // optionalSignature
  ]);
  const [version, requestorName, list, exts] = expectChildren(der, tbs!, [
    [0xa0, OPTIONAL], // version
    [0xa1, OPTIONAL], // requestorName
    [0x30, REQUIRED], // requestList
    [0xa2, OPTIONAL], // requestExtensions
  ]);
  if (version && !slice(der, version).equals(V1)) fail('unsupported OCSP request version');
  if (requestorName) schema(der, inner(der, requestorName), GeneralName);
  if (signature) schema(der, inner(der, signature), Signature); // checked, otherwise ignored

  const items = readChildren(der, list!);
  if (items.length === 0) fail('an OCSP request without requests');
  if (items.length > MAX_OCSP_REQUESTS) fail(`more than ${MAX_OCSP_REQUESTS} requests`);
  const certIds = items.map((item) => singleRequest(der, item));

  let nonce: Buffer | undefined;
  for (const ext of extensions(der, exts)) {
    if (ext.id.equals(NONCE_OID_TLV)) {
      if (nonce) fail('repeated nonce extension');
      nonce = ext.value;
      const length = nonceLength(nonce);
      if (length < 1 || length > MAX_NONCE_BYTES) fail('nonce of unacceptable length');
    } else if (ext.critical) fail(`unsupported critical extension ${oidText(ext.id)}`);
  }
  return nonce ? { certIds, nonce } : { certIds };
}

function singleRequest(der: Uint8Array, item: Tlv): OcspCertId {
  if (item.tag !== 0x30) fail('a Request is a SEQUENCE');
  const [certIdTlv, singleExts] = expectChildren(der, item, [
    [0x30, REQUIRED], // reqCert
    [0xa0, OPTIONAL], // singleRequestExtensions
  ]);
  const [alg, nameHash, keyHash, serial] = expectChildren(der, certIdTlv!, [
    [0x30, REQUIRED], // hashAlgorithm
    [0x04, REQUIRED], // issuerNameHash
    [0x04, REQUIRED], // issuerKeyHash
    [0x02, REQUIRED], // serialNumber
  ]);
  const [algOid, params] = expectChildren(der, alg!, [
    [0x06, REQUIRED],
    [0x05, OPTIONAL],
  ]);
  const hashAlgorithm = hashOf(der, algOid!);
  if (!hashAlgorithm) {
    // Not SHA-1 or SHA-256: the schema names the algorithm for the message.
    const parsed = schema(der, certIdTlv!, CertID);
    return fail(`unsupported CertID hash ${parsed.hashAlgorithm.algorithm}`);
  }
  if (params && params.end !== params.contentStart) fail('hash algorithm parameters must be absent or NULL');
  if (serial!.end === serial!.contentStart) fail('empty serial number');
  const certId: OcspCertId = {
    hashAlgorithm,
    issuerNameHash: content(der, nameHash!),
    issuerKeyHash: content(der, keyHash!),
    serial: content(der, serial!),
    der: slice(der, certIdTlv!),
  };
  const length = HASH_LENGTH[hashAlgorithm];
  if (certId.issuerNameHash.length !== length || certId.issuerKeyHash.length !== length)
    fail('CertID hash of the wrong length');
  for (const ext of extensions(der, singleExts)) {
    if (ext.critical) fail(`unsupported critical extension ${oidText(ext.id)}`);
  }
  return certId;
}

/** Parses the TLV `t` of `buf` with an asn1-schema type. */
function schema<T>(buf: Uint8Array, t: Tlv, type: new () => T): T {
  return AsnParser.parse(buf.subarray(t.start, t.end), type);
}

/** The one value inside an `[n] EXPLICIT` wrapper. */
function inner(buf: Uint8Array, wrapper: Tlv): Tlv {
  const kids = readChildren(buf, wrapper);
  if (kids.length !== 1) fail('malformed explicit tag');
  return kids[0]!;
}

interface RequestExtension {
  /** The extnID OBJECT IDENTIFIER, tag and length included (a view of the request). */
  id: Buffer;
  critical: boolean;
  /** The extnValue OCTET STRING's contents (a copy). */
  value: Buffer;
}

/**
 * The Extensions inside an `[n] EXPLICIT Extensions`, if present: SIZE (1..MAX) OF SEQUENCE {
 * extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
 */
function extensions(buf: Uint8Array, wrapper: Tlv | undefined): RequestExtension[] {
  if (!wrapper) return [];
  const list = inner(buf, wrapper);
  if (list.tag !== 0x30 || list.end === list.contentStart) fail('malformed extensions'); // SIZE (1..MAX)
  return readChildren(buf, list).map((ext) => {
    if (ext.tag !== 0x30) fail('malformed extension');
    const [id, critical, value] = expectChildren(buf, ext, [
      [0x06, REQUIRED],
      [0x01, OPTIONAL],
      [0x04, REQUIRED],
    ]);
    if (id!.end === id!.contentStart) fail('empty extension OID');
    if (critical && critical.end - critical.contentStart !== 1) fail('malformed BOOLEAN');
    return {
      id: Buffer.from(buf.buffer, buf.byteOffset + id!.start, id!.end - id!.start),
      critical: critical !== undefined && buf[critical.contentStart] !== 0,
      value: content(buf, value!),
    };
  });
}

const NONCE_OID_TLV = oid(OID.ocspNonce);
const SHA1_OID_TLV = oid(OID.sha1);
const SHA256_OID_TLV = oid(OID.sha256);

/** The CertID hash algorithm named by the OID TLV `t`, if it is one we answer for. */
function hashOf(buf: Uint8Array, t: Tlv): OcspHashAlgorithm | undefined {
  const bytes = buf.subarray(t.start, t.end);
  if (Buffer.compare(bytes, SHA1_OID_TLV) === 0) return 'sha1';
  if (Buffer.compare(bytes, SHA256_OID_TLV) === 0) return 'sha256';
  return undefined;
}

/** Dotted text of an OBJECT IDENTIFIER TLV, for messages. */
function oidText(tlvBytes: Buffer): string {
  const t = readTlv(tlvBytes, 0);
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = t.contentStart; i < t.end; i++) {
    const b = tlvBytes[i]!;
    v = (v << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0n;
    }
  }
  if (arcs.length === 0) return '(malformed OID)';
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/**
 * The nonce proper: RFC 6960/9654 clients (openssl among them) put a DER OCTET STRING in extnValue;
 * older ones put the raw bytes there.
 */
function nonceLength(extnValue: Buffer): number {
  if (extnValue.length >= 2 && extnValue[0] === 0x04) {
    try {
      const t = readTlv(extnValue, 0);
      if (t.end === extnValue.length) return t.end - t.contentStart;
    } catch {
      // not an OCTET STRING: a raw nonce
    }
  }
  return extnValue.length;
}

/** Walks every TLV under `t`: DER lengths are minimal, strings are primitive, nesting is bounded. */
function checkDer(buf: Uint8Array, t: Tlv, depth: number): void {
  if (depth > MAX_DEPTH) fail('OCSP request nested too deeply');
  const lengthOctets = t.contentStart - t.start - 1;
  if (lengthOctets !== encodeLength(t.end - t.contentStart).length) fail('non-minimal DER length');
  if ((t.tag & 0x20) === 0) return;
  // universal class: only SEQUENCE and SET are constructed in DER
  if ((t.tag & 0xc0) === 0 && t.tag !== 0x30 && t.tag !== 0x31) fail('constructed string in DER');
  for (const child of readChildren(buf, t)) checkDer(buf, child, depth + 1);
}

/** Children of `t`, checked against the expected tags in order; OPTIONAL ones may be missing. */
function expectChildren(
  buf: Uint8Array,
  t: Tlv,
  layout: readonly (readonly [tag: number, optional: boolean])[],
): (Tlv | undefined)[] {
  const kids = readChildren(buf, t);
  const out: (Tlv | undefined)[] = [];
  let k = 0;
  for (const [tag, optional] of layout) {
    if (kids[k]?.tag === tag) out.push(kids[k++]);
    else if (optional) out.push(undefined);
    else fail('unexpected OCSP request structure');
  }
  if (k !== kids.length) fail('unexpected OCSP request structure');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Issuer matching

/** The CertID hashes of one issuer: its subject Name DER and its subjectPublicKey bits. */
export interface IssuerHashes {
  sha1: { name: Buffer; key: Buffer };
  sha256: { name: Buffer; key: Buffer };
}

/** The parts of a certificate the OCSP code needs, as the exact DER bytes in the certificate. */
function certificateParts(certDer: Uint8Array): { subject: Buffer; spki: Buffer } {
  AsnParser.parse(certDer, Certificate); // validates; the bytes below come from the same input
  const cert = readTlv(certDer, 0);
  if (cert.end !== certDer.length) throw new Error('trailing bytes after the certificate');
  const [tbs] = readChildren(certDer, cert);
  const fields = readChildren(certDer, tbs!);
  const first = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version present
  // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
  const subject = fields[first + 4];
  const spki = fields[first + 5];
  if (subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new Error('malformed certificate');
  return { subject: slice(certDer, subject), spki: slice(certDer, spki) };
}

/** Computes the CertID hashes of an issuer certificate (once per issuer, not per request). */
export function issuerHashes(issuerCertDer: Buffer): IssuerHashes {
  const { subject, spki } = certificateParts(issuerCertDer);
  const key = spkiKeyBits(spki);
  const h = (alg: OcspHashAlgorithm, data: Buffer) => createHash(alg).update(data).digest();
  return {
    sha1: { name: h('sha1', subject), key: h('sha1', key) },
    sha256: { name: h('sha256', subject), key: h('sha256', key) },
  };
}

/** Whether a CertID names this issuer (both the name hash and the key hash must match). */
export function matchesIssuer(id: OcspCertId, h: IssuerHashes): boolean {
  const mine = h[id.hashAlgorithm];
  return id.issuerNameHash.equals(mine.name) && id.issuerKeyHash.equals(mine.key);
}

// ---------------------------------------------------------------------------------------------
// Responses

/** A (delegated) OCSP responder: its key, its certificate, and the DER encoded once for all responses. */
export interface OcspResponder {
  readonly signer: Signer;
  /** The responder certificate (delegated OCSP signing certificate, or the CA itself). */
  readonly certDer: Buffer;
  /** SHA-1 of the responder's subjectPublicKey bits, for ResponderID byKey. */
  readonly keyHash: Buffer;
  /** `[2] EXPLICIT KeyHash`. */
  readonly responderIdDer: Buffer;
  /** signatureAlgorithm AlgorithmIdentifier. */
  readonly signatureAlgorithmDer: Buffer;
  /** `[0] EXPLICIT SEQUENCE OF Certificate` holding the responder certificate. */
  readonly certsDer: Buffer;
}

/**
 * Prepares a responder. Throws if `certDer` is not a certificate or does not hold the signer's
 * public key.
 */
export function createResponder(signer: Signer, certDer: Buffer): OcspResponder {
  const { spki } = certificateParts(certDer);
  const keyBits = spkiKeyBits(signer.publicKeySpki);
  if (!spkiKeyBits(spki).equals(keyBits)) throw new Error('the responder certificate is not for this key');
  const cert = Buffer.from(certDer);
  const keyHash = createHash('sha1').update(keyBits).digest();
  return Object.freeze({
    signer,
    certDer: cert,
    keyHash,
    responderIdDer: explicit(2, octetString(keyHash)),
    signatureAlgorithmDer: signatureAlgorithmIdentifier(signer.algorithm),
    certsDer: explicit(0, sequence(cert)),
  });
}

/** The answer for one CertID of the request. */
export interface SingleAnswer {
  certId: OcspCertId;
  status: CertStatus;
  thisUpdate: Date;
  nextUpdate?: Date;
}

const GOOD = Buffer.from([0x80, 0x00]); // [0] IMPLICIT NULL
const UNKNOWN = Buffer.from([0x82, 0x00]); // [2] IMPLICIT NULL
const SUCCESSFUL = Buffer.from([0x0a, 0x01, 0x00]); // ENUMERATED successful
const BASIC_OID = oid(OID.ocspBasic);
/** [0] EXPLICIT CRLReason for each code (7 is unassigned). */
const REASONS: readonly (Buffer | undefined)[] = Array.from({ length: 11 }, (_, code) =>
  code === 7 ? undefined : explicit(0, Buffer.from([0x0a, 0x01, code])),
);

function time(d: Date, what: string): Buffer {
  const y = d.getUTCFullYear();
  if (!(y >= 1 && y <= 9999)) throw new RangeError(`invalid ${what}`);
  return generalizedTime(d);
}

function certStatus(s: CertStatus): Buffer {
  switch (s.status) {
    case 'good':
      return GOOD;
    case 'unknown':
      return UNKNOWN;
    case 'revoked': {
      const revokedAt = time(s.revokedAt, 'revocation time');
      // RFC 5280 5.3.1: unspecified (0) is expressed by leaving the reason out
      if (s.reason === undefined || s.reason === 0) return tlv(0xa1, revokedAt);
      const reason = Number.isInteger(s.reason) ? REASONS[s.reason] : undefined;
      if (!reason) throw new RangeError(`invalid CRLReason ${s.reason}`);
      return tlv(0xa1, revokedAt, reason);
    }
  }
}

function singleResponse(a: SingleAnswer): Buffer {
  const parts = [a.certId.der, certStatus(a.status), time(a.thisUpdate, 'thisUpdate')];
  if (a.nextUpdate) {
    if (a.nextUpdate.getTime() < a.thisUpdate.getTime()) throw new RangeError('nextUpdate before thisUpdate');
    parts.push(explicit(0, time(a.nextUpdate, 'nextUpdate')));
  }
  return sequence(...parts);
}

/**
 * Builds and signs a successful OCSPResponse (DER) carrying a BasicOCSPResponse: version omitted
 * (v1), ResponderID byKey, the answers in order, the nonce echoed in responseExtensions if given,
 * and the responder certificate in `certs`. Times are GeneralizedTime in whole seconds.
 */
export async function buildBasicResponse(
  responder: OcspResponder,
  answers: readonly SingleAnswer[],
  opts: { producedAt: Date; nonce?: Buffer },
): Promise<Buffer> {
  if (answers.length === 0) throw new RangeError('an OCSP response needs at least one answer');
  const tbsParts = [
    responder.responderIdDer,
    time(opts.producedAt, 'producedAt'),
    sequence(...answers.map(singleResponse)),
  ];
  if (opts.nonce) tbsParts.push(explicit(1, sequence(sequence(NONCE_OID_TLV, octetString(opts.nonce)))));
  const tbs = sequence(...tbsParts);
  const signature = await responder.signer.sign(tbs);

  // BasicOCSPResponse and its wrappers, assembled with one copy of the (large) body.
  const sigBits = tlv(0x03, Buffer.from([0]), signature);
  const basicLength =
    tbs.length + responder.signatureAlgorithmDer.length + sigBits.length + responder.certsDer.length;
  const basicHeader = header(0x30, basicLength);
  const octetHeader = header(0x04, basicHeader.length + basicLength);
  const bytesLength = BASIC_OID.length + octetHeader.length + basicHeader.length + basicLength;
  const bytesHeader = header(0x30, bytesLength);
  const explicitHeader = header(0xa0, bytesHeader.length + bytesLength);
  const outerLength = SUCCESSFUL.length + explicitHeader.length + bytesHeader.length + bytesLength;
  return Buffer.concat([
    header(0x30, outerLength),
    SUCCESSFUL,
    explicitHeader,
    bytesHeader,
    BASIC_OID,
    octetHeader,
    basicHeader,
    tbs,
    responder.signatureAlgorithmDer,
    sigBits,
    responder.certsDer,
  ]);
}

export type OcspErrorStatus =
  | 'malformedRequest'
  | 'internalError'
  | 'tryLater'
  | 'sigRequired'
  | 'unauthorized';

const ERROR_RESPONSES: Readonly<Record<OcspErrorStatus, Buffer>> = {
  malformedRequest: Buffer.from([0x30, 0x03, 0x0a, 0x01, 1]),
  internalError: Buffer.from([0x30, 0x03, 0x0a, 0x01, 2]),
  tryLater: Buffer.from([0x30, 0x03, 0x0a, 0x01, 3]),
  sigRequired: Buffer.from([0x30, 0x03, 0x0a, 0x01, 5]),
  unauthorized: Buffer.from([0x30, 0x03, 0x0a, 0x01, 6]),
};

/** An unsuccessful OCSPResponse (no responseBytes, unsigned). Returns a fresh copy of a constant. */
export function errorResponse(status: OcspErrorStatus): Buffer {
  if (!Object.hasOwn(ERROR_RESPONSES, status)) throw new RangeError(`unknown OCSP error status ${status}`);
  return Buffer.from(ERROR_RESPONSES[status]);
}
