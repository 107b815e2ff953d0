// Streaming CRL builder (RFC 5280 section 5).
//
// A CRL of a million entries is ~40-50 MB of DER. Entries are encoded one by one straight into
// ~1 MiB chunk buffers as they arrive from the database, so no object per entry outlives its
// iteration; only the chunks (external memory) are kept. Once the entries are exhausted the total
// length is known, the TBSCertList header and tail are written around the chunks, and the signer
// hashes the chunk list without it being concatenated here.

import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import {
  bitString,
  DerError,
  explicit,
  header,
  implicitConstructed,
  implicitPrimitive,
  integer,
  octetString,
  oid,
  readTlv,
  sequence,
  TRUE,
  x509Time,
} from './der.ts';
import { OID } from './oids.ts';
import { type Signer, signatureAlgorithmIdentifier } from './signer.ts';

/** One revoked certificate, as a row from the database. */
export interface RevokedEntry {
  /**
   * The certificate serial number as DER INTEGER content octets: minimal, positive (so a 0x00
   * prefix when the top bit of the magnitude is set), magnitude at most 20 octets.
   * `integerContent()` from der.ts turns a magnitude into this form.
   */
  serial: Buffer;
  /** revocationDate; fractional seconds are dropped. UTCTime through 2049, GeneralizedTime after. */
  revokedAt: Date;
  /**
   * CRLReason (RFC 5280 5.3.1): 1..10 except 7. Omitted or 0 (unspecified) writes no reasonCode
   * extension, as RFC 5280 recommends. 8 (removeFromCRL) is only allowed in a delta CRL.
   */
  reason?: number;
}

export interface CrlParams {
  /** The issuing CA's subject Name (DER), used verbatim as the CRL issuer; must byte-match the CA certificate. */
  issuerNameDer: Buffer;
  /** keyIdentifier of the CA key (its certificate's subjectKeyIdentifier). */
  authorityKeyId: Buffer;
  /** cRLNumber, 0 <= n < 2^159 (at most 20 octets). */
  crlNumber: bigint;
  thisUpdate: Date;
  /** Must be later than thisUpdate. */
  nextUpdate: Date;
  /** When set, a delta CRL: a critical deltaCRLIndicator naming this base CRL number (< crlNumber). */
  deltaOf?: bigint;
  /** On a full CRL only: a non-critical FreshestCRL extension pointing at the delta CRL at this URL. */
  freshestCrlUrl?: string;
  /** A pre-encoded IssuingDistributionPoint (the extnValue contents, a SEQUENCE); written critical. */
  issuingDistributionPoint?: Buffer;
}

/** A built CRL as a list of buffers whose concatenation is the CertificateList DER. */
export interface CrlChunks {
  chunks: Buffer[];
  /** Total length in bytes of all chunks. */
  length: number;
}

export class CrlError extends Error {
  override name = 'CrlError';
}

const CHUNK_SIZE = 1 << 20;
/** Largest encoded entry: SEQUENCE hdr 2 + INTEGER 2+21 + GeneralizedTime 2+15 + reasonCode extensions 14. */
const MAX_ENTRY = 56;
/** Content octets of a CRLNumber may not exceed 20 (RFC 5280 5.2.3). */
const MAX_CRL_NUMBER = 1n << 159n;

/**
 * Builds and signs a CRL and returns the CertificateList DER as one Buffer. For large CRLs prefer
 * {@link buildCrlChunks}, which avoids the final copy.
 */
export async function buildCrl(
  signer: Signer,
  params: CrlParams,
  entries: AsyncIterable<RevokedEntry> | Iterable<RevokedEntry>,
): Promise<Buffer> {
  const { chunks, length } = await buildCrlChunks(signer, params, entries);
  return Buffer.concat(chunks, length);
}

/**
 * Builds and signs a CRL, streaming `entries` (emitted in the order given; duplicates are not
 * detected) into ~1 MiB chunks. Returns the CertificateList DER as chunks, e.g. for
 * `filehandle.writev(chunks)` or `Readable.from(chunks)`. When `entries` is a synchronous iterable
 * the event loop is given a turn after each chunk, so a large CRL does not stall a server.
 */
