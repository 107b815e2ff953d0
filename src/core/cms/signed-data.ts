// The CMS SignedData engine (RFC 5652) shared by plain CMS signatures (CAdES) and RFC 3161 time-stamp
// tokens: parsing (BER accepted, see asn1.ts), building, and the cryptographic checks of one
// SignerInfo. Path validation and revocation are the caller's business: this module only says
// which certificate signed, and whether that key really made the signature over these bytes.

import { constants, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { explicit, integer, NULL, octetString, oid, sequence, set, tlv } from '../der.ts';
import { OID } from '../oids.ts';
import { PathParseError } from '../path/asn1.ts';
import { BytesLru } from '../path/cache.ts';
import type { ParsedCertificate } from '../path/certificate.ts';
import { certificateFrom } from '../path/validate.ts';
import { importPublicKey } from '../public-key.ts';
import type { Signer } from '../signer.ts';
import { keyIdentifier } from '../spki.ts';
import {
  Asn1FormatError,
  type BerNode,
  type BerReader,
  checkDer,
  digest,
  formatError,
  HASH_LENGTH,
  type HashAlgorithm,
  readHashAlgorithm,
  readTime,
  readWhole,
  setOf,
} from './asn1.ts';

/** Largest CMS structure accepted (detached content is not counted: it is only hashed). */
export const MAX_CMS_BYTES = 64 * 1024 * 1024;

/** A problem with the arguments of a signing or editing operation (not with untrusted input). */
export class CmsError extends Error {
  override name = 'CmsError';
}

/** ETSI EN 319 102-1 sub-indications a CMS verification can end with. */
export type CmsSubIndication =
  | 'FORMAT_FAILURE'
  | 'HASH_FAILURE'
  | 'SIG_CRYPTO_FAILURE'
  | 'NO_SIGNING_CERTIFICATE_FOUND'
  | 'SIGNED_DATA_NOT_FOUND';

// ---------------------------------------------------------------------------------------------
// Certificates

/** The parts of a certificate the CMS code needs, as the exact bytes in the certificate. */
export interface CertificateInfo {
  der: Buffer;
  /** Issuer Name DER. */
  issuer: Buffer;
  /** serialNumber INTEGER content octets. */
  serial: Buffer;
  subject: Buffer;
  spki: Buffer;
  /** The subjectKeyIdentifier extension's key identifier, if present. */
  subjectKeyId?: Buffer;
  /** The certificate as the path-validation core parsed it (strict DER, every known extension). */
  certificate: ParsedCertificate;
}

// A verifier sees the same few certificates (one CA, its residents, one TSA) over and over: parse each
// once. Keyed by the DER itself (bytes compared, see BytesLru), bounded; entries are immutable.
const certCache = new BytesLru<CertificateInfo>(4096);
const keyCache = new WeakMap<CertificateInfo, KeyObject>();
const digestCache = new WeakMap<CertificateInfo, Map<HashAlgorithm, Buffer>>();

/** Parses a certificate (strict DER, core/path) and slices out its issuer, serial, subject and SPKI. */
export function certificateInfo(der: Uint8Array): CertificateInfo {
  const hit = certCache.get(der);
  if (hit) return hit;
  const info = parseCertificateInfo(der);
  certCache.set(der, info, info.der);
  return info;
}

function parseCertificateInfo(der: Uint8Array): CertificateInfo {
  let c: ParsedCertificate;
  try {
    c = certificateFrom(der);
  } catch (e) {
    if (e instanceof PathParseError) return formatError(e.message);
    throw e;
  }
  return {
    der: c.der,
    issuer: c.issuer.der,
    serial: c.serial,
    subject: c.subject.der,
    spki: c.spki,
    subjectKeyId: c.subjectKeyId,
    certificate: c,
  };
}

/** The hash of a certificate's DER (ESS signing-certificate attributes), computed once per certificate. */
function certificateDigest(cert: CertificateInfo, alg: HashAlgorithm): Buffer {
  let m = digestCache.get(cert);
  if (!m) {
    m = new Map();
    digestCache.set(cert, m);
  }
  let d = m.get(alg);
  if (!d) {
    d = digest(alg, cert.der);
    m.set(alg, d);
  }
  return d;
}

/** A certificate's public key for node:crypto. */
function publicKeyOf(cert: CertificateInfo): KeyObject {
  try {
    let key = keyCache.get(cert);
    if (!key) {
      key = importPublicKey(cert.spki);
      keyCache.set(cert, key);
    }
    return key;
  } catch (e) {
    return formatError(`unusable public key in the certificate: ${e instanceof Error ? e.message : e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

export interface Attribute {
  type: string;
  /** The value nodes (in the shared reader). */
  values: BerNode[];
}

export type SignerIdentifier =
  | { kind: 'issuerAndSerialNumber'; issuer: Buffer; serial: Buffer }
  | { kind: 'subjectKeyIdentifier'; keyId: Buffer };

export interface ParsedSignerInfo {
  node: BerNode;
  version: number;
  sid: SignerIdentifier;
  digestAlgorithm: HashAlgorithm;
  /** The DER the signature covers (the [0] IMPLICIT tag replaced by SET OF, 0x31), and the attributes. */
  signedAttrs?: { der: Buffer; attributes: Attribute[] };
  signatureAlgorithm: BerNode;
  signature: Buffer;
  unsignedAttrs?: { node: BerNode; attributes: Attribute[] };
}

export interface ParsedSignedData {
  reader: BerReader;
  /** ContentInfo, its [0], the SignedData: for re-encoding after an edit. */
  path: BerNode[];
  signerInfosNode: BerNode;
  version: number;
  eContentType: string;
  /** The eContent OCTET STRING value (segments of a BER constructed string concatenated). */
  eContent?: Buffer;
  /** DER of each Certificate in `certificates` (other CertificateChoices are skipped). */
  certificates: Buffer[];
  /** DER of each CertificateList in `crls` (other RevocationInfoChoices are skipped). */
  crls: Buffer[];
  signerInfos: ParsedSignerInfo[];
}

const R = false; // required
const O = true; // optional

/** Parses a ContentInfo holding SignedData. Throws Asn1FormatError on anything malformed. */
export function parseSignedData(der: Uint8Array): ParsedSignedData {
  if (der.length > MAX_CMS_BYTES) formatError(`CMS larger than ${MAX_CMS_BYTES} bytes`);
  const { reader: r, root } = readWhole(der, 'CMS ContentInfo');
  if (root.tag !== 0x30) formatError('a ContentInfo is a SEQUENCE');
  const [ctype, wrapper] = r.expect(
    root,
    [
      [0x06, R],
      [0xa0, R],
    ],
    'ContentInfo',
  );
  const contentType = r.oid(ctype!);
  if (contentType !== OID.signedData) formatError(`not SignedData but content type ${contentType}`);
  const [sdNode] = r.expect(wrapper!, [[0x30, R]], 'ContentInfo');
  const [versionNode, digestAlgs, encap, certsNode, crlsNode, signerInfosNode] = r.expect(
    sdNode!,
    [
      [0x02, R],
      [0x31, R],
      [0x30, R],
      [0xa0, O],
      [0xa1, O],
      [0x31, R],
    ],
    'SignedData',
  );
  const version = r.smallInteger(versionNode!);
  if (![1, 3, 4, 5].includes(version)) formatError(`unsupported SignedData version ${version}`);
  for (const alg of r.children(digestAlgs!)) {
    if (alg.tag !== 0x30) formatError('malformed digestAlgorithms');
    r.oid(r.children(alg)[0] ?? formatError('malformed digestAlgorithms'));
  }

  const [eType, eWrapper] = r.expect(
    encap!,
    [
      [0x06, R],
      [0xa0, O],
    ],
    'EncapsulatedContentInfo',
  );
  const eContentType = r.oid(eType!);
  let eContent: Buffer | undefined;
  if (eWrapper) {
    const kids = r.children(eWrapper);
    if (kids.length !== 1 || (kids[0]!.tag !== 0x04 && kids[0]!.tag !== 0x24))
      formatError('eContent is not an OCTET STRING');
    eContent = r.octets(kids[0]!);
  }

  const certificates: Buffer[] = [];
  if (certsNode) {
    for (const c of r.children(certsNode)) {
      if (c.tag !== 0x30) continue; // extendedCertificate, attribute certificates, other
      if (c.indefinite) formatError('a certificate with an indefinite length');
      const certDer = r.slice(c);
      certificateInfo(certDer); // must parse
      certificates.push(certDer);
    }
  }
  const crls: Buffer[] = [];
  if (crlsNode) for (const c of r.children(crlsNode)) if (c.tag === 0x30) crls.push(r.slice(c));

  const signerInfos = r.children(signerInfosNode!).map((n) => parseSignerInfo(r, n));
  return {
    reader: r,
    path: [root, wrapper!, sdNode!],
    signerInfosNode: signerInfosNode!,
    version,
    eContentType,
    eContent,
    certificates,
    crls,
    signerInfos,
  };
}

function parseSignerInfo(r: BerReader, node: BerNode): ParsedSignerInfo {
  if (node.tag !== 0x30) formatError('a SignerInfo is a SEQUENCE');
  const kids = r.children(node);
  let k = 0;
  const next = () => kids[k++] ?? formatError('truncated SignerInfo');
  const version = r.smallInteger(next());
  const sidNode = next();
  let sid: SignerIdentifier;
  if (sidNode.tag === 0x30) {
    const [issuer, serial] = r.expect(
      sidNode,
      [
        [0x30, R],
        [0x02, R],
      ],
      'IssuerAndSerialNumber',
    );
    if (issuer!.indefinite) formatError('issuer name with an indefinite length');
    sid = { kind: 'issuerAndSerialNumber', issuer: r.slice(issuer!), serial: r.content(serial!) };
    if (version !== 1) formatError('a SignerInfo with issuerAndSerialNumber must be version 1');
  } else if (sidNode.tag === 0x80 || sidNode.tag === 0xa0) {
    sid = { kind: 'subjectKeyIdentifier', keyId: r.octets(sidNode) };
    if (version !== 3) formatError('a SignerInfo with subjectKeyIdentifier must be version 3');
  } else return formatError('unknown SignerIdentifier');
  const digestAlgorithm = readHashAlgorithm(r, next(), 'SignerInfo digestAlgorithm');

  let signedAttrs: ParsedSignerInfo['signedAttrs'];
  let n = next();
  if (n.tag === 0xa0) {
    try {
      checkDer(r, n);
    } catch (e) {
      formatError(`signed attributes are not DER: ${e instanceof Error ? e.message : e}`);
    }
    const der = Buffer.from(r.buf.subarray(n.start, n.end));
    der[0] = 0x31;
    signedAttrs = { der, attributes: parseAttributes(r, n, 'signed attributes') };
    n = next();
  }
  if (n.tag !== 0x30) formatError('malformed SignerInfo signatureAlgorithm');
  const signatureAlgorithm = n;
  r.oid(r.children(n)[0] ?? formatError('malformed signatureAlgorithm'));
  const sigNode = next();
  if (sigNode.tag !== 0x04 && sigNode.tag !== 0x24)
    formatError('SignerInfo signature is not an OCTET STRING');
  const signature = r.octets(sigNode);
  let unsignedAttrs: ParsedSignerInfo['unsignedAttrs'];
  if (k < kids.length && kids[k]!.tag === 0xa1) {
    const u = kids[k++]!;
    unsignedAttrs = { node: u, attributes: parseAttributes(r, u, 'unsigned attributes') };
  }
  if (k !== kids.length) formatError('unexpected SignerInfo structure');
  return {
    node,
    version,
    sid,
    digestAlgorithm,
    signedAttrs,
    signatureAlgorithm,
    signature,
    unsignedAttrs,
  };
}

function parseAttributes(r: BerReader, n: BerNode, what: string): Attribute[] {
  const out: Attribute[] = [];
  for (const a of r.children(n)) {
    if (a.tag !== 0x30) formatError(`malformed ${what}`);
    const [type, values] = r.expect(
      a,
      [
        [0x06, R],
        [0x31, R],
      ],
      what,
    );
    const vals = r.children(values!);
    if (vals.length === 0) formatError(`an attribute without values in the ${what}`);
    out.push({ type: r.oid(type!), values: vals });
  }
  if (out.length === 0) formatError(`empty ${what}`);
  return out;
}

/** The single value of an attribute that must occur at most once with one value (RFC 5652 11). */
export function singleValued(attrs: readonly Attribute[], type: string, name: string): BerNode | undefined {
  const found = attrs.filter((a) => a.type === type);
  if (found.length === 0) return undefined;
  if (found.length > 1) formatError(`more than one ${name} attribute`);
  if (found[0]!.values.length !== 1) formatError(`the ${name} attribute must have exactly one value`);
  return found[0]!.values[0];
}

// ---------------------------------------------------------------------------------------------
// Verification of one SignerInfo

export interface SignerOutcome {
  ok: boolean;
  subIndication?: CmsSubIndication;
  message: string;
  signerCertificate?: Buffer;
  signingTime?: Date;
  digestAlgorithm?: HashAlgorithm;
  /** The signature algorithm as a short name (rsaEncryption, rsassaPss, ecdsa-with-SHA256, ...). */
  signatureAlgorithm?: string;
  /** Which ESS signing-certificate attribute was present (and matched). */
  signingCertificateAttribute?: 'v1' | 'v2';
  signatureValue?: Buffer;
}

class Failure extends Error {
  constructor(
    readonly subIndication: CmsSubIndication,
    message: string,
  ) {
    super(message);
  }
}

const failWith = (sub: CmsSubIndication, message: string): never => {
  throw new Failure(sub, message);
};

/** Runs `f`, turning Failure and Asn1FormatError into an outcome. Other errors propagate. */
function outcome(partial: Partial<SignerOutcome>, f: () => SignerOutcome): SignerOutcome {
  try {
    return f();
  } catch (e) {
    if (e instanceof Failure)
      return { ...partial, ok: false, subIndication: e.subIndication, message: e.message };
    if (e instanceof Asn1FormatError)
      return { ...partial, ok: false, subIndication: 'FORMAT_FAILURE', message: e.message };
    throw e;
  }
}

/** Finds the certificate a SignerIdentifier names. */
export function findSignerCertificate(
  sid: SignerIdentifier,
  candidates: readonly Buffer[],
): CertificateInfo | undefined {
  for (const der of candidates) {
    let info: CertificateInfo;
    try {
      info = certificateInfo(der);
    } catch {
      continue;
    }
    if (sid.kind === 'issuerAndSerialNumber') {
      if (info.issuer.equals(sid.issuer) && info.serial.equals(sid.serial)) return info;
    } else {
      const id = info.subjectKeyId ?? keyIdentifier(info.spki);
      if (id.equals(sid.keyId)) return info;
    }
  }
  return undefined;
}

/**
 * Verifies one SignerInfo over `content` (already the eContent or the detached content, checked by
 * the caller to be present): signer certificate found, signed attributes (content-type,
 * message-digest, signing-time, ESS signing-certificate v1/v2), signature. `candidates` are the
 * certificates to look the signer up in.
 */
export function verifySignerInfo(
  sd: ParsedSignedData,
  si: ParsedSignerInfo,
  content: Buffer,
  candidates: readonly Buffer[],
): SignerOutcome {
  const r = sd.reader;
  const partial: Partial<SignerOutcome> = {
    digestAlgorithm: si.digestAlgorithm,
    signatureValue: si.signature,
  };
  return outcome(partial, () => {
    const cert = findSignerCertificate(si.sid, candidates);
    if (!cert)
      failWith(
        'NO_SIGNING_CERTIFICATE_FOUND',
        si.sid.kind === 'issuerAndSerialNumber'
          ? 'no certificate with the SignerInfo issuer and serial number'
          : 'no certificate with the SignerInfo subject key identifier',
      );
    partial.signerCertificate = cert!.der;
    const info = signatureAlgorithmOf(r, si.signatureAlgorithm, si.digestAlgorithm);
    partial.signatureAlgorithm = info.name;

    let signed: Buffer;
    if (si.signedAttrs) {
      const attrs = si.signedAttrs.attributes;
      const ct = singleValued(attrs, OID.contentType, 'content-type');
      if (!ct) formatError('signed attributes without the content-type attribute');
      if (r.oid(ct!) !== sd.eContentType)
        formatError('the content-type attribute differs from the encapsulated content type');
      const md = singleValued(attrs, OID.messageDigest, 'message-digest');
      if (!md) formatError('signed attributes without the message-digest attribute');
      if (md!.tag !== 0x04) formatError('the message-digest attribute is not an OCTET STRING');
      const st = singleValued(attrs, OID.signingTime, 'signing-time');
      if (st) partial.signingTime = readTime(r, st);
      partial.signingCertificateAttribute = checkSigningCertificate(r, attrs, cert!);

      const expected = r.content(md!);
      if (expected.length !== HASH_LENGTH[si.digestAlgorithm])
        formatError('the message-digest attribute has the wrong length for the digest algorithm');
      if (!digest(si.digestAlgorithm, content).equals(expected))
        failWith('HASH_FAILURE', 'the content does not match the message-digest attribute');
      signed = si.signedAttrs.der;
    } else {
      if (sd.eContentType !== OID.data)
        formatError('signed attributes are required when the content type is not id-data');
      signed = content;
    }

    const key = publicKeyOf(cert!);
    const expectedKey = info.kind === 'ecdsa' ? ['ec'] : ['rsa', 'rsa-pss'];
    if (!expectedKey.includes(key.asymmetricKeyType ?? ''))
      failWith('SIG_CRYPTO_FAILURE', `a ${key.asymmetricKeyType} key cannot make a ${info.name} signature`);
    let ok = false;
    try {
      ok =
        info.kind === 'ecdsa'
          ? verify(si.digestAlgorithm, signed, { key, dsaEncoding: 'der' }, si.signature)
          : verify(
              si.digestAlgorithm,
              signed,
              info.kind === 'pss'
                ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.saltLength }
                : { key, padding: constants.RSA_PKCS1_PADDING },
              si.signature,
            );
    } catch {
      ok = false;
    }
    if (!ok) failWith('SIG_CRYPTO_FAILURE', 'the signature does not verify with the signer certificate key');
    return { ...partial, ok: true, message: 'the signature is cryptographically valid' } as SignerOutcome;
  });
}

type SignatureKind = { name: string } & (
  | { kind: 'pkcs1' }
  | { kind: 'ecdsa' }
  | { kind: 'pss'; saltLength: number }
);

const RSA_PKCS1: ReadonlyMap<string, HashAlgorithm | undefined> = new Map<string, HashAlgorithm | undefined>([
  [OID.rsaEncryption, undefined],
  [OID.sha1WithRSAEncryption, 'sha1'],
  [OID.sha224WithRSAEncryption, 'sha224'],
  [OID.sha256WithRSAEncryption, 'sha256'],
  [OID.sha384WithRSAEncryption, 'sha384'],
  [OID.sha512WithRSAEncryption, 'sha512'],
]);
const ECDSA: ReadonlyMap<string, HashAlgorithm | undefined> = new Map<string, HashAlgorithm | undefined>([
  [OID.ecPublicKey, undefined],
  [OID.ecdsaWithSHA1, 'sha1'],
  [OID.ecdsaWithSHA224, 'sha224'],
  [OID.ecdsaWithSHA256, 'sha256'],
  [OID.ecdsaWithSHA384, 'sha384'],
  [OID.ecdsaWithSHA512, 'sha512'],
]);
const SIGNATURE_NAMES: Record<string, string> = {
  [OID.rsaEncryption]: 'rsaEncryption',
  [OID.sha1WithRSAEncryption]: 'sha1WithRSAEncryption',
  [OID.sha224WithRSAEncryption]: 'sha224WithRSAEncryption',
  [OID.sha256WithRSAEncryption]: 'sha256WithRSAEncryption',
  [OID.sha384WithRSAEncryption]: 'sha384WithRSAEncryption',
  [OID.sha512WithRSAEncryption]: 'sha512WithRSAEncryption',
  [OID.ecPublicKey]: 'ecPublicKey',
  [OID.ecdsaWithSHA1]: 'ecdsa-with-SHA1',
  [OID.ecdsaWithSHA224]: 'ecdsa-with-SHA224',
  [OID.ecdsaWithSHA256]: 'ecdsa-with-SHA256',
  [OID.ecdsaWithSHA384]: 'ecdsa-with-SHA384',
  [OID.ecdsaWithSHA512]: 'ecdsa-with-SHA512',
};

/**
 * The signature algorithm of a SignerInfo. The hash is always the SignerInfo's digestAlgorithm (as
 * in openssl); an algorithm naming a different hash is refused.
 */
function signatureAlgorithmOf(r: BerReader, n: BerNode, hash: HashAlgorithm): SignatureKind {
  const [idNode, ...rest] = r.children(n);
  const id = r.oid(idNode!);
  if (rest.length > 1) formatError('malformed signatureAlgorithm');
  const params = rest[0];
  const nullOrAbsent = () => {
    if (params && (params.tag !== 0x05 || params.end !== params.contentStart))
      formatError('unexpected signatureAlgorithm parameters');
  };
  const sameHash = (h: HashAlgorithm | undefined) => {
    if (h && h !== hash)
      formatError(`the signature algorithm hash ${h} differs from the digestAlgorithm ${hash}`);
  };
  if (RSA_PKCS1.has(id)) {
    nullOrAbsent();
    sameHash(RSA_PKCS1.get(id));
    return { kind: 'pkcs1', name: SIGNATURE_NAMES[id]! };
  }
  if (ECDSA.has(id)) {
    if (params && id !== OID.ecPublicKey) formatError('unexpected ECDSA parameters');
    sameHash(ECDSA.get(id));
    return { kind: 'ecdsa', name: SIGNATURE_NAMES[id]! };
  }
  if (id === OID.rsassaPss) {
    if (params?.tag !== 0x30) return formatError('RSASSA-PSS without parameters');
    return { kind: 'pss', name: 'rsassaPss', saltLength: pssParams(r, params, hash) };
  }
  return formatError(`unsupported signature algorithm ${id}`);
}

/** RSASSA-PSS-params (RFC 4055 3.1); returns the salt length. MGF1 must use the message hash. */
function pssParams(r: BerReader, n: BerNode, hash: HashAlgorithm): number {
  const [h, mgf, salt, trailer] = r.expect(
    n,
    [
      [0xa0, O],
      [0xa1, O],
      [0xa2, O],
      [0xa3, O],
    ],
    'RSASSA-PSS-params',
  );
  const pssHash = h ? readHashAlgorithm(r, r.expect(h, [[0x30, R]], 'PSS')[0]!, 'PSS hash') : 'sha1';
  if (pssHash !== hash) formatError(`the PSS hash ${pssHash} differs from the digestAlgorithm ${hash}`);
  let mgfHash: HashAlgorithm = 'sha1';
  if (mgf) {
    const [alg] = r.expect(mgf, [[0x30, R]], 'PSS');
    const [mgfId, mgfParams] = r.expect(
      alg!,
      [
        [0x06, R],
        [0x30, R],
      ],
      'PSS maskGenAlgorithm',
    );
    if (r.oid(mgfId!) !== OID.mgf1) formatError('unsupported PSS mask generation function');
    mgfHash = readHashAlgorithm(r, mgfParams!, 'MGF1 hash');
  }
  if (mgfHash !== hash) formatError('MGF1 with a hash other than the message hash is not supported');
  let saltLength = 20;
  if (salt) {
    const [v] = r.expect(salt, [[0x02, R]], 'PSS');
    saltLength = r.smallInteger(v!);
  }
  if (trailer) {
    const [v] = r.expect(trailer, [[0x02, R]], 'PSS');
    if (r.smallInteger(v!) !== 1) formatError('unsupported PSS trailer field');
  }
  return saltLength;
}

/**
 * Checks the ESS signing-certificate (v1, SHA-1) and signing-certificate-v2 attributes against the
 * signer certificate: the first ESSCertID(v2) must be its hash, and its issuerSerial (when present)
 * its issuer and serial number. Returns which attribute was present.
 */
function checkSigningCertificate(
  r: BerReader,
  attrs: readonly Attribute[],
  cert: CertificateInfo,
): 'v1' | 'v2' | undefined {
  let found: 'v1' | 'v2' | undefined;
  for (const [type, version] of [
    [OID.signingCertificate, 'v1'],
    [OID.signingCertificateV2, 'v2'],
  ] as const) {
    const value = singleValued(attrs, type, `signing-certificate${version === 'v2' ? '-v2' : ''}`);
    if (!value) continue;
    if (value.tag !== 0x30) formatError('malformed signing-certificate attribute');
    const [certs] = r.children(value);
    if (certs?.tag !== 0x30) formatError('malformed signing-certificate attribute');
    const [first] = r.children(certs!);
    if (first?.tag !== 0x30) formatError('a signing-certificate attribute without ESSCertID');
    const kids = r.children(first!);
    let k = 0;
    let hash: HashAlgorithm = version === 'v2' ? 'sha256' : 'sha1';
    if (version === 'v2' && kids[0]?.tag === 0x30) hash = readHashAlgorithm(r, kids[k++]!, 'ESSCertIDv2');
    const certHash = kids[k++];
    if (certHash?.tag !== 0x04) formatError('malformed ESSCertID');
    const issuerSerial = kids[k++];
    if (k < kids.length) formatError('malformed ESSCertID');
    if (!certificateDigest(cert, hash).equals(r.content(certHash!)))
      failWith(
        'NO_SIGNING_CERTIFICATE_FOUND',
        `the signing-certificate${version === 'v2' ? '-v2' : ''} attribute names another certificate`,
      );
    if (issuerSerial) {
      if (issuerSerial.tag !== 0x30) formatError('malformed IssuerSerial');
      const [names, serial] = r.expect(
        issuerSerial,
        [
          [0x30, R],
          [0x02, R],
        ],
        'IssuerSerial',
      );
      const issuerMatches = r
        .children(names!)
        .some((g) => g.tag === 0xa4 && r.children(g).some((nm) => r.slice(nm).equals(cert.issuer)));
      if (!issuerMatches || !r.content(serial!).equals(cert.serial))
        failWith(
          'NO_SIGNING_CERTIFICATE_FOUND',
          'the signing-certificate attribute issuerSerial does not match the signer certificate',
        );
    }
    found = version;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Building

/** An Attribute ::= SEQUENCE { attrType, attrValues SET OF } with the given value DERs. */
export const attribute = (type: string, ...values: Buffer[]): Buffer => sequence(oid(type), setOf(values));

/** The signing-certificate-v2 attribute for a certificate: ESSCertIDv2 with SHA-256 and issuerSerial. */
export function signingCertificateV2Attribute(cert: CertificateInfo): Buffer {
  const issuerSerial = sequence(sequence(explicit(4, cert.issuer)), tlv(0x02, cert.serial));
  // hashAlgorithm is omitted: SHA-256 is its DEFAULT, and DER leaves defaults out.
  const essCertIdV2 = sequence(octetString(digest('sha256', cert.der)), issuerSerial);
  return attribute(OID.signingCertificateV2, sequence(sequence(essCertIdV2)));
}

export interface BuildSignedDataInput {
  signer: Signer;
  /** The signer certificate, DER. */
  certificate: Buffer;
  /** Certificates to embed besides the signer's (its chain). */
  chain?: readonly Buffer[];
  /** Whether to embed any certificate at all. */
  includeCertificates: boolean;
  eContentType: string;
  content: Buffer;
  detached: boolean;
  /** Signed attributes besides content-type, message-digest and signing-certificate-v2. */
  extraSignedAttributes?: readonly Buffer[];
}

/** Checks that the certificate holds the signer's public key. */
function checkCertificateKey(signer: Signer, cert: CertificateInfo): void {
  const norm = (spki: Buffer) =>
    createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' });
  if (!norm(cert.spki).equals(norm(signer.publicKeySpki)))
    throw new CmsError("the certificate is not the signer key's certificate");
}

/**
 * SignedData in a ContentInfo, DER, with one SignerInfo (issuerAndSerialNumber, SHA-256). The
 * signature is made by `signer.sign()` over the DER SET OF signed attributes, so a PKCS#11 token
 * or IC card signs exactly like a software key.
 */
export async function buildSignedData(input: BuildSignedDataInput): Promise<Buffer> {
  let cert: CertificateInfo;
  try {
    cert = certificateInfo(input.certificate);
  } catch (e) {
    throw new CmsError(`the signer certificate does not parse: ${e instanceof Error ? e.message : e}`);
  }
  checkCertificateKey(input.signer, cert);
  const sha256 = sequence(oid(OID.sha256));
  const signedAttrs = setOf([
    attribute(OID.contentType, oid(input.eContentType)),
    attribute(OID.messageDigest, octetString(digest('sha256', input.content))),
    signingCertificateV2Attribute(cert),
    ...(input.extraSignedAttributes ?? []),
  ]);
  const signature = await input.signer.sign(signedAttrs);
  const implicitSignedAttrs = Buffer.from(signedAttrs);
  implicitSignedAttrs[0] = 0xa0;
  const signatureAlgorithm =
    input.signer.algorithm === 'rsa-2048'
      ? sequence(oid(OID.rsaEncryption), NULL) // what `openssl cms -sign` writes for RSA
      : sequence(oid(OID.ecdsaWithSHA256));
  const signerInfo = sequence(
    integer(1),
    sequence(cert.issuer, tlv(0x02, cert.serial)),
    sha256,
    implicitSignedAttrs,
    signatureAlgorithm,
    octetString(signature),
  );
  const encap = input.detached
    ? sequence(oid(input.eContentType))
    : sequence(oid(input.eContentType), explicit(0, octetString(input.content)));
  const embedded = [input.certificate];
  for (const c of input.chain ?? []) if (!embedded.some((e) => e.equals(c))) embedded.push(c);
  const certs = input.includeCertificates ? [setOf(embedded, 0xa0)] : [];
  const signedData = sequence(
    // RFC 5652 5.1: version 3 when the content type is not id-data, else 1 (no attribute certs here)
    integer(input.eContentType === OID.data ? 1 : 3),
    set(sha256),
    encap,
    ...certs,
    set(signerInfo),
  );
  return sequence(oid(OID.signedData), explicit(0, signedData));
}
