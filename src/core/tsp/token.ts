// RFC 3161 time-stamp tokens: parsing TSTInfo and the cryptographic verification of a token (the
// CMS SignedData signature by the TSA, its signed attributes, the TSA certificate's extended key
// usage). Validating the TSA certificate's path and revocation status is the caller's business.

import {
  Asn1FormatError,
  type BerNode,
  type BerReader,
  checkDer,
  formatError,
  type HashAlgorithm,
  digest as hash,
  readHashAlgorithm,
  readTime,
  readWhole,
} from '../cms/asn1.ts';
import {
  type CertificateInfo,
  certificateInfo,
  type ParsedSignedData,
  parseSignedData,
  verifySignerInfo,
} from '../cms/signed-data.ts';
import { DerError } from '../der.ts';
import { OID } from '../oids.ts';
import type { SubIndication } from '../report.ts';

export interface MessageImprint {
  algorithm: HashAlgorithm;
  digest: Buffer;
}

export interface TstInfo {
  policy: string;
  imprint: MessageImprint;
  /** serialNumber INTEGER content octets. */
  serial: Buffer;
  genTime: Date;
  accuracy?: { seconds?: number; millis?: number; micros?: number };
  ordering: boolean;
  /** nonce INTEGER content octets. */
  nonce?: Buffer;
  /** The tsa GeneralName, DER. */
  tsaName?: Buffer;
}

/**
 * Parses a TSTInfo (the eContent of a time-stamp token), which RFC 3161 2.4.2 requires to be DER:
 * every length definite and minimal, the fields in order with the right tags, and each value read
 * strictly. Throws Asn1FormatError.
 */
export function parseTstInfo(der: Uint8Array): TstInfo {
  const { reader: r, root } = readWhole(der, 'TSTInfo');
  if (root.tag !== 0x30) formatError('a TSTInfo is a SEQUENCE');
  try {
    checkDer(r, root);
  } catch (e) {
    formatError(`the TSTInfo is not DER: ${e instanceof Error ? e.message : e}`);
  }
  const [version, policy, imprint, serial, genTime, accuracy, ordering, nonce, tsa, exts] = r.expect(
    root,
    [
      [0x02, false],
      [0x06, false],
      [0x30, false],
      [0x02, false],
      [0x18, false],
      [0x30, true],
      [0x01, true],
      [0x02, true],
      [0xa0, true],
      [0xa1, true],
    ],
    'TSTInfo',
  );
  if (r.smallInteger(version!) !== 1) formatError('unsupported TSTInfo version');
  const out: TstInfo = {
    policy: r.oid(policy!),
    imprint: readImprint(r, imprint!),
    serial: r.content(serial!),
    genTime: readTime(r, genTime!),
    ordering: ordering ? r.buf[ordering.contentStart] !== 0 : false,
  };
  if (out.serial.length === 0 || out.serial.length > 21) formatError('TSTInfo serial number of bad length');
  if (out.serial[0]! & 0x80) formatError('negative TSTInfo serial number');
  if (accuracy) out.accuracy = readAccuracy(r, accuracy);
  if (nonce) out.nonce = r.content(nonce);
  if (tsa) {
    const names = r.children(tsa);
    if (names.length !== 1) formatError('malformed TSTInfo tsa');
    checkGeneralName(r, names[0]!);
    out.tsaName = r.slice(names[0]!);
  }
  if (exts) checkExtensions(r, exts);
  return out;
}

/** A GeneralName (RFC 5280 4.2.1.6): one of its nine choices, each with its own tag and form. */
function checkGeneralName(r: BerReader, n: BerNode): void {
  const ok =
    n.tag === 0xa0 || // otherName: SEQUENCE { type-id, [0] EXPLICIT value }
    n.tag === 0x81 || // rfc822Name
    n.tag === 0x82 || // dNSName
    n.tag === 0xa3 || // x400Address
    n.tag === 0xa4 || // directoryName: [4] EXPLICIT Name
    n.tag === 0xa5 || // ediPartyName
    n.tag === 0x86 || // uniformResourceIdentifier
    n.tag === 0x87 || // iPAddress
    n.tag === 0x88; // registeredID
  if (!ok) formatError('malformed TSTInfo tsa: not a GeneralName');
  if (n.tag === 0xa4) {
    const kids = r.children(n);
    if (kids.length !== 1 || kids[0]!.tag !== 0x30) formatError('malformed TSTInfo tsa: bad directoryName');
    for (const rdn of r.children(kids[0]!)) {
      if (rdn.tag !== 0x31) formatError('malformed TSTInfo tsa: bad directoryName');
      const atvs = r.children(rdn);
      if (atvs.length === 0) formatError('malformed TSTInfo tsa: empty RelativeDistinguishedName');
      for (const atv of atvs) {
        const parts = atv.tag === 0x30 ? r.children(atv) : [];
        if (parts.length !== 2 || parts[0]!.tag !== 0x06)
          formatError('malformed TSTInfo tsa: bad AttributeTypeAndValue');
        r.oid(parts[0]!);
      }
    }
  } else if (n.tag === 0xa0) {
    const parts = r.children(n);
    if (parts.length !== 2 || parts[0]!.tag !== 0x06 || parts[1]!.tag !== 0xa0)
      formatError('malformed TSTInfo tsa: bad otherName');
    r.oid(parts[0]!);
  } else if (n.tag === 0xa5) {
    // EDIPartyName ::= SEQUENCE { nameAssigner [0] DirectoryString OPTIONAL, partyName [1] DirectoryString }
    const parts = r.children(n);
    const [assigner, party] = parts.length === 1 ? [undefined, parts[0]] : parts;
    if (parts.length > 2 || assigner?.tag !== (assigner ? 0xa0 : undefined) || party?.tag !== 0xa1)
      formatError('malformed TSTInfo tsa: bad ediPartyName');
    for (const p of [assigner, party]) {
      if (!p) continue;
      const [str, extra] = r.children(p);
      if (!str || extra || !DIRECTORY_STRING_TAGS.has(str.tag))
        formatError('malformed TSTInfo tsa: bad ediPartyName');
    }
  } else if (n.tag === 0xa3) formatError('unsupported TSTInfo tsa: x400Address');
  else if (n.tag === 0x88) r.oid({ ...n, tag: 0x06 });
}

