// Certificates parsed once into the form path validation works on.

import { createHash } from 'node:crypto';
import {
  type AlgorithmId,
  algorithm,
  bitString,
  boolean,
  bytes,
  expectTag,
  extensions,
  fail,
  kids,
  type Node,
  namedBits,
  oidOf,
  PathParseError,
  type RawExtension,
  root,
  smallInt,
  time,
  whole,
} from './asn1.ts';
import { type GeneralName, type ParsedName, parseGeneralName, parseGeneralNames, parseName } from './name.ts';
import { PKIX } from './oids.ts';

export interface DistributionPoint {
  fullName?: GeneralName[];
  /** nameRelativeToCRLIssuer: the DER of the RelativeDistinguishedName SET. */
  relativeName?: Buffer;
  /** ReasonFlags as a bit mask (bit 1 keyCompromise … bit 8 aACompromise); undefined = all. */
  reasons?: number;
  crlIssuer?: GeneralName[];
}

export interface GeneralSubtree {
  base: GeneralName;
  minimum: number;
  maximum?: number;
}

export interface PolicyInformation {
  oid: string;
  /** policyQualifiers DER, if present. */
  qualifiers?: Buffer;
}

/** KeyUsage bits (RFC 5280 4.2.1.3). */
export const KU = {
  digitalSignature: 1 << 0,
  nonRepudiation: 1 << 1,
  keyEncipherment: 1 << 2,
  dataEncipherment: 1 << 3,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6,
  encipherOnly: 1 << 7,
  decipherOnly: 1 << 8,
} as const;
export type KeyUsageName = keyof typeof KU;

export interface ParsedCertificate {
  readonly der: Buffer;
  /** SHA-256 of the DER, hex: the certificate's identity in caches. */
  readonly hash: string;
  /** The exact TBSCertificate bytes (what the signature covers). */
  readonly tbs: Buffer;
  readonly signatureAlgorithm: AlgorithmId;
  readonly signature: Buffer;
  /** 1, 2 or 3. */
  readonly version: number;
  /** serialNumber content octets, exactly as encoded (may be negative or long). */
  readonly serial: Buffer;
  readonly issuer: ParsedName;
  readonly subject: ParsedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  readonly spkiAlgorithm: AlgorithmId;
  /** subjectPublicKey bits (without the unused-bits octet). */
  readonly publicKey: Buffer;
  /** SHA-256 of the SPKI DER, hex. */
  readonly spkiHash: string;
  readonly extensions: ReadonlyMap<string, RawExtension>;
  /** OIDs of the extensions marked critical. */
  readonly critical: ReadonlySet<string>;
  readonly basicConstraints?: { ca: boolean; pathLen?: number };
  /** KeyUsage bit mask (see KU), if the extension is present. */
  readonly keyUsage?: number;
  readonly extKeyUsage?: readonly string[];
  readonly subjectKeyId?: Buffer;
  readonly authorityKeyId?: { keyId?: Buffer; issuer?: GeneralName[]; serial?: Buffer };
  readonly policies?: readonly PolicyInformation[];
  readonly policyMappings?: readonly (readonly [issuerDomain: string, subjectDomain: string])[];
  readonly policyConstraints?: { requireExplicitPolicy?: number; inhibitPolicyMapping?: number };
  readonly inhibitAnyPolicy?: number;
  readonly nameConstraints?: { permitted?: GeneralSubtree[]; excluded?: GeneralSubtree[] };
  readonly subjectAltNames?: readonly GeneralName[];
  readonly issuerAltNames?: readonly GeneralName[];
  readonly crlDistributionPoints?: readonly DistributionPoint[];
  readonly freshestCrl?: readonly DistributionPoint[];
  readonly ocspUrls: readonly string[];
  readonly caIssuersUrls: readonly string[];
  readonly ocspNoCheck: boolean;
  /** Subject and issuer names match (RFC 5280 6.1: self-issued). */
  readonly selfIssued: boolean;
}

const W = 'certificate';

/** Parses a DER certificate. Throws PathParseError on anything malformed. */
export function parseCertificate(input: Uint8Array): ParsedCertificate {
  const der = Buffer.from(input); // own copy: everything below is a view into it
  try {
    return parse(der);
  } catch (e) {
    if (e instanceof PathParseError) throw new PathParseError(`malformed certificate: ${e.message}`, W);
    throw new PathParseError(`malformed certificate: ${(e as Error).message}`, W);
  }
}

