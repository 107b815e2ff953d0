// OCSP responses (RFC 6960) parsed for revocation checking: the BasicOCSPResponse, its single
// responses and the certificates it carries.

import { createHash } from 'node:crypto';
import {
  type AlgorithmId,
  algorithm,
  bitString,
  bytes,
  expectTag,
  extensions,
  fail,
  kids,
  node,
  oidOf,
  PathParseError,
  type RawExtension,
  root,
  smallInt,
  time,
  whole,
} from './asn1.ts';
import { type ParsedCertificate, parseCertificate } from './certificate.ts';
import { type ParsedName, parseName } from './name.ts';
import { PKIX } from './oids.ts';

export const OCSP_HASHES: ReadonlyMap<string, string> = new Map([
  ['1.3.14.3.2.26', 'sha1'],
  ['2.16.840.1.101.3.4.2.1', 'sha256'],
  ['2.16.840.1.101.3.4.2.2', 'sha384'],
  ['2.16.840.1.101.3.4.2.3', 'sha512'],
]);

export interface SingleResponse {
  /** Hash algorithm OID of the CertID. */
  hashAlgorithm: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** serialNumber content octets. */
  serial: Buffer;
  status: 'good' | 'revoked' | 'unknown';
  revokedAt?: Date;
  reason?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
  unknownCriticalExtensions: string[];
}

export interface ParsedOcspResponse {
  readonly der: Buffer;
  readonly hash: string;
  /** OCSPResponseStatus: 0 successful, 1 malformedRequest, 2 internalError, 3 tryLater, 5 sigRequired, 6 unauthorized. */
  readonly responseStatus: number;
  /** Absent unless the status is successful. */
  readonly basic?: BasicResponse;
}

export interface BasicResponse {
  /** SHA-256 of the BasicOCSPResponse DER: identity of the signed object. */
  readonly hash: string;
  readonly tbs: Buffer;
  readonly signatureAlgorithm: AlgorithmId;
  readonly signature: Buffer;
  readonly responderId: { byName: ParsedName } | { byKey: Buffer };
  readonly producedAt: Date;
  readonly responses: readonly SingleResponse[];
  readonly extensions: ReadonlyMap<string, RawExtension>;
  readonly unknownCriticalExtensions: readonly string[];
  readonly certs: readonly ParsedCertificate[];
}

const W = 'ocsp';
export const OCSP_STATUS_NAMES = [
  'successful',
  'malformedRequest',
  'internalError',
  'tryLater',
  '4',
  'sigRequired',
  'unauthorized',
];

/** Parses a DER OCSPResponse (or a bare BasicOCSPResponse). Throws PathParseError when malformed. */
export function parseOcspResponse(input: Uint8Array): ParsedOcspResponse {
  const der = Buffer.from(input);
  try {
    return parse(der);
  } catch (e) {
    throw new PathParseError(`malformed OCSP response: ${(e as Error).message}`, W);
  }
}

function parse(der: Buffer): ParsedOcspResponse {
  const top = root(der, 0x30, W);
  const parts = kids(der, top);
  const hash = createHash('sha256').update(der).digest('hex');
  if (parts[0]?.tag !== 0x0a) {
    // A bare BasicOCSPResponse.
    return { der, hash, responseStatus: 0, basic: basicResponse(der, top) };
  }
  const responseStatus = smallInt(der, parts[0], 0x0a);
  if (responseStatus !== 0) {
    if (parts.length !== 1) fail('an unsuccessful response carries no responseBytes');
    return { der, hash, responseStatus };
  }
  const wrapper = expectTag(parts[1], 0xa0, 'responseBytes');
  if (parts.length !== 2) fail('malformed OCSPResponse');
  const [rb] = kids(der, wrapper);
  const [type, octets, x] = kids(der, expectTag(rb, 0x30, 'ResponseBytes'));
  if (!type || !octets || x) fail('malformed ResponseBytes');
  if (oidOf(der, type!) !== PKIX.ocspBasic) fail(`unsupported response type ${oidOf(der, type!)}`);
  expectTag(octets, 0x04, 'response');
  const inner = node(der, octets!.cs, octets!.end);
  if (inner.end !== octets!.end) fail('trailing bytes in response');
  return { der, hash, responseStatus, basic: basicResponse(der, inner) };
}

