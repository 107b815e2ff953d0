// BER/DER reading helpers shared by the CMS and time-stamp code.
//
// CMS arrives in BER: `openssl cms -sign -stream` (and S/MIME output generally) uses indefinite
// lengths and chunked (constructed) OCTET STRINGs. The reader below walks BER structurally and
// yields exact byte offsets, so that signed bytes (signed attributes, certificates, TSTInfo) are
// always taken from the input as received, never re-encoded. Parts that must be DER (signed
// attributes, time-stamp requests) are additionally checked with `checkDer`. Leaf structures
// (certificates, extensions, algorithm identifiers) go through the @peculiar/asn1-* schemas.

import { createHash } from 'node:crypto';
import { tlv } from '../der.ts';
import { OID } from '../oids.ts';

/** Anything malformed in CMS or time-stamp input. */
export class Asn1FormatError extends Error {
  override name = 'Asn1FormatError';
}

export const formatError = (message: string): never => {
  throw new Asn1FormatError(message);
};

/** One BER TLV. For definite lengths `contentEnd === end`; for indefinite ones `end` is past the EOC. */
export interface BerNode {
  tag: number;
  start: number;
  contentStart: number;
  contentEnd: number;
  end: number;
  indefinite: boolean;
}

/** Deepest nesting accepted anywhere (real CMS with certificates needs about 15). */
export const MAX_DEPTH = 64;

/**
 * A BER reader over one buffer. Ends of indefinite-length values are memoised, so walking a
 * structure costs time linear in its size however the walk revisits nodes.
 */
export class BerReader {
  private readonly ends = new Map<number, number>();
  constructor(readonly buf: Uint8Array) {}

  /** The TLV at `offset`, which must end by `limit`. */
  read(offset: number, limit = this.buf.length, depth = 0): BerNode {
    if (depth > MAX_DEPTH) formatError('ASN.1 nested too deeply');
    const buf = this.buf;
    if (offset + 2 > limit) formatError('truncated ASN.1');
    const tag = buf[offset]!;
    if ((tag & 0x1f) === 0x1f) formatError('multi-byte ASN.1 tags are not supported');
    let pos = offset + 1;
    const first = buf[pos++]!;
    if (first === 0x80) {
      if ((tag & 0x20) === 0) formatError('indefinite length on a primitive value');
      const contentStart = pos;
      let contentEnd = this.ends.get(offset);
      if (contentEnd === undefined) {
        let p = contentStart;
        for (;;) {
          if (p + 2 > limit) formatError('truncated ASN.1: missing end-of-contents');
          if (buf[p] === 0 && buf[p + 1] === 0) break;
          p = this.read(p, limit, depth + 1).end;
        }
        contentEnd = p;
        this.ends.set(offset, contentEnd);
      }
      return { tag, start: offset, contentStart, contentEnd, end: contentEnd + 2, indefinite: true };
    }
    let length: number;
    if (first < 0x80) length = first;
    else {
      const n = first & 0x7f;
      if (n > 4) formatError('ASN.1 length too large');
      if (pos + n > limit) formatError('truncated ASN.1');
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    }
    const end = pos + length;
    if (end > limit) formatError('truncated ASN.1');
    return { tag, start: offset, contentStart: pos, contentEnd: end, end, indefinite: false };
  }

  /** The children of a constructed node. */
  children(parent: BerNode, depth = 0): BerNode[] {
    if ((parent.tag & 0x20) === 0) formatError('expected a constructed value');
    const out: BerNode[] = [];
    let pos = parent.contentStart;
    while (pos < parent.contentEnd) {
      const child = this.read(pos, parent.contentEnd, depth + 1);
      out.push(child);
      pos = child.end;
    }
    return out;
  }

  /**
   * Children checked against an expected layout of tags, in order; optional ones may be missing.
   * Returns one entry per layout element.
   */
  expect(
    parent: BerNode,
    layout: readonly (readonly [tag: number, optional: boolean])[],
    what: string,
  ): (BerNode | undefined)[] {
    const kids = this.children(parent);
    const out: (BerNode | undefined)[] = [];
    let k = 0;
    for (const [tag, optional] of layout) {
      if (kids[k]?.tag === tag) out.push(kids[k++]);
      else if (optional) out.push(undefined);
      else formatError(`unexpected ${what} structure`);
    }
    if (k !== kids.length) formatError(`unexpected ${what} structure`);
    return out;
  }

