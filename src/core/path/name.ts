// Distinguished names and general names, with the comparison RFC 5280 7.1 asks for: attribute values
// in the directory string types are compared after Unicode normalisation (NFKC), case folding and
// whitespace folding (leading/trailing space removed, inner runs reduced to one space), whatever
// string type encodes them (so a PrintableString matches the same UTF8String). Other values are
// compared as exact DER.

import { bytes, decodeString, expectTag, fail, kids, type Node, oidOf, whole } from './asn1.ts';

export interface AttributeValue {
  type: string;
  /** ASN.1 tag of the value. */
  tag: number;
  /** The value as text, for string types. */
  text?: string;
  /** The normalised comparison form. */
  norm: string;
}

export interface ParsedName {
  /** The Name DER exactly as it appeared. */
  der: Buffer;
  /** RDNs in encoding order (most significant first); each RDN's attributes. */
  rdns: AttributeValue[][];
  /** Per-RDN comparison keys (attribute order inside an RDN does not matter). */
  rdnKeys: string[];
  /** Comparison key of the whole name: two names match exactly when their keys are equal. */
  key: string;
  /** Display form, e.g. `C=US, O=Example, CN=Alice`. */
  display: string;
}

const SHORT: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.42': 'GN',
  '2.5.4.43': 'initials',
  '2.5.4.44': 'generationQualifier',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.65': 'pseudonym',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/** RFC 4518-style preparation, simplified: NFKC, case fold, insignificant whitespace removed. */
export function normaliseText(s: string): string {
  return s.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
}

