// CRLs parsed once for revocation checking (RFC 5280 section 5).
//
// A CRL may hold millions of entries. They are walked once, without creating an object per entry,
// into an open-addressing hash table of entry offsets keyed by (certificate issuer, serial); an
// entry is decoded only when a lookup finds it. Entry extensions are inspected during the walk so
// that a CRL with an unrecognised critical entry extension is known to be unusable up front.

import { createHash } from 'node:crypto';
import {
  type AlgorithmId,
  algorithm,
  bigUint,
  bitString,
  boolean,
  bytes,
  expectTag,
  extensions,
  fail,
  kids,
  namedBits,
  node,
  PathParseError,
  type RawExtension,
  root,
  smallInt,
  time,
  whole,
} from './asn1.ts';
import { type DistributionPoint, distributionPointName, distributionPoints } from './certificate.ts';
import { type GeneralName, type ParsedName, parseGeneralNames, parseName } from './name.ts';
import { PKIX } from './oids.ts';

export interface IssuingDistributionPoint {
  fullName?: GeneralName[];
  relativeName?: Buffer;
  onlyContainsUserCerts: boolean;
  onlyContainsCACerts: boolean;
  /** ReasonFlags bit mask, if the CRL covers only some reasons. */
  onlySomeReasons?: number;
  indirectCRL: boolean;
  onlyContainsAttributeCerts: boolean;
  /** The extension value DER, to compare the scope of a delta CRL with its base. */
  der: Buffer;
}

export interface CrlEntry {
  /** userCertificate content octets. */
  serial: Buffer;
  revocationDate: Date;
  /** CRLReason code (RFC 5280 5.3.1); undefined when the entry has no reasonCode. */
  reason?: number;
  invalidityDate?: Date;
}

export interface ParsedCrl {
  readonly der: Buffer;
  /** SHA-256 of the DER, hex. */
  readonly hash: string;
  readonly tbs: Buffer;
  readonly signatureAlgorithm: AlgorithmId;
  readonly signature: Buffer;
  readonly version: number;
  readonly issuer: ParsedName;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  readonly crlNumber?: bigint;
  /** BaseCRLNumber of a delta CRL (deltaCRLIndicator); undefined for a complete CRL. */
  readonly baseCrlNumber?: bigint;
  readonly authorityKeyId?: Buffer;
  readonly idp?: IssuingDistributionPoint;
  readonly freshestCrl?: readonly DistributionPoint[];
  readonly extensions: ReadonlyMap<string, RawExtension>;
  /** Critical CRL extensions this implementation does not process: the CRL must not be used. */
  readonly unknownCriticalExtensions: readonly string[];
  /** Critical entry extensions not processed, on any entry: the CRL must not be used (RFC 5280 5.3). */
  readonly unknownCriticalEntryExtensions: readonly string[];
  /** Number of revokedCertificates entries. */
  readonly count: number;
  /** The entry for a certificate serial (content octets) issued by the named CA, if listed. */
  find(serial: Buffer, certificateIssuer: ParsedName): CrlEntry | undefined;
}

const W = 'crl';
const KNOWN_CRL_EXTENSIONS = new Set<string>([
  PKIX.cRLNumber,
  PKIX.deltaCRLIndicator,
  PKIX.issuingDistributionPoint,
  PKIX.authorityKeyIdentifier,
  PKIX.freshestCRL,
  PKIX.authorityInfoAccess,
  PKIX.issuerAltName,
  PKIX.expiredCertsOnCRL,
]);
const KNOWN_ENTRY_EXTENSIONS = new Set<string>([
  PKIX.reasonCode,
  PKIX.invalidityDate,
  PKIX.certificateIssuer,
  PKIX.holdInstructionCode,
]);

/** Parses a DER CRL. Throws PathParseError on anything malformed. */
export function parseCrl(input: Uint8Array): ParsedCrl {
  const der = Buffer.from(input);
  try {
    return parse(der);
  } catch (e) {
    throw new PathParseError(`malformed CRL: ${(e as Error).message}`, W);
  }
}