export async function buildCrlChunks(
  signer: Signer,
  params: CrlParams,
  entries: AsyncIterable<RevokedEntry> | Iterable<RevokedEntry>,
): Promise<CrlChunks> {
  const isDelta = params.deltaOf !== undefined;
  const extensions = crlExtensions(params);
  const sigAlg = signatureAlgorithmIdentifier(signer.algorithm);
  const prefix = Buffer.concat([
    integer(1), // v2
    sigAlg,
    checkedName(params.issuerNameDer),
    x509Time(params.thisUpdate),
    x509Time(params.nextUpdate),
  ]);

  const writer = new EntryWriter(isDelta);
  if (Symbol.iterator in entries) {
    for (const e of entries) {
      if (writer.add(e)) await yieldToEventLoop();
    }
  } else {
    for await (const e of entries) writer.add(e);
  }
  const body = writer.finish();

  const revokedHeader = body.length > 0 ? header(0x30, body.length) : Buffer.alloc(0);
  const tbsContentLength = prefix.length + revokedHeader.length + body.length + extensions.length;
  const tbsHead = Buffer.concat([header(0x30, tbsContentLength), prefix, revokedHeader]);
  const tbs = [tbsHead, ...body.chunks, extensions];
  const signature = bitString(await signer.sign(tbs));
  const tbsLength = tbsHead.length + body.length + extensions.length;
  const outerContentLength = tbsLength + sigAlg.length + signature.length;
  const outerHeader = header(0x30, outerContentLength);
  return {
    chunks: [outerHeader, ...tbs, sigAlg, signature],
    length: outerHeader.length + outerContentLength,
  };
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function checkedName(der: Buffer): Buffer {
  let t: ReturnType<typeof readTlv>;
  try {
    t = readTlv(der, 0);
  } catch (e) {
    throw new CrlError(`issuerNameDer is not DER: ${(e as Error).message}`);
  }
  if (t.tag !== 0x30 || t.end !== der.length)
    throw new CrlError('issuerNameDer must be exactly one SEQUENCE');
  return der;
}

function extension(oidDotted: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(oidDotted), TRUE, octetString(value))
    : sequence(oid(oidDotted), octetString(value));
}

function crlNumberInteger(n: bigint, what: string): Buffer {
  if (n < 0n || n >= MAX_CRL_NUMBER) throw new CrlError(`${what} out of range (0 <= n < 2^159): ${n}`);
  return integer(n);
}

/** crlExtensions [0] EXPLICIT Extensions, encoded. */
function crlExtensions(p: CrlParams): Buffer {
  if (!(p.thisUpdate instanceof Date) || Number.isNaN(p.thisUpdate.getTime()))
    throw new CrlError('thisUpdate is not a valid Date');
  if (!(p.nextUpdate instanceof Date) || Number.isNaN(p.nextUpdate.getTime()))
    throw new CrlError('nextUpdate is not a valid Date');
  if (p.nextUpdate.getTime() <= p.thisUpdate.getTime())
    throw new CrlError('nextUpdate must be after thisUpdate');
  if (p.authorityKeyId.length === 0) throw new CrlError('authorityKeyId is empty');

  const exts: Buffer[] = [
    extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, p.authorityKeyId))),
    extension(OID.cRLNumber, false, crlNumberInteger(p.crlNumber, 'crlNumber')),
  ];
  if (p.deltaOf !== undefined) {
    if (p.deltaOf >= p.crlNumber) throw new CrlError('deltaOf (the base CRL number) must be below crlNumber');
    exts.push(extension(OID.deltaCRLIndicator, true, crlNumberInteger(p.deltaOf, 'deltaOf')));
  }
  if (p.freshestCrlUrl !== undefined) {
    // RFC 5280 5.2.6: the freshest CRL extension MUST NOT appear in delta CRLs.
    if (p.deltaOf !== undefined) throw new CrlError('freshestCrlUrl is not allowed on a delta CRL');
    if (!/^[\x21-\x7e]+$/.test(p.freshestCrlUrl))
      throw new CrlError('freshestCrlUrl must be printable ASCII');
    // CRLDistributionPoints: SEQUENCE OF DistributionPoint { distributionPoint [0] { fullName [0] { [6] URI } } }
    const uri = implicitPrimitive(6, Buffer.from(p.freshestCrlUrl, 'ascii'));
    const dp = sequence(implicitConstructed(0, implicitConstructed(0, uri)));
    exts.push(extension(OID.freshestCRL, false, sequence(dp)));
  }
  if (p.issuingDistributionPoint !== undefined) {
    const idp = p.issuingDistributionPoint;
    let ok = false;
    try {
      const t = readTlv(idp, 0);
      ok = t.tag === 0x30 && t.end === idp.length;
    } catch (e) {
      if (!(e instanceof DerError)) throw e;
    }
    if (!ok) throw new CrlError('issuingDistributionPoint must be exactly one DER SEQUENCE');
    exts.push(extension(OID.issuingDistributionPoint, true, idp));
  }
  return explicit(0, sequence(...exts));
}