  /** The whole TLV, as received: a view into the input (not a copy: the input must not change). */
  slice(n: BerNode): Buffer {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + n.start, n.end - n.start);
  }

  /** The content octets of a definite-length node, as received: a view into the input. */
  content(n: BerNode): Buffer {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + n.contentStart, n.contentEnd - n.contentStart);
  }

  /**
   * The value of an OCTET STRING given with tag `tag` (0x04, or an implicit tag): primitive, or
   * constructed from primitive OCTET STRING segments (BER), which are concatenated.
   */
  octets(n: BerNode, depth = 0): Buffer {
    if ((n.tag & 0x20) === 0) return this.content(n);
    if (depth > MAX_DEPTH) formatError('ASN.1 nested too deeply');
    const parts: Buffer[] = [];
    for (const seg of this.children(n)) {
      if ((seg.tag & 0xdf) !== 0x04) formatError('a constructed OCTET STRING holds a non-OCTET STRING');
      parts.push(this.octets(seg, depth + 1));
    }
    return Buffer.concat(parts);
  }

  /** Decodes an OBJECT IDENTIFIER node to dotted form. */
  oid(n: BerNode): string {
    if (n.tag !== 0x06) formatError('expected an OBJECT IDENTIFIER');
    return decodeOid(this.buf.subarray(n.contentStart, n.contentEnd));
  }

  /** A small non-negative INTEGER (a version number). */
  smallInteger(n: BerNode): number {
    if (n.tag !== 0x02) formatError('expected an INTEGER');
    const c = this.buf.subarray(n.contentStart, n.contentEnd);
    if (c.length === 0 || c.length > 2 || c[0]! & 0x80) formatError('unexpected INTEGER value');
    let v = 0;
    for (const b of c) v = v * 256 + b;
    return v;
  }
}

/** Reads the single TLV making up `buf`; trailing bytes are refused. */
export function readWhole(buf: Uint8Array, what: string): { reader: BerReader; root: BerNode } {
  const reader = new BerReader(buf);
  if (buf.length === 0) formatError(`empty ${what}`);
  const root = reader.read(0);
  if (root.end !== buf.length) formatError(`trailing bytes after the ${what}`);
  return { reader, root };
}

// The same few OIDs (content types, attributes, algorithms) come up in every signature: decode each
// once. Keyed by a hash of the content octets; an entry is used only when its octets are equal.
const oidMemo = new Map<number, { octets: Buffer; dotted: string }>();

export function decodeOid(c: Uint8Array): string {
  if (c.length === 0 || c.length > 128) formatError('bad OBJECT IDENTIFIER');
  let h = 0x811c9dc5 ^ c.length;
  for (let i = 0; i < c.length; i++) h = Math.imul(h ^ c[i]!, 0x01000193);
  const hit = oidMemo.get(h);
  if (hit?.octets.equals(c)) return hit.dotted;
  const dotted = decodeOidUncached(c);
  if (hit === undefined && oidMemo.size < 10_000) oidMemo.set(h, { octets: Buffer.from(c), dotted });
  return dotted;
}

function decodeOidUncached(c: Uint8Array): string {
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (const b of c) {
    if (fresh && b === 0x80) formatError('non-minimal OBJECT IDENTIFIER arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    fresh = false;
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
      fresh = true;
    }
  }
  if (!fresh) formatError('truncated OBJECT IDENTIFIER');
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

// ---- Strict DER ----------------------------------------------------------------------------

/**
 * Checks that a node and everything in it is DER as far as the encoding goes: definite, minimal
 * lengths; universal constructed types only SEQUENCE and SET, and those never primitive; BOOLEAN
 * 0x00/0xFF; minimal INTEGERs; BIT STRINGs with at most 7 unused bits, all zero; empty NULLs; OBJECT
 * IDENTIFIERs with minimal arcs. (SET OF ordering is not checked: signers are known to get it
 * wrong, and the signed bytes are verified as received.)
 */
export function checkDer(reader: BerReader, n: BerNode, depth = 0): void {
  if (depth > MAX_DEPTH) formatError('ASN.1 nested too deeply');
  const buf = reader.buf;
  if (n.indefinite) formatError('indefinite length where DER is required');
  const lengthOctets = n.contentStart - n.start - 1;
  if (lengthOctets !== derLengthOctets(n.end - n.contentStart)) formatError('non-minimal DER length');
  if ((n.tag & 0x20) === 0) {
    const len = n.end - n.contentStart;
    if (n.tag === 0x01 && (len !== 1 || (buf[n.contentStart] !== 0 && buf[n.contentStart] !== 0xff)))
      formatError('BOOLEAN not in DER');
    if (n.tag === 0x02 || n.tag === 0x0a) {
      if (len === 0) formatError('empty INTEGER');
      const a = buf[n.contentStart]!;
      const b = buf[n.contentStart + 1];
      if (len > 1 && ((a === 0 && (b! & 0x80) === 0) || (a === 0xff && (b! & 0x80) !== 0)))
        formatError('non-minimal INTEGER');
    }
    if (n.tag === 0x03) {
      const unused = buf[n.contentStart];
      if (
        unused === undefined ||
        unused > 7 ||
        (len === 1 && unused !== 0) ||
        (unused > 0 && buf[n.end - 1]! & ((1 << unused) - 1))
      )
        formatError('BIT STRING not in DER');
    }
    if (n.tag === 0x05 && len !== 0) formatError('NULL with content');
    if (n.tag === 0x06) decodeOid(buf.subarray(n.contentStart, n.end));
    if (n.tag === 0x10 || n.tag === 0x11) formatError('a primitive SEQUENCE or SET');
    return;
  }
  if ((n.tag & 0xc0) === 0 && n.tag !== 0x30 && n.tag !== 0x31) formatError('constructed string in DER');
  for (const child of reader.children(n, depth)) checkDer(reader, child, depth + 1);
}

/** How many octets the DER encoding of a length takes (X.690 10.1: the shortest form). */
function derLengthOctets(length: number): number {
  if (length < 0x80) return 1;
  let n = 1;
  for (let l = length; l > 0; l = Math.floor(l / 256)) n++;
  return n;
}

// ---- Writing --------------------------------------------------------------------------------

/** Orders encodings as DER requires for SET OF (X.690 11.6): as octet strings, shorter padded with 0. */
export function derSetOrder(a: Buffer, b: Buffer): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x - y;
  }
  return 0;
}