function parse(der: Buffer): ParsedCrl {
  const top = root(der, 0x30, W);
  const [tbsNode, algNode, sigNode, extra] = kids(der, top);
  if (!tbsNode || !algNode || !sigNode || extra) fail('a CertificateList has three parts');
  expectTag(tbsNode, 0x30, 'TBSCertList');
  const signatureAlgorithm = algorithm(der, algNode!);
  const sig = bitString(der, sigNode!);

  // TBSCertList children, read one at a time so the (possibly huge) entry list is not materialised.
  let pos = tbsNode!.cs;
  const end = tbsNode!.end;
  const next = () => (pos < end ? node(der, pos, end) : undefined);
  let n = next();
  let version = 1;
  if (n?.tag === 0x02) {
    version = smallInt(der, n) + 1;
    if (version !== 2) fail(`unsupported CRL version ${version}`);
    pos = n.end;
    n = next();
  }
  const tbsAlg = algorithm(der, n ?? fail('missing signature algorithm'));
  if (!tbsAlg.der.equals(signatureAlgorithm.der))
    fail('the inner signature algorithm differs from the outer one');
  pos = n!.end;
  n = next();
  const issuer = parseName(der, n ?? fail('missing issuer'));
  pos = n!.end;
  n = next();
  const thisUpdate = time(der, n ?? fail('missing thisUpdate'));
  pos = n!.end;
  n = next();
  let nextUpdate: Date | undefined;
  if (n && (n.tag === 0x17 || n.tag === 0x18)) {
    nextUpdate = time(der, n);
    pos = n.end;
    n = next();
  }
  let entries: { cs: number; end: number } | undefined;
  if (n?.tag === 0x30) {
    entries = { cs: n.cs, end: n.end };
    pos = n.end;
    n = next();
  }
  let exts: Map<string, RawExtension> = new Map();
  if (n?.tag === 0xa0) {
    if (version < 2) fail('extensions in a version 1 CRL');
    const [list, lx] = kids(der, n);
    if (!list || lx) fail('malformed crlExtensions');
    exts = extensions(der, list!, W);
    pos = n.end;
    n = next();
  }
  if (n) fail('unexpected data in TBSCertList');

  const crl: Mutable = {
    der,
    hash: createHash('sha256').update(der).digest('hex'),
    tbs: whole(der, tbsNode!),
    signatureAlgorithm,
    // a signature BIT STRING with unused bits cannot be a valid signature: keep none, so it fails
    signature: sig.unused === 0 ? sig.bits : Buffer.alloc(0),
    version,
    issuer,
    thisUpdate,
    extensions: exts,
    unknownCriticalExtensions: [],
    unknownCriticalEntryExtensions: [],
    count: 0,
    find: () => undefined,
  };
  if (nextUpdate) crl.nextUpdate = nextUpdate;
  for (const ext of exts.values()) {
    try {
      crlExtension(crl, ext);
    } catch (e) {
      throw new PathParseError(`CRL extension ${ext.oid}: ${(e as Error).message}`, W);
    }
    if (ext.critical && !KNOWN_CRL_EXTENSIONS.has(ext.oid)) crl.unknownCriticalExtensions.push(ext.oid);
  }
  if (entries) indexEntries(der, entries, crl);
  return crl;
}

type Mutable = {
  -readonly [K in keyof ParsedCrl]: ParsedCrl[K] extends readonly (infer T)[] ? T[] : ParsedCrl[K];
};

