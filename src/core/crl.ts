// Streaming CRL builder (RFC 5280 section 5).
//
// A CRL of a million entries is ~40-50 MB of DER. Entries are encoded one by one, as they arrive
// from the database, straight into ONE buffer that grows in place: a resizable ArrayBuffer reserves
// address space up front and only the pages written to take memory, so the CRL is never copied,
// neither while it grows nor at the end. No object per entry outlives its iteration. Once the
// entries are exhausted the total length is known: the TBSCertList header is written into the room
// left before the entries, the extensions after them, the signer hashes the TBSCertList in place,
// and the signature goes at the end. The result is a view of that one buffer.

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
   * `integerContent()` from der.ts turns a magnitude into this form. Or the same octets as
   * lowercase hex, as the store keeps them (no Buffer per row).
   */
  serial: Buffer | string;
  /**
   * revocationDate (a Date, or milliseconds since the epoch); fractional seconds are dropped.
   * UTCTime through 2049, GeneralizedTime after.
   */
  revokedAt: Date | number;
  /**
   * CRLReason (RFC 5280 5.3.1): 1..10 except 7. Omitted or 0 (unspecified) writes no reasonCode
   * extension, as RFC 5280 recommends. 8 (removeFromCRL) is only allowed in a delta CRL.
   */
  reason?: number;
}

/**
 * Entries one by one (sync or async), or, from an async source, in batches (arrays): a database read
 * in pages hands over a page per step instead of paying one async step per row.
 */
export type RevokedEntries = Iterable<RevokedEntry> | AsyncIterable<RevokedEntry | readonly RevokedEntry[]>;

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
  /** Views of one contiguous buffer, in order: the headers, the entries (≤ 1 MiB each), the tail. */
  chunks: Buffer[];
  /** Total length in bytes of all chunks. */
  length: number;
}

export class CrlError extends Error {
  override name = 'CrlError';
}

/** The event loop gets a turn after about this many bytes of entries (~5,500 entries, a few ms). */
const YIELD_EVERY = 256 << 10;
/** The TBSCertList goes to the signer in parts of this size (a PKCS#11 token takes it in parts). */
const SIGN_PART = 1 << 20;
/**
 * The buffer starts at this size and doubles up to GROW_STEP, then grows by GROW_STEP at a time
 * (committing pages, not copying). Starting small matters for the many small CRLs of partitions and
 * deltas: committing 8 MiB up front cost ~14 ms per CRL, ten times the signature.
 */
const INITIAL_SIZE = 64 << 10;
/** The buffer grows by at most this much at a time. */
const GROW_STEP = 8 << 20;
/** Largest CRL: the address space reserved for the buffer (only what is written takes memory). */
const MAX_CRL_BYTES = 2 ** 32 - 1;
/** Largest encoded entry: SEQUENCE hdr 2 + INTEGER 2+21 + GeneralizedTime 2+15 + reasonCode extensions 14. */
const MAX_ENTRY = 56;
/** Room before the prefix for the longest Certificate and TBSCertList headers (tag + 5 length octets each). */
const HEAD_ROOM = 12;
/** Content octets of a CRLNumber may not exceed 20 (RFC 5280 5.2.3). */
const MAX_CRL_NUMBER = 1n << 159n;

/**
 * Builds and signs a CRL and returns the CertificateList DER as one Buffer (a view of the buffer
 * it was built in: no copy).
 */
export async function buildCrl(signer: Signer, params: CrlParams, entries: RevokedEntries): Promise<Buffer> {
  return (await build(signer, params, entries)).der;
}

/**
 * Builds and signs a CRL, streaming `entries` (emitted in the order given; duplicates are not
 * detected). Returns the CertificateList DER as chunks, e.g. for `filehandle.writev(chunks)` or
 * `Readable.from(chunks)`. The event loop is given a turn after every ~256 KiB of entries, whether
 * `entries` is synchronous or not, so a large CRL does not stall a server.
 */
export async function buildCrlChunks(
  signer: Signer,
  params: CrlParams,
  entries: RevokedEntries,
): Promise<CrlChunks> {
  const { der, parts } = await build(signer, params, entries);
  return { chunks: parts, length: der.length };
}