/** Appends encoded revokedCertificates entries to fixed-size chunks. */
class EntryWriter {
  private readonly done: Buffer[] = [];
  private buf = Buffer.allocUnsafe(CHUNK_SIZE);
  private pos = 0;
  private doneLength = 0;

  constructor(private readonly isDelta: boolean) {}

  /** Encodes one entry; returns true when a chunk was just completed. */
  add(e: RevokedEntry): boolean {
    const serial = e.serial;
    checkSerial(serial);
    const reason = e.reason ?? 0;
    if (reason !== 0) checkReason(reason, this.isDelta);

    let flushed = false;
    if (this.pos + MAX_ENTRY > CHUNK_SIZE) {
      this.flush();
      flushed = true;
    }
    const b = this.buf;
    const start = this.pos;
    let p = start + 2;
    // userCertificate INTEGER
    b[p++] = 0x02;
    b[p++] = serial.length;
    for (let i = 0; i < serial.length; i++) b[p++] = serial[i]!;
    // revocationDate Time
    p = writeTime(b, p, e.revokedAt);
    // crlEntryExtensions: SEQUENCE { SEQUENCE { reasonCode, OCTET STRING { ENUMERATED reason } } }
    if (reason !== 0) {
      REASON_EXTENSIONS.copy(b, p);
      p += REASON_EXTENSIONS.length;
      b[p - 1] = reason;
    }
    b[start] = 0x30;
    b[start + 1] = p - start - 2; // always < 0x80, see MAX_ENTRY
    this.pos = p;
    return flushed;
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.done.push(this.buf.subarray(0, this.pos));
    this.doneLength += this.pos;
    this.buf = Buffer.allocUnsafe(CHUNK_SIZE);
    this.pos = 0;
  }

  /** The encoded entries (the content of revokedCertificates). */
  finish(): CrlChunks {
    if (this.pos > 0) {
      // Copy the partly filled last chunk so the unused tail of its 1 MiB is not kept alive.
      const last = Buffer.from(this.buf.subarray(0, this.pos));
      this.done.push(last);
      this.doneLength += last.length;
    }
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    return { chunks: this.done, length: this.doneLength };
  }
}

// 30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 <reason>
const REASON_EXTENSIONS = Buffer.concat([
  Buffer.from([0x30, 0x0c, 0x30, 0x0a]),
  oid(OID.reasonCode),
  Buffer.from([0x04, 0x03, 0x0a, 0x01, 0x00]),
]);
if (REASON_EXTENSIONS.length !== 14) throw new Error('reasonCode template has the wrong length');