function crlExtension(crl: Mutable, ext: RawExtension): void {
  const v = ext.value;
  const top = () => root(v, v[0] ?? 0, 'extension');
  switch (ext.oid) {
    case PKIX.cRLNumber:
      crl.crlNumber = bigUint(v, top());
      return;
    case PKIX.deltaCRLIndicator:
      crl.baseCrlNumber = bigUint(v, top());
      return;
    case PKIX.authorityKeyIdentifier: {
      const s = expectTag(top(), 0x30, 'AuthorityKeyIdentifier');
      for (const k of kids(v, s)) if (k.tag === 0x80) crl.authorityKeyId = Buffer.from(bytes(v, k));
      return;
    }
    case PKIX.freshestCRL:
      crl.freshestCrl = distributionPoints(v, top());
      return;
    case PKIX.issuingDistributionPoint: {
      const s = expectTag(top(), 0x30, 'IssuingDistributionPoint');
      const idp: IssuingDistributionPoint = {
        onlyContainsUserCerts: false,
        onlyContainsCACerts: false,
        indirectCRL: false,
        onlyContainsAttributeCerts: false,
        der: Buffer.from(v),
      };
      let last = -1;
      for (const k of kids(v, s)) {
        const field = k.tag & 0x1f;
        if (field <= last) fail('malformed IssuingDistributionPoint');
        last = field;
        if (k.tag === 0xa0) Object.assign(idp, distributionPointName(v, k));
        else if (k.tag === 0x81) idp.onlyContainsUserCerts = boolean(v, k, 0x81);
        else if (k.tag === 0x82) idp.onlyContainsCACerts = boolean(v, k, 0x82);
        else if (k.tag === 0x83) idp.onlySomeReasons = namedBits(v, k, 0x83);
        else if (k.tag === 0x84) idp.indirectCRL = boolean(v, k, 0x84);
        else if (k.tag === 0x85) idp.onlyContainsAttributeCerts = boolean(v, k, 0x85);
        else fail('malformed IssuingDistributionPoint');
      }
      crl.idp = idp;
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Entries

/** Reads a tag+length at `p` (bounded by `limit`); returns [contentStart, end]. */
function tl(b: Buffer, p: number, limit: number, tag: number): [number, number] {
  if (p + 2 > limit || b[p] !== tag) fail('malformed CRL entry');
  let len = b[p + 1]!;
  let cs = p + 2;
  if (len >= 0x80) {
    const k = len & 0x7f;
    if (k === 0 || k > 4 || cs + k > limit) fail('malformed CRL entry length');
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + b[cs + i]!;
    cs += k;
  }
  if (cs + len > limit) fail('truncated CRL entry');
  return [cs, cs + len];
}

// 30 0a 06 03 55 1d 15 04 03 0a 01 <reason>: the one extension nearly every entry carries.
const REASON_ONLY = Buffer.from([0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01]);

function fnv(b: Buffer, from: number, to: number, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = from; i < to; i++) {
    h ^= b[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function indexEntries(der: Buffer, list: { cs: number; end: number }, crl: Mutable): void {
  // First pass: count and validate; collect certificateIssuer groups (indirect CRLs).
  const groupKeys: Set<string>[] = [new Set([crl.issuer.key])];
  const groupByDer = new Map<string, number>();
  const offsets: number[] = [];
  const groupsOf: number[] = [];
  let group = 0;
  const unknown = new Set<string>();
  let p = list.cs;
  while (p < list.end) {
    const [cs, end] = tl(der, p, list.end, 0x30);
    const [scs, send] = tl(der, cs, end, 0x02);
    if (send === scs) fail('empty serial in a CRL entry');
    const t = der[send] ?? 0;
    if (t !== 0x17 && t !== 0x18) fail('CRL entry without a revocation date');
    const [, tend] = tl(der, send, end, t);
    if (tend < end) {
      const [ecs, eend] = tl(der, tend, end, 0x30);
      if (eend !== end) fail('trailing data in a CRL entry');
      const isReasonOnly =
        eend - ecs === REASON_ONLY.length + 1 &&
        der.compare(REASON_ONLY, 0, REASON_ONLY.length, ecs, ecs + 11) === 0;
      if (!isReasonOnly) {
        const exts = extensions(der, node(der, tend, end), W);
        for (const e of exts.values()) {
          if (e.critical && !KNOWN_ENTRY_EXTENSIONS.has(e.oid)) unknown.add(e.oid);
          if (e.oid === PKIX.reasonCode) smallInt(e.value, root(e.value, 0x0a, 'reasonCode'), 0x0a);
          if (e.oid === PKIX.invalidityDate) time(e.value, root(e.value, 0x18, 'invalidityDate'));
          if (e.oid === PKIX.certificateIssuer) {
            const id = e.value.toString('hex');
            let g = groupByDer.get(id);
            if (g === undefined) {
              const names = parseGeneralNames(e.value, root(e.value, 0x30, 'certificateIssuer'));
              const keys = new Set<string>();
              for (const gn of names) if (gn.type === 'directoryName') keys.add(gn.name.key);
              g = groupKeys.length;
              groupKeys.push(keys);
              groupByDer.set(id, g);
            }
            group = g;
          }
        }
      }
    }
    offsets.push(p);
    groupsOf.push(group);
    p = end;
  }
  crl.unknownCriticalEntryExtensions = [...unknown];
  crl.count = offsets.length;
  if (offsets.length === 0) return;

  let capacity = 16;
  while (capacity < offsets.length * 2) capacity *= 2;
  const mask = capacity - 1;
  const slots = new Uint32Array(capacity);
  const slotGroups = groupKeys.length > 1 ? new Uint32Array(capacity) : undefined;
  const serialSpan = (off: number): [number, number] => {
    const [cs, end] = tl(der, off, list.end, 0x30);
    return tl(der, cs, end, 0x02);
  };
  const same = (off: number, serial: Buffer, from: number, to: number): boolean => {
    const [scs, send] = serialSpan(off);
    return send - scs === to - from && der.compare(serial, from, to, scs, send) === 0;
  };
  for (let i = 0; i < offsets.length; i++) {
    const off = offsets[i]!;
    const g = groupsOf[i]!;
    const [scs, send] = serialSpan(off);
    let s = fnv(der, scs, send, g) & mask;
    for (;;) {
      const cur = slots[s]!;
      if (cur === 0) {
        slots[s] = off + 1;
        if (slotGroups) slotGroups[s] = g;
        break;
      }
      // keep the first of duplicate entries
      if ((slotGroups ? slotGroups[s] === g : true) && same(cur - 1, der, scs, send)) break;
      s = (s + 1) & mask;
    }
  }

  crl.find = (serial: Buffer, certificateIssuer: ParsedName): CrlEntry | undefined => {
    for (let g = 0; g < groupKeys.length; g++) {
      if (!groupKeys[g]!.has(certificateIssuer.key)) continue;
      let s = fnv(serial, 0, serial.length, g) & mask;
      for (;;) {
        const cur = slots[s]!;
        if (cur === 0) break;
        if ((slotGroups ? slotGroups[s] === g : true) && same(cur - 1, serial, 0, serial.length))
          return decodeEntry(der, cur - 1, list.end);
        s = (s + 1) & mask;
      }
    }
    return undefined;
  };
}

function decodeEntry(der: Buffer, off: number, limit: number): CrlEntry {
  const e = node(der, off, limit);
  const [serialNode, dateNode, extNode] = kids(der, e);
  const entry: CrlEntry = {
    serial: Buffer.from(bytes(der, serialNode!)),
    revocationDate: time(der, dateNode!),
  };
  if (extNode) {
    const exts = extensions(der, extNode, W);
    const reason = exts.get(PKIX.reasonCode);
    if (reason) {
      const r = root(reason.value, 0x0a, 'reasonCode');
      entry.reason = smallInt(reason.value, r, 0x0a);
    }
    const inv = exts.get(PKIX.invalidityDate);
    if (inv) entry.invalidityDate = time(inv.value, root(inv.value, 0x18, 'invalidityDate'));
  }
  return entry;
}
