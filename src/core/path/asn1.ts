// DER reading for the path-validation core.
//
// Certificates, CRLs and OCSP responses are walked directly with these helpers rather than through
// schema objects: a CRL of a million entries would otherwise become several million objects, and a
// verifier on a hot path parses a certificate per signature. Everything here works on offsets into
// the original buffer; nothing is copied until a value is actually needed.
//
// Every malformation becomes a PathParseError, the one error type this module throws for bad input.

/** Input that is not the DER structure it claims to be. */
export class PathParseError extends Error {
  override name = 'PathParseError';
  constructor(
    message: string,
    /** What was being parsed: 'certificate', 'crl', 'ocsp', … */
    readonly what: string = 'input',
  ) {
    super(message);
  }
}

/** One TLV: offsets into the buffer it was read from. */
export interface Node {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  cs: number;
  /** Offset just past the content. */
  end: number;
}

export const fail = (message: string, what = 'input'): never => {
  throw new PathParseError(message, what);
};

/** Reads the TLV at `offset`, which must end at or before `limit`. */
export function node(buf: Uint8Array, offset: number, limit: number = buf.length): Node {
  if (offset + 2 > limit) fail('truncated DER');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('multi-byte tags are not supported');
  let pos = offset + 1;
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) length = first;
  else {
    const n = first & 0x7f;
    if (n === 0) fail('indefinite length is not DER');
    if (n > 4) fail('DER length too large');
    if (pos + n > limit) fail('truncated DER');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
  }
  const end = pos + length;
  if (end > limit) fail('truncated DER');
  return { tag, start: offset, cs: pos, end };
}

/** The single TLV that must fill `buf` exactly. */
export function root(buf: Uint8Array, tag: number, what: string): Node {
  const n = node(buf, 0);
  if (n.tag !== tag) fail(`${what}: unexpected tag 0x${n.tag.toString(16)}`, what);
  if (n.end !== buf.length) fail(`${what}: trailing bytes after the structure`, what);
  return n;
}