/** A DER SET OF (tag 0x31, or `tag` for an implicit tag) with its elements sorted. */
export const setOf = (elements: readonly Buffer[], tag = 0x31): Buffer =>
  tlv(tag, ...[...elements].sort(derSetOrder));

/** Replaces the TLV `path[last]` with `replacement`, re-encoding the lengths of its ancestors. */
export function replaceNode(reader: BerReader, path: readonly BerNode[], replacement: Buffer): Buffer {
  const buf = reader.buf;
  let cur = replacement;
  for (let i = path.length - 2; i >= 0; i--) {
    const parent = path[i]!;
    const child = path[i + 1]!;
    const body = Buffer.concat([
      buf.subarray(parent.contentStart, child.start),
      cur,
      buf.subarray(child.end, parent.contentEnd),
    ]);
    cur = parent.indefinite
      ? Buffer.concat([buf.subarray(parent.start, parent.contentStart), body, Buffer.from([0, 0])])
      : tlv(parent.tag, body);
  }
  const root = path[0]!;
  return Buffer.concat([buf.subarray(0, root.start), cur, buf.subarray(root.end)]);
}

// ---- Times ----------------------------------------------------------------------------------

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** GeneralizedTime in UTC with milliseconds when non-zero (DER: no trailing zeros, no bare dot). */
export function generalizedTimeMillis(d: Date): Buffer {
  let s = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
  const ms = d.getUTCMilliseconds();
  if (ms) s += `.${pad(ms, 3).replace(/0+$/, '')}`;
  return tlv(0x18, Buffer.from(`${s}Z`, 'ascii'));
}

const UTC_TIME = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/;
const GENERALIZED_TIME = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.(\d+))?Z$/;

/** A UTCTime (0x17) or GeneralizedTime (0x18) node: seconds present, Z; a fraction is read to the millisecond. */
export function readTime(reader: BerReader, n: BerNode): Date {
  const s = Buffer.from(
    reader.buf.buffer,
    reader.buf.byteOffset + n.contentStart,
    n.contentEnd - n.contentStart,
  ).toString('latin1');
  const parts = n.tag === 0x17 ? UTC_TIME.exec(s) : n.tag === 0x18 ? GENERALIZED_TIME.exec(s) : null;
  if (!parts) return formatError('malformed time');
  let year: number;
  let fraction = 0;
  if (n.tag === 0x17) {
    const yy = Number(parts[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else {
    year = Number(parts[1]);
    if (parts[7]) fraction = Math.floor(Number(`0.${parts[7]}`) * 1000);
  }
  const [mo, d, h, mi, sec] = parts.slice(2, 7).map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(2000, mo - 1, d, h, mi, sec, fraction));
  date.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  const t = date.getTime();
  if (
    Number.isNaN(t) ||
    date.getUTCMonth() !== mo - 1 ||
    date.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    sec > 59
  )
    formatError('malformed time');
  return date;
}

// ---- Hashes ---------------------------------------------------------------------------------

export type HashAlgorithm = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

export const HASH_OID: Record<HashAlgorithm, string> = {
  sha1: OID.sha1,
  sha224: OID.sha224,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};

export const HASH_LENGTH: Record<HashAlgorithm, number> = {
  sha1: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
};

const HASH_BY_OID: ReadonlyMap<string, HashAlgorithm> = new Map(
  Object.entries(HASH_OID).map(([name, o]) => [o, name as HashAlgorithm]),
);

export const hashByOid = (o: string): HashAlgorithm | undefined => HASH_BY_OID.get(o);

export const digest = (algorithm: HashAlgorithm, data: Uint8Array): Buffer =>
  createHash(algorithm).update(data).digest();

/**
 * A hash AlgorithmIdentifier node: a known hash with absent or NULL parameters (RFC 5754 3: both are
 * seen in the wild).
 */
export function readHashAlgorithm(reader: BerReader, n: BerNode, what: string): HashAlgorithm {
  if (n.tag !== 0x30) formatError(`${what}: an AlgorithmIdentifier is a SEQUENCE`);
  const [id, params] = reader.expect(
    n,
    [
      [0x06, false],
      [0x05, true],
    ],
    what,
  );
  if (params && params.end !== params.contentStart) formatError(`${what}: malformed NULL`);
  const oid = reader.oid(id!);
  const alg = hashByOid(oid);
  if (!alg) return formatError(`${what}: unsupported hash algorithm ${oid}`);
  return alg;
}