/** DirectoryString (RFC 5280 4.1.2.4): TeletexString, PrintableString, UniversalString, UTF8String, BMPString. */
const DIRECTORY_STRING_TAGS = new Set([0x14, 0x13, 0x1c, 0x0c, 0x1e]);

/**
 * [1] IMPLICIT Extensions: SEQUENCE SIZE (1..MAX) OF SEQUENCE { extnID, critical BOOLEAN DEFAULT
 * FALSE, extnValue OCTET STRING }. None is understood, so a critical one is refused.
 */
function checkExtensions(r: BerReader, n: BerNode): void {
  const list = r.children(n);
  if (list.length === 0) formatError('empty TSTInfo extensions');
  for (const ext of list) {
    if (ext.tag !== 0x30) formatError('malformed TSTInfo extension');
    const parts = r.children(ext);
    let i = 0;
    const id = r.oid(parts[i++] ?? formatError('malformed TSTInfo extension'));
    let critical = false;
    if (parts[i]?.tag === 0x01) critical = r.buf[parts[i++]!.contentStart] !== 0;
    if (parts[i++]?.tag !== 0x04 || i !== parts.length) formatError('malformed TSTInfo extension');
    if (critical) formatError(`unsupported critical TSTInfo extension ${id}`);
  }
}

function readImprint(r: BerReader, n: BerNode): MessageImprint {
  const [alg, hashed] = r.expect(
    n,
    [
      [0x30, false],
      [0x04, false],
    ],
    'MessageImprint',
  );
  return { algorithm: readHashAlgorithm(r, alg!, 'MessageImprint'), digest: r.content(hashed!) };
}

function readAccuracy(r: BerReader, n: BerNode): NonNullable<TstInfo['accuracy']> {
  const [seconds, millis, micros] = r.expect(
    n,
    [
      [0x02, true],
      [0x80, true],
      [0x81, true],
    ],
    'Accuracy',
  );
  const small = (x: BerNode) => {
    const c = r.content(x);
    if (c.length === 0 || c.length > 4 || c[0]! & 0x80) formatError('malformed Accuracy');
    return c.readUIntBE(0, c.length);
  };
  const out: NonNullable<TstInfo['accuracy']> = {};
  if (seconds) out.seconds = small(seconds);
  if (millis) out.millis = small(millis);
  if (micros) out.micros = small(micros);
  return out;
}

export interface ParsedTimeStampToken {
  tstInfo: TstInfo;
  signedData: ParsedSignedData;
  /** Certificates embedded in the token. */
  certificates: Buffer[];
}

/** Parses a TimeStampToken (ContentInfo with SignedData of a TSTInfo); no verification. Throws Asn1FormatError. */
export function parseTimeStampToken(der: Uint8Array): ParsedTimeStampToken {
  const signedData = parseSignedData(der);
  if (signedData.eContentType !== OID.tstInfo)
    formatError('not a time-stamp token: eContentType is not TSTInfo');
  if (!signedData.eContent) formatError('a time-stamp token without its TSTInfo');
  if (signedData.signerInfos.length !== 1)
    formatError('a time-stamp token must carry exactly one signature (RFC 3161 2.4.2)');
  return { tstInfo: parseTstInfo(signedData.eContent!), signedData, certificates: signedData.certificates };
}

