// Minimal DER writer and reader.
//
// The hot paths (issuing a certificate, answering OCSP, streaming a CRL of a million entries) build
// the same few structures over and over; doing that with schema objects costs more than the RSA
// signature itself. Everything here is plain byte assembly, checked against openssl in the tests.
// Parsing of untrusted input goes through the @peculiar/asn1-* schemas; `readTlv` is only used to
// slice out the exact signed bytes of something a schema has already accepted.

export class DerError extends Error {
  override name = 'DerError';
}

/** Encodes a DER length. */
export function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  let n = length;
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Tag and length only, for structures whose content is streamed separately. */
export function header(tag: number, contentLength: number): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(contentLength)]);
}

export function tlv(tag: number, ...content: readonly Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([header(tag, body.length), body]);
}

export const sequence = (...content: readonly Buffer[]): Buffer => tlv(0x30, ...content);
export const set = (...content: readonly Buffer[]): Buffer => tlv(0x31, ...content);
/** [n] EXPLICIT (constructed context-specific). */
export const explicit = (n: number, ...content: readonly Buffer[]): Buffer => tlv(0xa0 | n, ...content);
/** [n] IMPLICIT over a primitive value. */
export const implicitPrimitive = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);
/** [n] IMPLICIT over a constructed value (SEQUENCE etc.). */
export const implicitConstructed = (n: number, ...content: readonly Buffer[]): Buffer =>
  tlv(0xa0 | n, ...content);

export const NULL = Buffer.from([0x05, 0x00]);
export const TRUE = Buffer.from([0x01, 0x01, 0xff]);

export const octetString = (b: Buffer): Buffer => tlv(0x04, b);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const printableString = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'ascii'));
export const ia5String = (s: string): Buffer => tlv(0x16, Buffer.from(s, 'ascii'));
export const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.from([unusedBits]), b);
export const enumerated = (n: number): Buffer => tlv(0x0a, minimalUnsigned(BigInt(n)));

/** INTEGER from the big-endian magnitude of a non-negative number (adds 0x00 when the top bit is set). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  return tlv(0x02, integerContent(magnitude));
}

/** The content octets of a DER INTEGER for a non-negative magnitude. */
export function integerContent(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  if (trimmed.length === 0) return Buffer.from([0]);
  return trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : Buffer.from(trimmed);
}

export function integer(n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v < 0n) throw new DerError('negative INTEGER not supported');
  return tlv(0x02, integerContent(minimalUnsigned(v)));
}

function minimalUnsigned(v: bigint): Buffer {
  if (v === 0n) return Buffer.from([0]);
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, 'hex');
}

const oidCache = new Map<string, Buffer>();

export function oid(dotted: string): Buffer {
  const hit = oidCache.get(dotted);
  if (hit) return hit;
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new DerError(`bad OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n))
    throw new DerError(`bad OID ${dotted}`);
  const body: number[] = [];
  const push = (arc: bigint) => {
    const chunk: number[] = [Number(arc & 0x7fn)];
    arc >>= 7n;
    while (arc > 0n) {
      chunk.unshift(Number((arc & 0x7fn) | 0x80n));
      arc >>= 7n;
    }
    body.push(...chunk);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  const out = tlv(0x06, Buffer.from(body));
  oidCache.set(dotted, out);
  return out;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** GeneralizedTime in UTC with whole seconds (RFC 5280 4.1.2.5.2). */
export function generalizedTime(d: Date): Buffer {
  const s = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return tlv(0x18, Buffer.from(s, 'ascii'));
}

/** UTCTime (RFC 5280 4.1.2.5.1). */
export function utcTime(d: Date): Buffer {
  const s = `${pad(d.getUTCFullYear() % 100)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
export function x509Time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  return y >= 1950 && y < 2050 ? utcTime(d) : generalizedTime(d);
}

export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

/** Reads one TLV at `offset`; throws DerError on truncation or indefinite lengths. */
export function readTlv(buf: Uint8Array, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated DER');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags not supported');
  let pos = offset + 1;
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) length = first;
  else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError('indefinite length not allowed in DER');
    if (n > 4) throw new DerError('DER length too large');
    if (pos + n > buf.length) throw new DerError('truncated DER');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
  }
  const end = pos + length;
  if (end > buf.length) throw new DerError('truncated DER');
  return { tag, start: offset, contentStart: pos, end };
}

/** The children of a constructed TLV. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const child = readTlv(buf, pos);
    if (child.end > parent.end) throw new DerError('child overruns parent');
    out.push(child);
    pos = child.end;
  }
  return out;
}

export const slice = (buf: Uint8Array, t: Tlv): Buffer => Buffer.from(buf.subarray(t.start, t.end));
export const content = (buf: Uint8Array, t: Tlv): Buffer => Buffer.from(buf.subarray(t.contentStart, t.end));
