// PKCS#10 (RFC 2986) requests: parse, check the proof of possession and the key policy.
//
// This runs once per issuance, so it is on the hot path. The request is walked with der.ts's
// readTlv as strict DER (definite and minimal lengths, the exact CertificationRequest layout, no
// trailing bytes) instead of being parsed with a schema, and the two key types the profiles allow
// in their usual form (RSA, and P-256 with an uncompressed point) are imported from their parts as a
// JWK: OpenSSL 3's SPKI decoder costs ~20 times as much. Every other key goes through the DER import.

import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { DerError, oid, readChildren, readTlv, type Tlv } from './der.ts';
import { OID } from './oids.ts';
import { decodePem } from './pem.ts';
import { canonicalJwk } from './public-key.ts';

export class CsrError extends Error {
  override name = 'CsrError';
}

/** Largest request accepted: a PKCS#10 request for an RSA-4096 key is about 1.7 KB. */
export const MAX_CSR_BYTES = 16 * 1024;

export interface VerifiedCsr {
  /** SubjectPublicKeyInfo, DER, exactly as in the request. */
  spki: Buffer;
  publicKey: KeyObject;
}

const SIGNATURE_HASHES: Record<string, { hash: string; keyType: 'rsa' | 'ec' }> = {
  [OID.sha256WithRSAEncryption]: { hash: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa' },
  [OID.ecdsaWithSHA256]: { hash: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec' },
};

/**
 * Parses a PKCS#10 request (PEM or DER), checks its self-signature (proof of possession of the
 * private key) and that the key is one the profiles allow. The subject and attributes of the
 * request are ignored: the profile decides what the certificate says.
 */
export function verifyCsr(input: Uint8Array | string): VerifiedCsr {
  // A view, not a copy: only the SPKI outlives this call, and it is copied.
  const der =
    typeof input === 'string'
      ? pemOrThrow(input)
      : Buffer.isBuffer(input)
        ? input
        : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (der.length === 0) throw new CsrError('the certificate request is empty');
  if (der.length > MAX_CSR_BYTES)
    throw new CsrError(`the certificate request is larger than ${MAX_CSR_BYTES} bytes`);
  let parts: CsrParts;
  try {
    parts = parseCsr(der);
  } catch {
    throw new CsrError('the certificate request is not valid PKCS#10 DER');
  }
  const alg = SIGNATURE_HASHES[parts.signatureAlgorithm];
  if (!alg)
    throw new CsrError(
      `signature algorithm ${parts.signatureAlgorithm} is not accepted (use SHA-256 or better)`,
    );
  if (!parts.signatureParamsNullOrAbsent)
    throw new CsrError('the certificate request is not valid PKCS#10 DER');
  const spki = parts.spki;
  const publicKey = checkSubjectKey(spki);
  if (publicKey.asymmetricKeyType !== alg.keyType)
    throw new CsrError('the request signature algorithm does not match its key');
  let ok = false;
  try {
    ok = verify(alg.hash, parts.tbs, publicKey, parts.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('the certificate request signature does not verify (no proof of possession)');
  return { spki, publicKey };
}

/**
 * The key policy of every end-entity profile: RSA of at least 2048 bits with public exponent of at
 * least 65537, or ECDSA on P-256. Anything else, or a key that does not parse, is refused. The SPKI
 * is copied into the certificate byte for byte, so it must also be DER (OpenSSL parses BER lengths
 * and a missing RSA NULL, and the certificate would then not be DER).
 */
export function checkSubjectKey(spki: Buffer): KeyObject {
  return fastSubjectKey(spki) ?? slowSubjectKey(spki);
}

// ---------------------------------------------------------------------------------------------
// The request

interface CsrParts {
  /** certificationRequestInfo, the signed bytes (a view into the request). */
  tbs: Buffer;
  /** subjectPKInfo (a copy: it outlives the request, in the certificate and the store). */
  spki: Buffer;
  /** signatureAlgorithm's OID, dotted. */
  signatureAlgorithm: string;
  /** The algorithms accepted (RSA PKCS#1 v1.5, ECDSA) have NULL or no parameters. */
  signatureParamsNullOrAbsent: boolean;
  /** The signature BIT STRING's bits (a view into the request). */
  signature: Buffer;
}

/** Throws (any error) unless `der` is exactly one DER CertificationRequest. */
function parseCsr(der: Buffer): CsrParts {
  const outer = readTlv(der, 0);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new DerError('not one SEQUENCE');
  checkLength(der, outer);
  const [info, sigAlg, sig, extra] = readChildren(der, outer);
  if (info?.tag !== 0x30 || sigAlg?.tag !== 0x30 || sig?.tag !== 0x03 || extra)
    throw new DerError('not a CertificationRequest');
  checkLength(der, info);

  // CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) }, subject Name,
  //   subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }
  const [version, subject, spki, attributes, more] = readChildren(der, info);
  if (version?.tag !== 0x02 || version.end - version.start !== 3 || der[version.contentStart] !== 0)
    throw new DerError('version is not v1');
  if (subject?.tag !== 0x30 || spki?.tag !== 0x30 || more)
    throw new DerError('not a CertificationRequestInfo');
  // The SPKI is not walked here: checkSubjectKey compares it with its canonical DER, and refuses it
  // with its own message ("not DER-encoded").
  checkDer(der, subject, 0);
  for (const rdn of readChildren(der, subject)) {
    // RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue { type OID, value ANY }
    const atvs = readChildren(der, rdn);
    if (rdn.tag !== 0x31 || atvs.length === 0) throw new DerError('malformed Name');
    for (const atv of atvs) expectTypeAndValue(der, atv, false);
  }
  if (attributes) {
    // [0] IMPLICIT SET OF Attribute { type OID, values SET OF ANY }
    if (attributes.tag !== 0xa0) throw new DerError('malformed attributes');
    checkDer(der, attributes, 0);
    for (const a of readChildren(der, attributes)) expectTypeAndValue(der, a, true);
  }

  // AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
  checkDer(der, sigAlg, 0);
  const [algOid, params, moreParams] = readChildren(der, sigAlg);
  if (algOid?.tag !== 0x06 || moreParams) throw new DerError('malformed AlgorithmIdentifier');

  checkLength(der, sig);
  if (sig.end === sig.contentStart || der[sig.contentStart] !== 0)
    throw new DerError('the signature has unused bits');
  return {
    tbs: der.subarray(info.start, info.end),
    spki: Buffer.from(der.subarray(spki.start, spki.end)),
    signatureAlgorithm: oidText(der, algOid),
    signatureParamsNullOrAbsent: !params || (params.tag === 0x05 && params.end === params.contentStart),
    signature: der.subarray(sig.contentStart + 1, sig.end),
  };
}

/** SEQUENCE { type OBJECT IDENTIFIER, value ANY } (an AttributeTypeAndValue) or, with `values`, { type, SET }. */
function expectTypeAndValue(der: Buffer, t: Tlv, values: boolean): void {
  const [type, value, extra] = readChildren(der, t);
  if (t.tag !== 0x30 || type?.tag !== 0x06 || !value || extra || (values && value.tag !== 0x31))
    throw new DerError('malformed attribute');
}

/** The length octets of `t` are minimal (DER). */
function checkLength(buf: Buffer, t: Tlv): void {
  if (!minimalLength(buf, t)) throw new DerError('non-minimal length');
}

function minimalLength(buf: Buffer, t: Tlv): boolean {
  const length = t.end - t.contentStart;
  const octets = t.contentStart - t.start - 1;
  const minimal = length < 0x80 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : length < 0x1000000 ? 4 : 5;
  return octets === minimal && !(octets > 1 && buf[t.start + 2] === 0);
}

/** Walks every TLV under `t`: minimal lengths, no constructed strings, bounded nesting. */
function checkDer(buf: Buffer, t: Tlv, depth: number): void {
  if (depth > 32) throw new DerError('nested too deeply');
  checkLength(buf, t);
  if ((t.tag & 0x20) === 0) return;
  // universal class: only SEQUENCE and SET are constructed in DER
  if ((t.tag & 0xc0) === 0 && t.tag !== 0x30 && t.tag !== 0x31) throw new DerError('constructed string');
  for (const child of readChildren(buf, t)) checkDer(buf, child, depth + 1);
}

/** Dotted text of an OBJECT IDENTIFIER (for the message about an algorithm that is refused). */
function oidText(buf: Buffer, t: Tlv): string {
  const known = OID_TEXT.get(buf.toString('latin1', t.start, t.end));
  if (known) return known;
  const arcs: bigint[] = [];
  let v = 0n;
  if (t.end === t.contentStart) throw new DerError('empty OID');
  for (let i = t.contentStart; i < t.end; i++) {
    const b = buf[i]!;
    if (v === 0n && b === 0x80) throw new DerError('non-minimal OID arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0n;
    } else if (i === t.end - 1) throw new DerError('truncated OID');
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

const OID_TEXT = new Map(
  [...Object.keys(SIGNATURE_HASHES), OID.sha1WithRSAEncryption].map((o) => [oid(o).toString('latin1'), o]),
);

// ---------------------------------------------------------------------------------------------
// The key

/**
 * RSA and P-256 (uncompressed point) keys in canonical DER, imported from their parts as a JWK
 * (core/public-key.ts), then held to the policy. undefined for anything else, including every
 * non-canonical encoding: the DER import then decides and says why, exactly as for any other key.
 */
function fastSubjectKey(spki: Buffer): KeyObject | undefined {
  const jwk = canonicalJwk(spki);
  if (!jwk) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    return undefined; // e.g. a point off the curve: the DER import refuses it and says why
  }
  if (jwk.kty === 'RSA') {
    // From the JWK's parts: asymmetricKeyDetails would cost as much as the import itself.
    const n = Buffer.from(jwk.n!, 'base64url');
    const bits = n.length * 8 - Math.clz32(n[0]!) + 24;
    rsaPolicy(bits, BigInt(`0x${Buffer.from(jwk.e!, 'base64url').toString('hex')}`));
  }
  return key;
}

function rsaPolicy(bits: number, e: bigint): void {
  if (bits < 2048) throw new CsrError(`RSA key of ${bits} bits is too weak (2048 at least)`);
  if (bits > 8192) throw new CsrError(`RSA key of ${bits} bits is larger than allowed (8192)`);
  if (e < 65537n || e % 2n === 0n) throw new CsrError(`RSA public exponent ${e} is not allowed`);
}

/** Any other key: OpenSSL's SPKI decoder, then the policy, then the DER check. */
function slowSubjectKey(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('the public key in the request is malformed');
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') rsaPolicy(d.modulusLength ?? 0, d.publicExponent ?? 0n);
  else if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve !== 'prime256v1')
      throw new CsrError(`EC curve ${d.namedCurve ?? '?'} is not allowed (P-256 only)`);
  } else
    throw new CsrError(
      `key type ${key.asymmetricKeyType ?? 'unknown'} is not allowed (RSA-2048+ or ECDSA P-256)`,
    );
  if (!key.export({ type: 'spki', format: 'der' }).equals(spki))
    throw new CsrError('the public key in the request is not DER-encoded');
  return key;
}

function pemOrThrow(text: string): Buffer {
  try {
    return decodePem(text, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  } catch (e) {
    throw new CsrError((e as Error).message);
  }
}