function checkSerial(s: Buffer): void {
  const n = s.length;
  if (n === 0) throw new CrlError('empty serial');
  const b0 = s[0]!;
  if (b0 & 0x80) throw new CrlError(`serial ${s.toString('hex')} is negative`);
  if (n > 1 && b0 === 0 && !(s[1]! & 0x80))
    throw new CrlError(`serial ${s.toString('hex')} is not minimal DER INTEGER content`);
  if (n > 21 || (n === 21 && b0 !== 0))
    throw new CrlError(`serial ${s.toString('hex')} is longer than 20 octets`);
}

function checkReason(r: number, isDelta: boolean): void {
  if (!Number.isInteger(r) || r < 0 || r > 10 || r === 7) throw new CrlError(`invalid CRLReason ${r}`);
  if (r === 8 && !isDelta) throw new CrlError('removeFromCRL (8) may only appear in a delta CRL');
}

/** Writes a Time (UTCTime 1950-2049, else GeneralizedTime) at `p`; returns the new offset. */
function writeTime(b: Buffer, p: number, d: Date): number {
  const ms = d instanceof Date ? d.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new CrlError('revokedAt is not a valid Date');
  const y = d.getUTCFullYear();
  if (y >= 1950 && y < 2050) {
    b[p++] = 0x17;
    b[p++] = 13;
    p = two(b, p, y % 100);
  } else {
    if (y < 0 || y > 9999) throw new CrlError(`revokedAt year ${y} cannot be encoded`);
    b[p++] = 0x18;
    b[p++] = 15;
    p = two(b, p, Math.floor(y / 100));
    p = two(b, p, y % 100);
  }
  p = two(b, p, d.getUTCMonth() + 1);
  p = two(b, p, d.getUTCDate());
  p = two(b, p, d.getUTCHours());
  p = two(b, p, d.getUTCMinutes());
  p = two(b, p, d.getUTCSeconds());
  b[p++] = 0x5a; // 'Z'
  return p;
}

function two(b: Buffer, p: number, n: number): number {
  b[p] = 0x30 + ((n / 10) | 0);
  b[p + 1] = 0x30 + (n % 10);
  return p + 2;
}

/** What {@link describeCrl} reports. */
export interface CrlSummary {
  crlNumber: bigint;
  /** The base CRL number, for a delta CRL. */
  deltaOf?: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Number of revokedCertificates entries. */
  count: number;
}

/**
 * Parses a CRL with the @peculiar/asn1-x509 schema, for tests and verification. Slow and
 * memory-hungry on large CRLs (several objects per entry: ~1 s for 100,000 entries); does not
 * check the signature.
 */
export function describeCrl(der: Uint8Array): CrlSummary {
  // asn1js stops at 10,000 nodes and 16 MiB by default, i.e. at a CRL of ~1,500 entries; every
  // node takes at least two bytes, so bounds derived from the input size never cut a CRL short.
  const crl = AsnConvert.parse(der, CertificateList, {
    berOptions: { maxNodes: der.length, maxContentLength: der.length },
  });
  const tbs = crl.tbsCertList;
  const extValue = (id: string): bigint | undefined => {
    const ext = tbs.crlExtensions?.find((x) => x.extnID === id);
    if (!ext) return undefined;
    const v = new Uint8Array(ext.extnValue.buffer);
    const t = readTlv(v, 0);
    if (t.tag !== 0x02 || t.end !== v.length) throw new CrlError(`extension ${id} is not an INTEGER`);
    return BigInt(`0x${Buffer.from(v.subarray(t.contentStart, t.end)).toString('hex') || '0'}`);
  };
  const crlNumber = extValue(OID.cRLNumber);
  if (crlNumber === undefined) throw new CrlError('CRL has no cRLNumber');
  if (!tbs.nextUpdate) throw new CrlError('CRL has no nextUpdate');
  const deltaOf = extValue(OID.deltaCRLIndicator);
  return {
    crlNumber,
    ...(deltaOf !== undefined ? { deltaOf } : {}),
    thisUpdate: tbs.thisUpdate.getTime(),
    nextUpdate: tbs.nextUpdate.getTime(),
    count: tbs.revokedCertificates?.length ?? 0,
  };
}