async function build(
  signer: Signer,
  params: CrlParams,
  entries: RevokedEntries,
): Promise<{ der: Buffer; parts: Buffer[] }> {
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

  // [HEAD_ROOM][prefix][revokedCertificates header][entries…][extensions][sigAlg][signature]
  const start = HEAD_ROOM + prefix.length + 6;
  const w = new EntryWriter(isDelta, start);
  let nextYield = start + YIELD_EVERY;
  const turn = async () => {
    if (w.pos >= nextYield) {
      nextYield = w.pos + YIELD_EVERY;
      await yieldToEventLoop();
    }
  };
  if (Symbol.iterator in entries) {
    for (const e of entries) {
      w.add(e);
      if (w.pos >= nextYield) await turn();
    }
  } else {
    for await (const item of entries) {
      if (Array.isArray(item)) for (const e of item as readonly RevokedEntry[]) w.add(e);
      else w.add(item as RevokedEntry);
      if (w.pos >= nextYield) await turn();
    }
  }
  const entriesEnd = w.pos;
  const entriesLength = entriesEnd - start;

  // The TBSCertList head goes right before the entries, its tail right after them.
  const revokedHeader = entriesLength > 0 ? header(0x30, entriesLength) : Buffer.alloc(0);
  const tbsContentLength = prefix.length + revokedHeader.length + entriesLength + extensions.length;
  const tbsHead = Buffer.concat([header(0x30, tbsContentLength), prefix, revokedHeader]);
  const tbsStart = start - tbsHead.length;
  w.writeAt(tbsStart, tbsHead);
  w.append(extensions);
  const tbsEnd = w.pos;
  const signature = bitString(await signer.sign(w.views(tbsStart, tbsEnd)));
  w.append(sigAlg);
  w.append(signature);
  const outerHeader = header(0x30, tbsEnd - tbsStart + sigAlg.length + signature.length);
  const derStart = tbsStart - outerHeader.length;
  w.writeAt(derStart, outerHeader);
  const der = w.view(derStart, w.pos);
  const parts = [
    w.view(derStart, start),
    ...(entriesLength > 0 ? w.views(start, entriesEnd) : []),
    w.view(entriesEnd, tbsEnd),
    w.view(tbsEnd, tbsEnd + sigAlg.length),
    w.view(tbsEnd + sigAlg.length, w.pos),
  ];
  return { der, parts };
}

/** The buffers buildCrl/buildCrlChunks built, which releaseCrl may free. */
const built = new WeakSet<ArrayBuffer>();

/**
 * Frees the memory of a CRL from {@link buildCrl} or {@link buildCrlChunks} at once, without waiting
 * for the garbage collector: `der` and every other view of it are empty afterwards. For a caller
 * that has handed the CRL over (the store copies it) before the next large allocation.
 */
