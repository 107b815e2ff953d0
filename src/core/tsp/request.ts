// RFC 3161 time-stamp requests: building (for clients and tests) and strict parsing (for the TSA).
//
// A request is untrusted input. Anything wrong with one becomes a TimeStampRequestError carrying
// the PKIFailureInfo the TSA answers with (badDataFormat, badAlg, badRequest,
// unacceptedExtension), never another error type. The request is first walked as strict DER, tag
// by tag, which yields the exact bytes of the messageImprint and nonce to copy into the token; it
// is then also parsed with the @peculiar/asn1-tsp schema.

import { AsnParser } from '@peculiar/asn1-schema';
import { TimeStampReq } from '@peculiar/asn1-tsp';
import {
  type BerNode,
  type BerReader,
  checkDer,
  HASH_LENGTH,
  HASH_OID,
  type HashAlgorithm,
  hashByOid,
  readWhole,
} from '../cms/asn1.ts';
import { integer, octetString, oid, sequence, TRUE, unsignedInteger } from '../der.ts';

/** PKIFailureInfo (RFC 3161 2.4.2) names. */
export type PkiFailureInfo =
  | 'badAlg'
  | 'badRequest'
  | 'badDataFormat'
  | 'timeNotAvailable'
  | 'unacceptedPolicy'
  | 'unacceptedExtension'
  | 'addInfoNotAvailable'
  | 'systemFailure';

/** Bit numbers of PKIFailureInfo. */
export const FAILURE_INFO_BIT: Record<PkiFailureInfo, number> = {
  badAlg: 0,
  badRequest: 2,
  badDataFormat: 5,
  timeNotAvailable: 14,
  unacceptedPolicy: 15,
  unacceptedExtension: 16,
  addInfoNotAvailable: 17,
  systemFailure: 25,
};

/** A request the TSA must reject; `failInfo` is what the rejection says. */
export class TimeStampRequestError extends Error {
  override name = 'TimeStampRequestError';
  constructor(
    readonly failInfo: PkiFailureInfo,
    message: string,
  ) {
    super(message);
  }
}

export interface ParsedTimeStampRequest {
  hashAlgorithm: HashAlgorithm;
  /** hashedMessage. */
  digest: Buffer;
  /** The MessageImprint DER as received; copied verbatim into the TSTInfo. */
  messageImprint: Buffer;
  /** reqPolicy, dotted. */
  policy?: string;
  /** The nonce INTEGER content octets as received; echoed verbatim. */
  nonce?: Buffer;
  certReq: boolean;
}

/** Largest request accepted: a request is a hash, a nonce and a few flags. */
export const MAX_TIME_STAMP_REQUEST_BYTES = 16 * 1024;
/** Longest nonce accepted (RFC 3161 suggests 64 bits; allow some room). */
const MAX_NONCE_BYTES = 64;
/** Hashes the TSA accepts unless told otherwise. */
export const DEFAULT_TSA_HASHES: readonly HashAlgorithm[] = ['sha256', 'sha384', 'sha512'];

const reject = (failInfo: PkiFailureInfo, message: string): never => {
  throw new TimeStampRequestError(failInfo, message);
};

/**
 * Parses a DER TimeStampReq. Throws TimeStampRequestError: badDataFormat for anything that is not
 * a well-formed DER request, badRequest for version other than v1 or an unacceptable nonce, badAlg
 * for a hash outside `hashAlgorithms` (default SHA-256/384/512) or a hash of the wrong length,
 * unacceptedExtension for any extension (RFC 3161 2.4.1: an extension the TSA does not know must
 * be refused, critical or not).
 */