function parse(der: Buffer): ParsedCertificate {
  const top = root(der, 0x30, W);
  const [tbsNode, sigAlgNode, sigNode, extra] = kids(der, top);
  if (!tbsNode || !sigAlgNode || !sigNode || extra) fail('a Certificate has three parts');
  expectTag(tbsNode, 0x30, 'TBSCertificate');
  const signatureAlgorithm = algorithm(der, sigAlgNode!);
  const sig = bitString(der, sigNode!);

  const f = kids(der, tbsNode!);
  let i = 0;
  let version = 1;
  if (f[0]?.tag === 0xa0) {
    const [v] = kids(der, f[0]);
    version = smallInt(der, v ?? fail('empty version')) + 1;
    if (version < 1 || version > 3) fail(`unsupported version ${version}`);
    i++;
  }
  const serialNode = expectTag(f[i++], 0x02, 'serialNumber');
  if (serialNode.end === serialNode.cs) fail('empty serialNumber');
  const tbsAlg = algorithm(der, f[i++] ?? fail('missing signature algorithm'));
  if (!tbsAlg.der.equals(signatureAlgorithm.der))
    fail('the signature algorithm inside the certificate differs from the outer one');
  const issuer = parseName(der, f[i++] ?? fail('missing issuer'));
  const validity = expectTag(f[i++], 0x30, 'validity');
  const [nb, na, vx] = kids(der, validity);
  if (!nb || !na || vx) fail('malformed validity');
  const notBefore = time(der, nb!);
  const notAfter = time(der, na!);
  const subject = parseName(der, f[i++] ?? fail('missing subject'));
  const spkiNode = expectTag(f[i++], 0x30, 'subjectPublicKeyInfo');
  const [keyAlgNode, keyNode, kx] = kids(der, spkiNode);
  if (!keyAlgNode || !keyNode || kx) fail('malformed subjectPublicKeyInfo');
  const spkiAlgorithm = algorithm(der, keyAlgNode!);
  const key = bitString(der, keyNode!);
  let exts: Map<string, RawExtension> = new Map();
  while (i < f.length) {
    const t = f[i++]!;
    if (t.tag === 0x81 || t.tag === 0x82) {
      if (version < 2) fail('unique identifiers in a version 1 certificate');
      continue;
    }
    if (t.tag === 0xa3) {
      if (version < 3) fail('extensions in a certificate older than version 3');
      const [list, lx] = kids(der, t);
      if (!list || lx) fail('malformed extensions');
      exts = extensions(der, list!, W);
      if (exts.size === 0) fail('empty extensions');
      if (i !== f.length) fail('fields after the extensions');
      break;
    }
    fail(`unexpected field 0x${t.tag.toString(16)} in TBSCertificate`);
  }

  const spki = whole(der, spkiNode);
  const cert: Mutable<ParsedCertificate> = {
    der,
    hash: createHash('sha256').update(der).digest('hex'),
    tbs: whole(der, tbsNode!),
    signatureAlgorithm,
    // a signature BIT STRING with unused bits cannot be a valid signature: keep none, so it fails
    signature: sig.unused === 0 ? sig.bits : Buffer.alloc(0),
    version,
    serial: bytes(der, serialNode),
    issuer,
    subject,
    notBefore,
    notAfter,
    spki,
    spkiAlgorithm,
    publicKey: key.bits,
    spkiHash: createHash('sha256').update(spki).digest('hex'),
    extensions: exts,
    critical: new Set([...exts.values()].filter((e) => e.critical).map((e) => e.oid)),
    ocspUrls: [],
    caIssuersUrls: [],
    ocspNoCheck: exts.has(PKIX.ocspNoCheck),
    selfIssued: issuer.key === subject.key,
  };
  for (const ext of exts.values()) {
    try {
      parseExtension(cert, ext);
    } catch (e) {
      throw new PathParseError(`extension ${ext.oid}: ${(e as Error).message}`, W);
    }
  }
  return cert;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function parseExtension(c: Mutable<ParsedCertificate>, ext: RawExtension): void {
  const v = ext.value;
  const top = () => root(v, v[0] ?? 0, 'extension');
  switch (ext.oid) {
    case PKIX.basicConstraints: {
      const s = expectTag(top(), 0x30, 'BasicConstraints');
      const parts = kids(v, s);
      let k = 0;
      let ca = false;
      if (parts[k]?.tag === 0x01) ca = boolean(v, parts[k++]!);
      let pathLen: number | undefined;
      if (parts[k]?.tag === 0x02) pathLen = smallInt(v, parts[k++]!);
      if (k !== parts.length) fail('malformed BasicConstraints');
      c.basicConstraints = pathLen === undefined ? { ca } : { ca, pathLen };
      return;
    }
    case PKIX.keyUsage:
      c.keyUsage = namedBits(v, top());
      return;
    case PKIX.extKeyUsage: {
      const s = expectTag(top(), 0x30, 'ExtKeyUsageSyntax');
      c.extKeyUsage = kids(v, s).map((k) => oidOf(v, k));
      if (c.extKeyUsage.length === 0) fail('empty ExtKeyUsageSyntax');
      return;
    }
    case PKIX.subjectKeyIdentifier:
      c.subjectKeyId = Buffer.from(bytes(v, expectTag(top(), 0x04, 'KeyIdentifier')));
      return;
    case PKIX.authorityKeyIdentifier: {
      const s = expectTag(top(), 0x30, 'AuthorityKeyIdentifier');
      const aki: { keyId?: Buffer; issuer?: GeneralName[]; serial?: Buffer } = {};
      for (const k of kids(v, s)) {
        if (k.tag === 0x80) aki.keyId = Buffer.from(bytes(v, k));
        else if (k.tag === 0xa1) aki.issuer = parseGeneralNames(v, k);
        else if (k.tag === 0x82) aki.serial = Buffer.from(bytes(v, k));
        else fail('malformed AuthorityKeyIdentifier');
      }
      c.authorityKeyId = aki;
      return;
    }
    case PKIX.certificatePolicies: {
      const s = expectTag(top(), 0x30, 'certificatePolicies');
      const seen = new Set<string>();
      const out: PolicyInformation[] = [];
      for (const p of kids(v, s)) {
        expectTag(p, 0x30, 'PolicyInformation');
        const [o, q, x] = kids(v, p);
        if (!o || x) fail('malformed PolicyInformation');
        const id = oidOf(v, o!);
        if (seen.has(id)) fail(`policy ${id} appears twice`);
        seen.add(id);
        out.push(q ? { oid: id, qualifiers: Buffer.from(whole(v, q)) } : { oid: id });
      }
      if (out.length === 0) fail('empty certificatePolicies');
      c.policies = out;
      return;
    }
    case PKIX.policyMappings: {
      const s = expectTag(top(), 0x30, 'PolicyMappings');
      c.policyMappings = kids(v, s).map((m) => {
        expectTag(m, 0x30, 'PolicyMapping');
        const [a, b, x] = kids(v, m);
        if (!a || !b || x) fail('malformed PolicyMapping');
        return [oidOf(v, a!), oidOf(v, b!)] as const;
      });
      if (c.policyMappings.length === 0) fail('empty PolicyMappings');
      return;
    }
    case PKIX.policyConstraints: {
      const s = expectTag(top(), 0x30, 'PolicyConstraints');
      const pc: { requireExplicitPolicy?: number; inhibitPolicyMapping?: number } = {};
      for (const k of kids(v, s)) {
        if (k.tag === 0x80 && pc.requireExplicitPolicy === undefined && pc.inhibitPolicyMapping === undefined)
          pc.requireExplicitPolicy = smallInt(v, k, 0x80);
        else if (k.tag === 0x81 && pc.inhibitPolicyMapping === undefined)
          pc.inhibitPolicyMapping = smallInt(v, k, 0x81);
        else fail('malformed PolicyConstraints');
      }
      if (pc.requireExplicitPolicy === undefined && pc.inhibitPolicyMapping === undefined)
        fail('empty PolicyConstraints');
      c.policyConstraints = pc;
      return;
    }
    case PKIX.inhibitAnyPolicy:
      c.inhibitAnyPolicy = smallInt(v, top());
      return;
    case PKIX.nameConstraints: {
      const s = expectTag(top(), 0x30, 'NameConstraints');
      const nc: { permitted?: GeneralSubtree[]; excluded?: GeneralSubtree[] } = {};
      for (const k of kids(v, s)) {
        if (k.tag === 0xa0 && !nc.permitted && !nc.excluded) nc.permitted = subtrees(v, k);
        else if (k.tag === 0xa1 && !nc.excluded) nc.excluded = subtrees(v, k);
        else fail('malformed NameConstraints');
      }
      if (!nc.permitted && !nc.excluded) fail('empty NameConstraints');
      c.nameConstraints = nc;
      return;
    }
    case PKIX.subjectAltName:
      c.subjectAltNames = parseGeneralNames(v, expectTag(top(), 0x30, 'GeneralNames'));
      return;
    case PKIX.issuerAltName:
      c.issuerAltNames = parseGeneralNames(v, expectTag(top(), 0x30, 'GeneralNames'));
      return;
    case PKIX.cRLDistributionPoints:
      c.crlDistributionPoints = distributionPoints(v, top());
      return;
    case PKIX.freshestCRL:
      c.freshestCrl = distributionPoints(v, top());
      return;
    case PKIX.authorityInfoAccess: {
      const s = expectTag(top(), 0x30, 'AuthorityInfoAccessSyntax');
      const ocsp: string[] = [];
      const issuers: string[] = [];
      for (const ad of kids(v, s)) {
        expectTag(ad, 0x30, 'AccessDescription');
        const [m, loc, x] = kids(v, ad);
        if (!m || !loc || x) fail('malformed AccessDescription');
        const method = oidOf(v, m!);
        const gn = parseGeneralName(v, loc!);
        if (gn.type !== 'uniformResourceIdentifier') continue;
        if (method === PKIX.ocsp) ocsp.push(gn.value);
        else if (method === PKIX.caIssuers) issuers.push(gn.value);
      }
      c.ocspUrls = ocsp;
      c.caIssuersUrls = issuers;
      return;
    }
    default:
      return;
  }
}

function subtrees(v: Buffer, n: Node): GeneralSubtree[] {
  const out = kids(v, n).map((st) => {
    expectTag(st, 0x30, 'GeneralSubtree');
    const [b, ...rest] = kids(v, st);
    const s: GeneralSubtree = {
      base: parseGeneralName(v, b ?? fail('GeneralSubtree without a base')),
      minimum: 0,
    };
    for (const r of rest) {
      if (r.tag === 0x80) s.minimum = smallInt(v, r, 0x80);
      else if (r.tag === 0x81) s.maximum = smallInt(v, r, 0x81);
      else fail('malformed GeneralSubtree');
    }
    return s;
  });
  if (out.length === 0) fail('empty GeneralSubtrees');
  return out;
}

/** CRLDistributionPoints / FreshestCRL (a SEQUENCE OF DistributionPoint). */
export function distributionPoints(v: Uint8Array, n: Node): DistributionPoint[] {
  expectTag(n, 0x30, 'CRLDistributionPoints');
  const out = kids(v, n).map((dpNode) => {
    expectTag(dpNode, 0x30, 'DistributionPoint');
    const dp: DistributionPoint = {};
    for (const k of kids(v, dpNode)) {
      if (k.tag === 0xa0) Object.assign(dp, distributionPointName(v, k));
      else if (k.tag === 0x81) dp.reasons = namedBits(v, k, 0x81);
      else if (k.tag === 0xa2) dp.crlIssuer = parseGeneralNames(v, k);
      else fail('malformed DistributionPoint');
    }
    if (!dp.fullName && !dp.relativeName && !dp.crlIssuer)
      fail('a DistributionPoint needs a distributionPoint or a cRLIssuer');
    return dp;
  });
  if (out.length === 0) fail('empty CRLDistributionPoints');
  return out;
}

/** DistributionPointName inside its [0] wrapper. */
export function distributionPointName(
  v: Uint8Array,
  wrapper: Node,
): { fullName?: GeneralName[]; relativeName?: Buffer } {
  const inner = kids(v, wrapper);
  if (inner.length !== 1) fail('malformed DistributionPointName');
  const c = inner[0]!;
  if (c.tag === 0xa0) return { fullName: parseGeneralNames(v, c) };
  if (c.tag === 0xa1) {
    // [1] IMPLICIT RelativeDistinguishedName: re-tag as a SET
    const set = Buffer.from(whole(v, c));
    set[0] = 0x31;
    // check it is a well-formed RelativeDistinguishedName now rather than when it is used
    const asName = Buffer.concat([derHeader(0x30, set.length), set]);
    parseName(asName, root(asName, 0x30, 'nameRelativeToCRLIssuer'));
    return { relativeName: set };
  }
  return fail('malformed DistributionPointName');
}

/** Human-readable label: the subject, or the serial for a certificate with an empty subject. */
export function describeCertificate(c: ParsedCertificate): string {
  return c.subject.rdns.length ? c.subject.display : `serial ${c.serial.toString('hex')}`;
}

function derHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const b: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) b.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | b.length, ...b]);
}