/** Children of a constructed TLV. */
export function kids(buf: Uint8Array, parent: Node): Node[] {
  if ((parent.tag & 0x20) === 0) fail('expected a constructed value');
  const out: Node[] = [];
  let pos = parent.cs;
  while (pos < parent.end) {
    const child = node(buf, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export function expectTag(n: Node | undefined, tag: number, what: string): Node {
  if (!n) return fail(`${what} is missing`);
  if (n.tag !== tag) fail(`${what}: expected tag 0x${tag.toString(16)}, found 0x${n.tag.toString(16)}`);
  return n;
}

export const bytes = (buf: Uint8Array, n: Node): Buffer =>
  Buffer.from(buf.buffer, buf.byteOffset + n.cs, n.end - n.cs);
export const whole = (buf: Uint8Array, n: Node): Buffer =>
  Buffer.from(buf.buffer, buf.byteOffset + n.start, n.end - n.start);

// ---------------------------------------------------------------------------------------------
// Primitive values

const oidMemo = new Map<string, string>();

/** Dotted form of an OBJECT IDENTIFIER's content octets. */
export function oidOf(buf: Uint8Array, n: Node): string {
  if (n.tag !== 0x06) fail('expected an OBJECT IDENTIFIER');
  const content = bytes(buf, n);
  if (content.length === 0) fail('empty OBJECT IDENTIFIER');
  const memoKey = content.toString('latin1');
  const hit = oidMemo.get(memoKey);
  if (hit) return hit;
  const arcs: string[] = [];
  let value = 0n;
  let started = false;
  for (let i = 0; i < content.length; i++) {
    const b = content[i]!;
    if (!started && b === 0x80) fail('non-minimal OBJECT IDENTIFIER arc');
    started = true;
    value = (value << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 80n ? value / 40n : 2n;
        arcs.push(String(first), String(value - first * 40n));
      } else arcs.push(String(value));
      value = 0n;
      started = false;
    }
  }
  if (started) fail('truncated OBJECT IDENTIFIER');
  const dotted = arcs.join('.');
  if (oidMemo.size < 10_000) oidMemo.set(memoKey, dotted);
  return dotted;
}

/** INTEGER as a JavaScript number; refuses negative values and values above 2^31. */
export function smallInt(buf: Uint8Array, n: Node, tag = 0x02): number {
  if (n.tag !== tag) fail('expected an INTEGER');
  const c = bytes(buf, n);
  if (c.length === 0) fail('empty INTEGER');
  if (c[0]! & 0x80) fail('negative INTEGER where a non-negative one is required');
  if (c.length > 5 || (c.length === 5 && c[0] !== 0)) fail('INTEGER too large');
  let v = 0;
  for (const b of c) v = v * 256 + b;
  if (v > 0x7fffffff) fail('INTEGER too large');
  return v;
}

/** A non-negative INTEGER of any size. */
export function bigUint(buf: Uint8Array, n: Node): bigint {
  if (n.tag !== 0x02) fail('expected an INTEGER');
  const c = bytes(buf, n);
  if (c.length === 0) fail('empty INTEGER');
  if (c[0]! & 0x80) fail('negative INTEGER where a non-negative one is required');
  return BigInt(`0x${c.toString('hex')}`);
}

export function boolean(buf: Uint8Array, n: Node, tag = 0x01): boolean {
  if (n.tag !== tag) fail('expected a BOOLEAN');
  if (n.end - n.cs !== 1) fail('BOOLEAN of the wrong length');
  return buf[n.cs] !== 0;
}

/** BIT STRING content: the unused-bits count and the bit bytes. */
export function bitString(buf: Uint8Array, n: Node, tag = 0x03): { unused: number; bits: Buffer } {
  if (n.tag !== tag) fail('expected a BIT STRING');
  if (n.end === n.cs) fail('empty BIT STRING');
  const unused = buf[n.cs]!;
  if (unused > 7 || (unused > 0 && n.end - n.cs === 1)) fail('malformed BIT STRING');
  return { unused, bits: Buffer.from(buf.buffer, buf.byteOffset + n.cs + 1, n.end - n.cs - 1) };
}

/** A named-bit BIT STRING (KeyUsage, ReasonFlags) as a bit mask: bit i of the list is 1 << i. */
export function namedBits(buf: Uint8Array, n: Node, tag = 0x03): number {
  const { bits } = bitString(buf, n, tag);
  let mask = 0;
  for (let i = 0; i < bits.length * 8 && i < 31; i++) {
    if ((bits[i >> 3]! >> (7 - (i & 7))) & 1) mask |= 1 << i;
  }
  return mask;
}

function digits(s: string, from: number, count: number): number {
  let v = 0;
  for (let i = from; i < from + count; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) fail(`malformed time "${s}"`);
    v = v * 10 + c;
  }
  return v;
}

/**
 * UTCTime (YYMMDDHHMMSSZ, years 50-99 are 19xx) or GeneralizedTime (YYYYMMDDHHMMSS[.fff]Z), as RFC
 * 5280 4.1.2.5 requires them: UTC, with seconds.
 */
export function time(buf: Uint8Array, n: Node): Date {
  const s = Buffer.from(buf.buffer, buf.byteOffset + n.cs, n.end - n.cs).toString('latin1');
  let year: number;
  let rest: number;
  if (n.tag === 0x17) {
    if (s.length !== 13 || s[12] !== 'Z') fail(`malformed UTCTime "${s}"`);
    const yy = digits(s, 0, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = 2;
  } else if (n.tag === 0x18) {
    if (!/^\d{14}(\.\d+)?Z$/.test(s)) fail(`malformed GeneralizedTime "${s}"`);
    year = digits(s, 0, 4);
    rest = 4;
  } else return fail('expected a Time');
  const month = digits(s, rest, 2);
  const day = digits(s, rest + 2, 2);
  const hour = digits(s, rest + 4, 2);
  const minute = digits(s, rest + 6, 2);
  const second = digits(s, rest + 8, 2);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    fail(`time out of range "${s}"`);
  let ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const frac = /\.(\d+)Z$/.exec(s);
  if (frac) ms += Math.floor(Number(`0.${frac[1]}`) * 1000);
  const d = new Date(ms);
  if (d.getUTCDate() !== day) fail(`no such date "${s}"`);
  if (year < 100) d.setUTCFullYear(year);
  return d;
}

/** Decodes the directory string types; undefined for anything else. */
export function decodeString(buf: Uint8Array, n: Node): string | undefined {
  const c = bytes(buf, n);
  switch (n.tag) {
    case 0x0c: // UTF8String
      return c.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x1a: // VisibleString
    case 0x12: // NumericString
      return c.toString('latin1');
    case 0x14: // TeletexString (treated as Latin-1, as most software does)
    case 0x15: // VideotexString
      return c.toString('latin1');
    case 0x1e: {
      // BMPString: UCS-2 big-endian
      if (c.length % 2) fail('BMPString of odd length');
      const swapped = Buffer.from(c);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    case 0x1c: {
      // UniversalString: UCS-4 big-endian
      if (c.length % 4) fail('UniversalString of bad length');
      let s = '';
      for (let i = 0; i < c.length; i += 4) s += String.fromCodePoint(c.readUInt32BE(i));
      return s;
    }
    default:
      return undefined;
  }
}

/** AlgorithmIdentifier: the OID and the parameters' DER (undefined when absent). */
export interface AlgorithmId {
  oid: string;
  params?: Buffer;
  /** The whole AlgorithmIdentifier DER, for equality checks. */
  der: Buffer;
}

export function algorithm(buf: Uint8Array, n: Node): AlgorithmId {
  expectTag(n, 0x30, 'AlgorithmIdentifier');
  const [o, p, extra] = kids(buf, n);
  if (!o || extra) fail('malformed AlgorithmIdentifier');
  const id = oidOf(buf, o!);
  return p ? { oid: id, params: whole(buf, p), der: whole(buf, n) } : { oid: id, der: whole(buf, n) };
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; duplicates are refused (RFC 5280 4.2). */
export interface RawExtension {
  oid: string;
  critical: boolean;
  /** extnValue contents (the DER of the extension's own value). */
  value: Buffer;
}

export function extensions(buf: Uint8Array, list: Node, what: string): Map<string, RawExtension> {
  expectTag(list, 0x30, `${what} extensions`);
  const out = new Map<string, RawExtension>();
  for (const e of kids(buf, list)) {
    expectTag(e, 0x30, 'Extension');
    const parts = kids(buf, e);
    let i = 0;
    const id = oidOf(buf, parts[i++] ?? fail('Extension without an OID', what));
    let critical = false;
    if (parts[i]?.tag === 0x01) critical = boolean(buf, parts[i++]!);
    const v = expectTag(parts[i++], 0x04, 'extnValue');
    if (i !== parts.length) fail('malformed Extension', what);
    if (out.has(id)) fail(`${what} has the extension ${id} more than once`, what);
    out.set(id, { oid: id, critical, value: bytes(buf, v) });
  }
  return out;
}