export function releaseCrl(der: Buffer): void {
  const ab = der.buffer as ResizableArrayBuffer;
  if (built.has(ab)) ab.resize(0);
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

/**
 * An IssuingDistributionPoint (RFC 5280 5.2.5) for `CrlParams.issuingDistributionPoint`: the
 * distributionPoint fullName is the one URI, which must equal the URI in the cRLDistributionPoints
 * of the certificates the CRL covers (the match relying parties make, RFC 5280 6.3.3 (b)(2)(i));
 * onlyContainsUserCerts when the CRL covers end-entity certificates only. A delta CRL carries the
 * same extension as its base CRL (RFC 5280 5.2.4).
 */
export function issuingDistributionPoint(o: { uri: string; onlyContainsUserCerts?: boolean }): Buffer {
  if (!/^[\x21-\x7e]+$/.test(o.uri)) throw new CrlError('the distribution point URI must be printable ASCII');
  // distributionPoint [0] DistributionPointName { fullName [0] GeneralNames { [6] URI } }
  const dp = implicitConstructed(
    0,
    implicitConstructed(0, implicitPrimitive(6, Buffer.from(o.uri, 'ascii'))),
  );
  // onlyContainsUserCerts [1] IMPLICIT BOOLEAN (DEFAULT FALSE: written only when true)
  return o.onlyContainsUserCerts ? sequence(dp, implicitPrimitive(1, Buffer.from([0xff]))) : sequence(dp);
}

/** ES2024's resizable ArrayBuffer (Node.js 20 has it; the TypeScript lib here is ES2022). */
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => ResizableArrayBuffer;

/**
 * Writes revokedCertificates entries into one buffer that grows in place (a resizable ArrayBuffer:
 * growing commits more of the reserved address space, nothing is copied).
 */
class EntryWriter {
  private readonly ab: ResizableArrayBuffer;
  /** Tracks the buffer's length as it grows. */
  private readonly b: Uint8Array;
  pos: number;

  constructor(
    private readonly isDelta: boolean,
    start: number,
  ) {
    this.ab = new ResizableArrayBuffer(Math.max(start, INITIAL_SIZE), { maxByteLength: MAX_CRL_BYTES });
    built.add(this.ab);
    this.b = new Uint8Array(this.ab);
    this.pos = start;
  }

  private room(n: number): void {
    const need = this.pos + n;
    if (need <= this.ab.byteLength) return;
    if (need > MAX_CRL_BYTES) throw new CrlError('the CRL is larger than 4 GiB');
    const size = this.ab.byteLength;
    this.ab.resize(Math.min(MAX_CRL_BYTES, Math.max(need, size + Math.min(size, GROW_STEP))));
  }

  /** Encodes one entry. */
  add(e: RevokedEntry): void {
    const reason = e.reason ?? 0;
    if (reason !== 0) checkReason(reason, this.isDelta);
    this.room(MAX_ENTRY);
    const b = this.b;
    const start = this.pos;
    let p = start + 2;
    // userCertificate INTEGER
    b[p++] = 0x02;
    const serial = e.serial;
    if (typeof serial === 'string') {
      const n = writeHexSerial(b, p + 1, serial);
      b[p++] = n;
      p += n;
    } else {
      checkSerial(serial, 0, serial.length);
      b[p++] = serial.length;
      for (let i = 0; i < serial.length; i++) b[p++] = serial[i]!;
    }
    // revocationDate Time
    p = writeTime(b, p, e.revokedAt);
    // crlEntryExtensions: SEQUENCE { SEQUENCE { reasonCode, OCTET STRING { ENUMERATED reason } } }
    if (reason !== 0) {
      b.set(REASON_EXTENSIONS, p);
      p += REASON_EXTENSIONS.length;
      b[p - 1] = reason;
    }
    b[start] = 0x30;
    b[start + 1] = p - start - 2; // always < 0x80, see MAX_ENTRY
    this.pos = p;
  }

  append(bytes: Buffer): void {
    this.room(bytes.length);
    this.b.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  writeAt(offset: number, bytes: Buffer): void {
    if (offset < 0) throw new Error('CRL head room exceeded');
    this.b.set(bytes, offset);
  }

  view(from: number, to: number): Buffer {
    return Buffer.from(this.ab, from, to - from);
  }

  /** [from, to) as views of at most 1 MiB (a PKCS#11 token gets the data to sign in parts). */
  views(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    for (let p = from; p < to; p += SIGN_PART) out.push(this.view(p, Math.min(to, p + SIGN_PART)));
    return out;
  }
}

// 30 0c 30 0a 06 03 55 1d 15 04 03 0a 01 <reason>
const REASON_EXTENSIONS = Buffer.concat([
  Buffer.from([0x30, 0x0c, 0x30, 0x0a]),
  oid(OID.reasonCode),
  Buffer.from([0x04, 0x03, 0x0a, 0x01, 0x00]),
]);
if (REASON_EXTENSIONS.length !== 14) throw new Error('reasonCode template has the wrong length');

/** Checks the serial's content octets b[from, to). */
function checkSerial(b: Uint8Array, from: number, to: number): void {
  const n = to - from;
  if (n === 0) throw new CrlError('empty serial');
  const b0 = b[from]!;
  if (b0 & 0x80) throw new CrlError(`serial ${hexOf(b, from, to)} is negative`);
  if (n > 1 && b0 === 0 && !(b[from + 1]! & 0x80))
    throw new CrlError(`serial ${hexOf(b, from, to)} is not minimal DER INTEGER content`);
  if (n > 21 || (n === 21 && b0 !== 0))
    throw new CrlError(`serial ${hexOf(b, from, to)} is longer than 20 octets`);
}

const hexOf = (b: Uint8Array, from: number, to: number) => Buffer.from(b.subarray(from, to)).toString('hex');

/** Writes the serial given as lowercase hex at `p`; returns its length in octets. */
function writeHexSerial(b: Uint8Array, p: number, hex: string): number {
  const n = hex.length >> 1;
  if (hex.length !== n * 2 || n > 21) throw new CrlError(`serial ${hex} is not hex of at most 21 octets`);
  for (let i = 0; i < n; i++) {
    const hi = HEX_VALUE[hex.charCodeAt(2 * i)] ?? 16;
    const lo = HEX_VALUE[hex.charCodeAt(2 * i + 1)] ?? 16;
    if ((hi | lo) > 15) throw new CrlError(`serial ${hex} is not lowercase hex`);
    b[p + i] = (hi << 4) | lo;
  }
  checkSerial(b, p, p + n);
  return n;
}

/** Value of each lowercase hex digit by char code; 16 for anything else. */
const HEX_VALUE = Array.from({ length: 128 }, (_, c) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : 16,
);

function checkReason(r: number, isDelta: boolean): void {
  if (!Number.isInteger(r) || r < 0 || r > 10 || r === 7) throw new CrlError(`invalid CRLReason ${r}`);
  if (r === 8 && !isDelta) throw new CrlError('removeFromCRL (8) may only appear in a delta CRL');
}

/** Reused for the calendar fields of every entry's time (no Date per entry). */
const scratchDate = new Date(0);

/** Writes a Time (UTCTime 1950-2049, else GeneralizedTime) at `p`; returns the new offset. */
function writeTime(b: Uint8Array, p: number, at: Date | number): number {
  const ms = typeof at === 'number' ? at : at instanceof Date ? at.getTime() : Number.NaN;
  const d = scratchDate;
  if (Number.isNaN(d.setTime(ms))) throw new CrlError('revokedAt is not a valid Date');
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

function two(b: Uint8Array, p: number, n: number): number {
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
