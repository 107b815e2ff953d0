// What XML signatures need to know about a certificate: its key, digest, issuer and serial number in
// the forms XMLDSig/XAdES write them, and ECDSA signature value conversion.
import { createHash, type KeyObject, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import { content, type DerError, readChildren, readTlv, sequence, slice, tlv } from '../der.ts';
import { OID } from '../oids.ts';
import { formatError } from './dom.ts';

export interface CertificateInfo {
  der: Buffer;
  publicKey: KeyObject;
  /** The issuer Name, DER, as it is in the certificate. */
  issuerDer: Buffer;
  /** The serial number's INTEGER content octets. */
  serialContent: Buffer;
  /** The serial number in decimal (ds:X509SerialNumber). */
  serialDecimal: string;
  /** The issuer as an RFC 4514 string (ds:X509IssuerName). */
  issuerRfc4514: string;
}

/** Parses a DER certificate; throws XmlSignatureError (FORMAT_FAILURE) if it is not one. */
export function certificateInfo(der: Buffer): CertificateInfo {
  let publicKey: KeyObject;
  try {
    publicKey = new X509Certificate(der).publicKey;
  } catch {
    throw formatError('a certificate in the signature cannot be parsed');
  }
  try {
    const cert = readTlv(der);
    if (cert.end !== der.length) throw new Error('trailing data');
    const [tbs] = readChildren(der, cert);
    const fields = readChildren(der, tbs!);
    const i = fields[0]!.tag === 0xa0 ? 1 : 0;
    const serial = fields[i]!;
    const issuer = fields[i + 2]!;
    if (serial.tag !== 0x02 || issuer.tag !== 0x30) throw new Error('unexpected TBSCertificate');
    const serialContent = content(der, serial);
    const issuerDer = slice(der, issuer);
    return {
      der,
      publicKey,
      issuerDer,
      serialContent,
      serialDecimal: integerToDecimal(serialContent),
      issuerRfc4514: nameToRfc4514(issuerDer),
    };
  } catch (e) {
    if ((e as Error).name === 'XmlSignatureError') throw e;
    throw formatError(`a certificate in the signature cannot be parsed: ${(e as DerError).message}`);
  }
}

export const sha256 = (data: Buffer | string): Buffer => createHash('sha256').update(data).digest();

function integerToDecimal(contentOctets: Buffer): string {
  let n = BigInt(`0x${contentOctets.toString('hex') || '0'}`);
  if (contentOctets.length > 0 && (contentOctets[0]! & 0x80) !== 0)
    n -= 1n << BigInt(contentOctets.length * 8);
  return n.toString(10);
}

/** RFC 4514 short names (and the few others that are common in issuer names). */
const SHORT_NAMES: Record<string, string> = {
  [OID.commonName]: 'CN',
  [OID.localityName]: 'L',
  [OID.stateOrProvinceName]: 'ST',
  [OID.organizationName]: 'O',
  [OID.organizationalUnitName]: 'OU',
  [OID.countryName]: 'C',
  [OID.streetAddress]: 'STREET',
  [OID.domainComponent]: 'DC',
  [OID.userId]: 'UID',
  [OID.serialNumber]: 'SERIALNUMBER',
  [OID.emailAddress]: 'E',
  [OID.surname]: 'SN',
  [OID.givenName]: 'GN',
  [OID.title]: 'T',
};

const ALIASES: Record<string, string> = {
  EMAILADDRESS: 'E',
  EMAIL: 'E',
  S: 'ST',
  SURNAME: 'SN',
  GIVENNAME: 'GN',
  TITLE: 'T',
  SN: 'SN',
  SERIAL: 'SERIALNUMBER',
};

function escapeRfc4514(value: string): string {
  let s = value.replace(/[\\,+"<>;]/g, (c) => `\\${c}`).replace(/\0/g, '\\00');
  if (s.startsWith('#') || s.startsWith(' ')) s = `\\${s}`;
  if (s.length > 1 && s.endsWith(' ')) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** A DER Name as an RFC 4514 string (most significant RDN last). */
export function nameToRfc4514(der: Buffer): string {
  const name = AsnConvert.parse(der, Name);
  return [...name]
    .reverse()
    .map((rdn) =>
      [...rdn]
        .map((atv) => {
          const type = SHORT_NAMES[atv.type] ?? atv.type;
          const v = atv.value;
          const text =
            v.anyValue !== undefined
              ? `#${Buffer.from(v.anyValue).toString('hex')}`
              : escapeRfc4514(v.toString());
          return `${type}=${text}`;
        })
        .join('+'),
    )
    .join(',');
}

/**
 * Normalises an RFC 4514 (or RFC 2253, or OpenSSL-ish "a=b, c=d") string for comparison: attribute
 * types upper-cased and mapped to short names, escapes resolved, spaces around separators dropped,
 * values compared case-insensitively with inner runs of spaces collapsed. Returns undefined if the
 * string cannot be read.
 */
export function normalizeDistinguishedName(dn: string): string | undefined {
  const rdns: string[][] = [[]];
  let i = 0;
  const n = dn.length;
  while (i <= n) {
    while (i < n && dn[i] === ' ') i++;
    const eq = dn.indexOf('=', i);
    if (eq < 0) return dn.trim() === '' && rdns.length === 1 && rdns[0]!.length === 0 ? '' : undefined;
    let type = dn.slice(i, eq).trim().toUpperCase();
    if (/^OID\./.test(type)) type = type.slice(4);
    type = SHORT_NAMES[type] ?? ALIASES[type] ?? type;
    i = eq + 1;
    let value = '';
    let pendingSpaces = '';
    while (i < n && dn[i] === ' ') i++;
    for (; i < n; i++) {
      const c = dn[i]!;
      if (c === '\\' && i + 1 < n) {
        const hex = dn.slice(i + 1, i + 3);
        if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
          // a run of \hh escapes is one UTF-8 sequence
          const bytes: number[] = [];
          while (dn[i] === '\\' && /^[0-9A-Fa-f]{2}$/.test(dn.slice(i + 1, i + 3))) {
            bytes.push(Number.parseInt(dn.slice(i + 1, i + 3), 16));
            i += 3;
          }
          i--;
          value += pendingSpaces + Buffer.from(bytes).toString('utf8');
        } else {
          value += pendingSpaces + dn[i + 1]!;
          i++;
        }
        pendingSpaces = '';
      } else if (c === ',' || c === '+' || c === ';') break;
      else if (c === ' ') pendingSpaces += ' ';
      else {
        value += pendingSpaces + c;
        pendingSpaces = '';
      }
    }
    rdns[rdns.length - 1]!.push(`${type}=${value.replace(/ +/g, ' ').toLowerCase()}`);
    if (i >= n) break;
    if (dn[i] !== '+') rdns.push([]);
    i++;
  }
  return rdns.map((rdn) => [...rdn].sort().join('+')).join(',');
}

/** An ECDSA signature value as X.509 has it (DER Ecdsa-Sig-Value) → as XMLDSig has it (r || s). */
export function ecdsaDerToRaw(der: Buffer, fieldBytes: number): Buffer {
  const seq = readTlv(der);
  const parts = readChildren(der, seq);
  if (seq.tag !== 0x30 || seq.end !== der.length || parts.length !== 2 || parts.some((p) => p.tag !== 0x02))
    throw new Error('the signer returned an ECDSA signature that is not a DER Ecdsa-Sig-Value');
  return Buffer.concat(
    parts.map((p) => {
      let v = content(der, p);
      while (v.length > 0 && v[0] === 0) v = v.subarray(1);
      if (v.length > fieldBytes) throw new Error('ECDSA signature component too long');
      return Buffer.concat([Buffer.alloc(fieldBytes - v.length), v]);
    }),
  );
}

/** DER IssuerSerial (RFC 5035) of a certificate: for XAdES SigningCertificateV2/IssuerSerialV2. */
export function issuerSerialDer(info: CertificateInfo): Buffer {
  // GeneralNames { directoryName [4] EXPLICIT Name }, CertificateSerialNumber
  return sequence(sequence(tlv(0xa4, info.issuerDer)), tlv(0x02, info.serialContent));
}