export function parseTimeStampRequest(
  der: Uint8Array,
  opts: { hashAlgorithms?: readonly HashAlgorithm[] } = {},
): ParsedTimeStampRequest {
  try {
    return parseRequest(der, opts.hashAlgorithms ?? DEFAULT_TSA_HASHES);
  } catch (e) {
    if (e instanceof TimeStampRequestError) throw e;
    throw new TimeStampRequestError(
      'badDataFormat',
      `malformed time-stamp request: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

function parseRequest(der: Uint8Array, accepted: readonly HashAlgorithm[]): ParsedTimeStampRequest {
  if (der.length > MAX_TIME_STAMP_REQUEST_BYTES) reject('badDataFormat', 'time-stamp request too large');
  const { reader: r, root } = readWhole(der, 'time-stamp request');
  checkDer(r, root);
  if (root.tag !== 0x30) reject('badDataFormat', 'a TimeStampReq is a SEQUENCE');
  const [version, imprint, policy, nonce, certReq, exts] = r.expect(
    root,
    [
      [0x02, false],
      [0x30, false],
      [0x06, true],
      [0x02, true],
      [0x01, true],
      [0xa0, true],
    ],
    'TimeStampReq',
  );
  // the whole request must also satisfy the schema
  const parsed = AsnParser.parse(der, TimeStampReq);
  if (r.smallInteger(version!) !== 1) reject('badRequest', 'unsupported TimeStampReq version');
  const { algorithm, digest } = readImprint(r, imprint!, accepted);
  if (exts) reject('unacceptedExtension', 'time-stamp request extensions are not supported');
  const out: ParsedTimeStampRequest = {
    hashAlgorithm: algorithm,
    digest,
    messageImprint: r.slice(imprint!),
    certReq: certReq ? r.buf[certReq.contentStart] === 0xff : false,
  };
  if (parsed.certReq !== out.certReq) reject('badDataFormat', 'inconsistent certReq');
  if (policy) out.policy = r.oid(policy);
  if (nonce) {
    const n = r.content(nonce);
    if (n.length > MAX_NONCE_BYTES) reject('badRequest', 'nonce too long');
    out.nonce = n;
  }
  return out;
}

/** MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }. */
function readImprint(
  r: BerReader,
  n: BerNode,
  accepted: readonly HashAlgorithm[],
): { algorithm: HashAlgorithm; digest: Buffer } {
  const [alg, hashed] = r.expect(
    n,
    [
      [0x30, false],
      [0x04, false],
    ],
    'MessageImprint',
  );
  const [id, params] = r.expect(
    alg!,
    [
      [0x06, false],
      [0x05, true],
    ],
    'MessageImprint hashAlgorithm',
  );
  if (params && params.end !== params.contentStart) reject('badDataFormat', 'malformed NULL parameters');
  const o = r.oid(id!);
  const algorithm = hashByOid(o);
  if (!algorithm || !accepted.includes(algorithm))
    return reject('badAlg', `hash algorithm ${o} not accepted`);
  const digest = r.content(hashed!);
  if (digest.length !== HASH_LENGTH[algorithm])
    reject('badDataFormat', `a ${algorithm} imprint of ${digest.length} bytes`);
  return { algorithm, digest };
}

/** `parseTimeStampRequest` for code that wants a result rather than an exception. */
export function tryParseTimeStampRequest(
  der: Uint8Array,
  opts: { hashAlgorithms?: readonly HashAlgorithm[] } = {},
): { ok: true; request: ParsedTimeStampRequest } | { ok: false; error: TimeStampRequestError } {
  try {
    return { ok: true, request: parseTimeStampRequest(der, opts) };
  } catch (e) {
    if (e instanceof TimeStampRequestError) return { ok: false, error: e };
    throw e;
  }
}

export interface TimeStampRequestInput {
  /** The hash of the data to be time-stamped. */
  digest: Buffer;
  hashAlgorithm: HashAlgorithm;
  /** Nonce magnitude (big-endian, non-negative); e.g. 8 random bytes. */
  nonce?: Buffer;
  /** Ask the TSA to include its certificate in the token. */
  certReq?: boolean;
  /** reqPolicy, dotted. */
  policy?: string;
}

/** A DER TimeStampReq (v1). */
export function buildTimeStampRequest(input: TimeStampRequestInput): Buffer {
  if (input.digest.length !== HASH_LENGTH[input.hashAlgorithm])
    throw new RangeError(`a ${input.hashAlgorithm} digest is ${HASH_LENGTH[input.hashAlgorithm]} bytes`);
  const parts = [
    integer(1),
    sequence(sequence(oid(HASH_OID[input.hashAlgorithm])), octetString(input.digest)),
  ];
  if (input.policy) parts.push(oid(input.policy));
  if (input.nonce) parts.push(unsignedInteger(input.nonce));
  if (input.certReq) parts.push(TRUE);
  return sequence(...parts);
}