/** Parses a Name (RDNSequence) at node `n` of `buf`. */
export function parseName(buf: Uint8Array, n: Node): ParsedName {
  expectTag(n, 0x30, 'Name');
  const rdns: AttributeValue[][] = [];
  const rdnKeys: string[] = [];
  const shown: string[] = [];
  for (const set of kids(buf, n)) {
    expectTag(set, 0x31, 'RelativeDistinguishedName');
    const avas: AttributeValue[] = [];
    for (const ava of kids(buf, set)) {
      expectTag(ava, 0x30, 'AttributeTypeAndValue');
      const [t, v, extra] = kids(buf, ava);
      if (!t || !v || extra) fail('malformed AttributeTypeAndValue');
      const type = oidOf(buf, t!);
      const text = decodeString(buf, v!);
      const norm = text !== undefined ? normaliseText(text) : `#${whole(buf, v!).toString('hex')}`;
      avas.push(text !== undefined ? { type, tag: v!.tag, text, norm } : { type, tag: v!.tag, norm });
    }
    if (avas.length === 0) fail('empty RelativeDistinguishedName');
    rdns.push(avas);
    rdnKeys.push(
      avas
        .map((a) => `${a.type}=${a.norm}`)
        .sort()
        .join('\u0000'),
    );
    shown.push(avas.map((a) => `${SHORT[a.type] ?? a.type}=${a.text ?? `#${a.norm.slice(1)}`}`).join(' + '));
  }
  return {
    der: whole(buf, n),
    rdns,
    rdnKeys,
    key: JSON.stringify(rdnKeys),
    display: shown.length ? shown.join(', ') : '(empty name)',
  };
}

export const namesEqual = (a: ParsedName, b: ParsedName): boolean => a.key === b.key;

/** Whether `name` lies under `base`: base's RDNs are a prefix of name's (RFC 5280 4.2.1.10). */
export function nameWithin(name: ParsedName, base: ParsedName): boolean {
  if (base.rdnKeys.length > name.rdnKeys.length) return false;
  for (let i = 0; i < base.rdnKeys.length; i++) if (base.rdnKeys[i] !== name.rdnKeys[i]) return false;
  return true;
}

/** A name with one more RDN (nameRelativeToCRLIssuer). */
export function appendRdn(base: ParsedName, rdnSet: Buffer): ParsedName {
  const inner = Buffer.concat([base.der.subarray(headerLength(base.der)), rdnSet]);
  const der = Buffer.concat([derHeader(0x30, inner.length), inner]);
  return parseName(der, { tag: 0x30, start: 0, cs: der.length - inner.length, end: der.length });
}

function headerLength(der: Buffer): number {
  const first = der[1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function derHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const b: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) b.unshift(n & 0xff);
  return Buffer.from([tag, 0x80 | b.length, ...b]);
}

// ---------------------------------------------------------------------------------------------
// GeneralName

export type GeneralName =
  | { type: 'otherName'; oid: string; der: Buffer }
  | { type: 'rfc822Name'; value: string }
  | { type: 'dNSName'; value: string }
  | { type: 'x400Address'; der: Buffer }
  | { type: 'directoryName'; name: ParsedName }
  | { type: 'ediPartyName'; der: Buffer }
  | { type: 'uniformResourceIdentifier'; value: string }
  | { type: 'iPAddress'; bytes: Buffer }
  | { type: 'registeredID'; oid: string };

export function parseGeneralName(buf: Uint8Array, n: Node): GeneralName {
  switch (n.tag) {
    case 0xa0: {
      const [t] = kids(buf, n);
      return { type: 'otherName', oid: oidOf(buf, t ?? fail('malformed otherName')), der: whole(buf, n) };
    }
    case 0x81:
      return { type: 'rfc822Name', value: bytes(buf, n).toString('latin1') };
    case 0x82:
      return { type: 'dNSName', value: bytes(buf, n).toString('latin1') };
    case 0xa3:
      return { type: 'x400Address', der: whole(buf, n) };
    case 0xa4: {
      const inner = kids(buf, n);
      if (inner.length !== 1) fail('malformed directoryName');
      return { type: 'directoryName', name: parseName(buf, inner[0]!) };
    }
    case 0xa5:
      return { type: 'ediPartyName', der: whole(buf, n) };
    case 0x86:
      return { type: 'uniformResourceIdentifier', value: bytes(buf, n).toString('latin1') };
    case 0x87:
      return { type: 'iPAddress', bytes: Buffer.from(bytes(buf, n)) };
    case 0x88: {
      const asOid: Node = { ...n, tag: 0x06 };
      return { type: 'registeredID', oid: oidOf(buf, asOid) };
    }
    default:
      return fail(`unknown GeneralName tag 0x${n.tag.toString(16)}`);
  }
}

/** GeneralNames (SEQUENCE OF GeneralName) whose container is node `n` (any constructed tag). */
export function parseGeneralNames(buf: Uint8Array, n: Node): GeneralName[] {
  const out = kids(buf, n).map((k) => parseGeneralName(buf, k));
  if (out.length === 0) fail('empty GeneralNames');
  return out;
}

/** Whether two general names denote the same thing (directory names compared as in 7.1). */
export function generalNamesMatch(a: GeneralName, b: GeneralName): boolean {
  if (a.type !== b.type) return false;
  switch (a.type) {
    case 'directoryName':
      return a.name.key === (b as typeof a).name.key;
    case 'uniformResourceIdentifier':
    case 'dNSName':
    case 'rfc822Name':
      return a.value.toLowerCase() === (b as typeof a).value.toLowerCase();
    case 'iPAddress':
      return a.bytes.equals((b as typeof a).bytes);
    case 'registeredID':
      return a.oid === (b as typeof a).oid;
    default:
      return (a as { der: Buffer }).der.equals((b as { der: Buffer }).der);
  }
}

export function formatGeneralName(g: GeneralName): string {
  switch (g.type) {
    case 'directoryName':
      return `DirName:${g.name.display}`;
    case 'uniformResourceIdentifier':
      return `URI:${g.value}`;
    case 'dNSName':
      return `DNS:${g.value}`;
    case 'rfc822Name':
      return `email:${g.value}`;
    case 'iPAddress':
      return `IP:${g.bytes.length === 4 ? [...g.bytes].join('.') : g.bytes.toString('hex')}`;
    case 'registeredID':
      return `RID:${g.oid}`;
    case 'otherName':
      return `othername:${g.oid}`;
    default:
      return g.type;
  }
}