function basicResponse(der: Buffer, n: ReturnType<typeof node>): BasicResponse {
  expectTag(n, 0x30, 'BasicOCSPResponse');
  const [tbsNode, algNode, sigNode, certsNode, x] = kids(der, n);
  if (!tbsNode || !algNode || !sigNode || x) fail('malformed BasicOCSPResponse');
  expectTag(tbsNode, 0x30, 'ResponseData');
  const sig = bitString(der, sigNode!);
  const certs: ParsedCertificate[] = [];
  if (certsNode) {
    const [seq] = kids(der, expectTag(certsNode, 0xa0, 'certs'));
    for (const c of kids(der, expectTag(seq, 0x30, 'certs'))) certs.push(parseCertificate(whole(der, c)));
  }
  const f = kids(der, tbsNode!);
  let i = 0;
  if (f[0]?.tag === 0xa0) {
    const [v] = kids(der, f[0]);
    if (smallInt(der, v ?? fail('empty version')) !== 0) fail('unsupported ResponseData version');
    i++;
  }
  const rid = f[i++] ?? fail('missing responderID');
  let responderId: BasicResponse['responderId'];
  if (rid.tag === 0xa1) {
    const [nm] = kids(der, rid);
    responderId = { byName: parseName(der, nm ?? fail('malformed responderID')) };
  } else if (rid.tag === 0xa2) {
    const [k] = kids(der, rid);
    responderId = { byKey: Buffer.from(bytes(der, expectTag(k, 0x04, 'KeyHash'))) };
  } else return fail('malformed responderID');
  const producedAtNode = expectTag(f[i++], 0x18, 'producedAt');
  const producedAt = time(der, producedAtNode);
  const list = expectTag(f[i++], 0x30, 'responses');
  const responses = kids(der, list).map((r) => singleResponse(der, r));
  let exts: Map<string, RawExtension> = new Map();
  if (f[i]?.tag === 0xa1) {
    const [e] = kids(der, f[i++]!);
    exts = extensions(der, e ?? fail('malformed responseExtensions'), W);
  }
  if (i !== f.length) fail('unexpected data in ResponseData');
  return {
    hash: createHash('sha256').update(whole(der, n)).digest('hex'),
    tbs: whole(der, tbsNode!),
    signatureAlgorithm: algorithm(der, algNode!),
    // a signature BIT STRING with unused bits cannot be a valid signature: keep none, so it fails
    signature: sig.unused === 0 ? sig.bits : Buffer.alloc(0),
    responderId,
    producedAt,
    responses,
    extensions: exts,
    unknownCriticalExtensions: [...exts.values()]
      .filter((e) => e.critical && e.oid !== PKIX.ocspNonce)
      .map((e) => e.oid),
    certs,
  };
}

function singleResponse(der: Buffer, n: ReturnType<typeof node>): SingleResponse {
  expectTag(n, 0x30, 'SingleResponse');
  const f = kids(der, n);
  const certId = expectTag(f[0], 0x30, 'CertID');
  const [alg, nameHash, keyHash, serial, cx] = kids(der, certId);
  if (!alg || !nameHash || !keyHash || !serial || cx) fail('malformed CertID');
  const status = f[1] ?? fail('missing certStatus');
  const out: SingleResponse = {
    hashAlgorithm: algorithm(der, alg!).oid,
    issuerNameHash: Buffer.from(bytes(der, expectTag(nameHash, 0x04, 'issuerNameHash'))),
    issuerKeyHash: Buffer.from(bytes(der, expectTag(keyHash, 0x04, 'issuerKeyHash'))),
    serial: Buffer.from(bytes(der, expectTag(serial, 0x02, 'serialNumber'))),
    status: 'good',
    thisUpdate: new Date(0),
    unknownCriticalExtensions: [],
  };
  if (status.tag === 0x80) out.status = 'good';
  else if (status.tag === 0x82) out.status = 'unknown';
  else if (status.tag === 0xa1) {
    out.status = 'revoked';
    const [at, reason] = kids(der, status);
    out.revokedAt = time(der, expectTag(at, 0x18, 'revocationTime'));
    if (reason) {
      const [r] = kids(der, expectTag(reason, 0xa0, 'revocationReason'));
      out.reason = smallInt(der, r ?? fail('malformed revocationReason'), 0x0a);
    }
  } else fail('malformed certStatus');
  out.thisUpdate = time(der, expectTag(f[2], 0x18, 'thisUpdate'));
  let i = 3;
  if (f[i]?.tag === 0xa0) {
    const [t] = kids(der, f[i++]!);
    out.nextUpdate = time(der, expectTag(t, 0x18, 'nextUpdate'));
  }
  if (f[i]?.tag === 0xa1) {
    const [e] = kids(der, f[i++]!);
    const exts = extensions(der, e ?? fail('malformed singleExtensions'), W);
    out.unknownCriticalExtensions = [...exts.values()].filter((x) => x.critical).map((x) => x.oid);
  }
  if (i !== f.length) fail('unexpected data in SingleResponse');
  return out;
}