export interface TimeStampVerification {
  valid: boolean;
  /** Why not valid: a CMS sub-indication, CHAIN_CONSTRAINTS_FAILURE (TSA key usage) or GENERIC (nonce). */
  subIndication?: SubIndication;
  message: string;
  genTime?: Date;
  /** serialNumber INTEGER content octets. */
  serial?: Buffer;
  policy?: string;
  imprint?: MessageImprint;
  nonce?: Buffer;
  accuracy?: TstInfo['accuracy'];
  ordering?: boolean;
  tsaName?: Buffer;
  /** The certificate that signed the token, for the caller to validate (path, revocation). */
  tsaCertificate?: Buffer;
  /** Certificates embedded in the token. */
  certificates: Buffer[];
}

export interface VerifyTimeStampTokenOptions {
  /** The imprint the token must carry. */
  expectedImprint?: MessageImprint;
  /** Or: the data that was time-stamped; hashed with the token's own imprint algorithm. */
  data?: Uint8Array;
  /** The nonce (INTEGER content octets) the token must echo. */
  expectedNonce?: Buffer;
  /** Extra certificates to find the TSA certificate in (when the token does not embed it). */
  certificates?: readonly Buffer[];
}

/**
 * Verifies a TimeStampToken cryptographically: a SignedData with exactly one SignerInfo over a
 * TSTInfo, with the content-type, message-digest and ESS signing-certificate (v1 or v2) signed
 * attributes, a signature that verifies with the TSA certificate, that certificate carrying the
 * extended key usage id-kp-timeStamping alone and critical (RFC 3161 2.3), and, when asked, the
 * expected imprint and nonce. Never throws on bad input: `valid` is false with a message.
 */
export function verifyTimeStampToken(
  tokenDer: Uint8Array,
  opts: VerifyTimeStampTokenOptions = {},
): TimeStampVerification {
  let token: ParsedTimeStampToken;
  try {
    token = parseTimeStampToken(tokenDer);
  } catch (e) {
    if (e instanceof Asn1FormatError || e instanceof DerError)
      return { valid: false, subIndication: 'FORMAT_FAILURE', message: e.message, certificates: [] };
    throw e;
  }
  const t = token.tstInfo;
  const result: TimeStampVerification = {
    valid: false,
    message: '',
    genTime: t.genTime,
    serial: t.serial,
    policy: t.policy,
    imprint: t.imprint,
    nonce: t.nonce,
    accuracy: t.accuracy,
    ordering: t.ordering,
    tsaName: t.tsaName,
    certificates: token.certificates,
  };
  const fail = (message: string, subIndication: SubIndication = 'FORMAT_FAILURE') => ({
    ...result,
    valid: false,
    subIndication,
    message,
  });

  const sd = token.signedData;
  const si = sd.signerInfos[0]!;
  const signer = verifySignerInfo(sd, si, sd.eContent!, [...sd.certificates, ...(opts.certificates ?? [])]);
  if (signer.signerCertificate) result.tsaCertificate = signer.signerCertificate;
  if (!signer.ok) return fail(`time-stamp token: ${signer.message}`, signer.subIndication);
  if (!signer.signingCertificateAttribute)
    return fail('time-stamp token without the ESS signing-certificate attribute (RFC 3161 2.4.2, RFC 5816)');

  let tsaCert: CertificateInfo;
  try {
    tsaCert = certificateInfo(signer.signerCertificate!);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  const eku = timeStampingEku(tsaCert);
  if (eku !== true) return fail(`TSA certificate: ${eku}`, 'CHAIN_CONSTRAINTS_FAILURE');

  const expected =
    opts.expectedImprint ??
    (opts.data
      ? { algorithm: t.imprint.algorithm, digest: hash(t.imprint.algorithm, opts.data) }
      : undefined);
  if (expected) {
    if (expected.algorithm !== t.imprint.algorithm)
      return fail(`the token imprint uses ${t.imprint.algorithm}, not ${expected.algorithm}`, 'HASH_FAILURE');
    if (!expected.digest.equals(t.imprint.digest))
      return fail('the token imprint does not match the time-stamped data', 'HASH_FAILURE');
  }
  if (opts.expectedNonce && !t.nonce?.equals(opts.expectedNonce))
    return fail('the token does not echo the request nonce', 'GENERIC');
  return { ...result, valid: true, message: 'the time-stamp token is cryptographically valid' };
}

/**
 * RFC 3161 2.3: the TSA certificate has exactly one extended key usage, id-kp-timeStamping, and the
 * extension is critical. Returns true or the reason it fails.
 */
export function timeStampingEku(cert: CertificateInfo): true | string {
  const c = cert.certificate;
  // The certificate parser refuses a repeated or malformed extension, so there is at most one.
  if (!c.extKeyUsage) return 'no extendedKeyUsage extension';
  if (c.extKeyUsage.length !== 1 || c.extKeyUsage[0] !== OID.timeStamping)
    return 'the extended key usage is not id-kp-timeStamping alone';
  if (!c.critical.has(OID.extKeyUsage)) return 'the extendedKeyUsage extension is not critical';
  return true;
}
