// RFC 3161 time-stamp responses: the TSA side (a granted response with a token signed through the
// Signer interface, or a rejection) and the client side (parsing a response, checking it against
// the request).

import { Asn1FormatError, formatError, generalizedTimeMillis, readWhole } from '../cms/asn1.ts';
import { buildSignedData, CmsError, certificateInfo } from '../cms/signed-data.ts';
import { bitString, explicit, integer, oid, sequence, tlv, unsignedInteger, utf8String } from '../der.ts';
import { OID } from '../oids.ts';
import type { Signer } from '../signer.ts';
import {
  FAILURE_INFO_BIT,
  type ParsedTimeStampRequest,
  type PkiFailureInfo,
  parseTimeStampRequest,
  TimeStampRequestError,
} from './request.ts';
import { type TimeStampVerification, verifyTimeStampToken } from './token.ts';

/** PKIStatus values (RFC 3161 2.4.2). */
export const PKI_STATUS = {
  granted: 0,
  grantedWithMods: 1,
  rejection: 2,
  waiting: 3,
  revocationWarning: 4,
  revocationNotification: 5,
} as const;
export type PkiStatus = keyof typeof PKI_STATUS;

export interface TimeStampAuthority {
  signer: Signer;
  /** The TSA certificate (extended key usage id-kp-timeStamping, critical), DER. */
  tsaCertificate: Buffer;
  /** CA certificates to include with the TSA certificate when the request asks for certificates. */
  chain?: readonly Buffer[];
  /** The TSA policy, dotted. */
  policy: string;
  accuracySeconds?: number;
  /** Put the TSA's name (its certificate subject) in TSTInfo.tsa. */
  includeTsaName?: boolean;
}

export interface TimeStampResponseInput extends TimeStampAuthority {
  request: ParsedTimeStampRequest;
  /** serialNumber magnitude (big-endian, non-negative, at most 160 bits: RFC 3161 2.4.2); unique per token. */
  serial: Buffer;
  genTime: Date;
  /** Embed the TSA certificate (and chain); defaults to the request's certReq. */
  includeCerts?: boolean;
}

/**
 * The TimeStampToken: SignedData (version 3) with eContentType id-ct-TSTInfo, signed attributes
 * content-type, message-digest and signing-certificate-v2, signed with SHA-256 through the Signer.
 * Throws TimeStampRequestError('unacceptedPolicy') when the request asks for another policy.
 */
export async function buildTimeStampToken(input: TimeStampResponseInput): Promise<Buffer> {
  const req = input.request;
  if (req.policy && req.policy !== input.policy)
    throw new TimeStampRequestError('unacceptedPolicy', `policy ${req.policy} is not offered`);
  const serial = stripZeros(input.serial);
  if (serial.length === 0 || serial.length > 20)
    throw new CmsError('a time-stamp serial number is 1 to 160 bits and not zero');
  if (Number.isNaN(input.genTime.getTime())) throw new CmsError('invalid genTime');
  const fields = [
    integer(1),
    oid(input.policy),
    req.messageImprint,
    unsignedInteger(serial),
    generalizedTimeMillis(input.genTime),
  ];
  if (input.accuracySeconds !== undefined) {
    if (!Number.isInteger(input.accuracySeconds) || input.accuracySeconds < 1)
      throw new CmsError('accuracySeconds must be a positive integer');
    fields.push(sequence(integer(input.accuracySeconds)));
  }
  if (req.nonce) fields.push(tlv(0x02, req.nonce));
  if (input.includeTsaName)
    fields.push(explicit(0, explicit(4, certificateInfo(input.tsaCertificate).subject)));
  const tstInfo = sequence(...fields);
  return buildSignedData({
    signer: input.signer,
    certificate: input.tsaCertificate,
    chain: input.chain,
    includeCertificates: input.includeCerts ?? req.certReq,
    eContentType: OID.tstInfo,
    content: tstInfo,
    detached: false,
  });
}

/** A granted TimeStampResp, DER. See buildTimeStampToken. */
export async function buildTimeStampResponse(input: TimeStampResponseInput): Promise<Buffer> {
  const token = await buildTimeStampToken(input);
  return sequence(sequence(integer(PKI_STATUS.granted)), token);
}

/** A TimeStampResp without a token (rejection, waiting, ...), DER. */
export function errorTimeStampResponse(
  status: Exclude<PkiStatus, 'granted' | 'grantedWithMods'>,
  failInfo?: PkiFailureInfo,
  statusString?: string,
): Buffer {
  const info = [integer(PKI_STATUS[status])];
  if (statusString) info.push(sequence(utf8String(statusString)));
  if (failInfo) info.push(failureInfoBits(failInfo));
  return sequence(sequence(...info));
}

/** PKIFailureInfo as a DER named-bit BIT STRING with one bit set. */
function failureInfoBits(failInfo: PkiFailureInfo): Buffer {
  const bit = FAILURE_INFO_BIT[failInfo];
  const bytes = Buffer.alloc((bit >> 3) + 1);
  bytes[bit >> 3] = 0x80 >> (bit & 7);
  return bitString(bytes, 7 - (bit & 7));
}

/**
 * The whole TSA exchange: parses the request, answers granted with a token, or rejection with the
 * failure info the request deserves. Only problems with the request become rejections; a failing
 * signer propagates (the HTTP layer answers systemFailure or 500 as it sees fit).
 */
export async function respondToTimeStampRequest(
  requestDer: Uint8Array,
  tsa: TimeStampAuthority & { serial: Buffer; genTime: Date },
): Promise<{ der: Buffer; status: 'granted' | 'rejection'; failInfo?: PkiFailureInfo; message?: string }> {
  try {
    const request = parseTimeStampRequest(requestDer);
    return { der: await buildTimeStampResponse({ ...tsa, request }), status: 'granted' };
  } catch (e) {
    if (!(e instanceof TimeStampRequestError)) throw e;
    return {
      der: errorTimeStampResponse('rejection', e.failInfo, e.message),
      status: 'rejection',
      failInfo: e.failInfo,
      message: e.message,
    };
  }
}

const stripZeros = (b: Buffer): Buffer => {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
};

// ---------------------------------------------------------------------------------------------
// Client side

export interface ParsedTimeStampResponse {
  status: number;
  statusName?: PkiStatus;
  statusString?: string[];
  failInfo: PkiFailureInfo[];
  /** The TimeStampToken DER, as received. */
  token?: Buffer;
}

/** Parses a TimeStampResp. Throws Asn1FormatError. */
export function parseTimeStampResponse(der: Uint8Array): ParsedTimeStampResponse {
  const { reader: r, root } = readWhole(der, 'time-stamp response');
  if (root.tag !== 0x30) formatError('a TimeStampResp is a SEQUENCE');
  const [statusInfo, token] = r.expect(
    root,
    [
      [0x30, false],
      [0x30, true],
    ],
    'TimeStampResp',
  );
  const [status, text, bits] = r.expect(
    statusInfo!,
    [
      [0x02, false],
      [0x30, true],
      [0x03, true],
    ],
    'PKIStatusInfo',
  );
  const code = r.smallInteger(status!);
  const out: ParsedTimeStampResponse = {
    status: code,
    statusName: (Object.keys(PKI_STATUS) as PkiStatus[]).find((k) => PKI_STATUS[k] === code),
    failInfo: [],
  };
  if (text)
    out.statusString = r.children(text).map((s) => {
      if (s.tag !== 0x0c) formatError('PKIFreeText holds a non-UTF8String');
      return r.content(s).toString('utf8');
    });
  if (bits) {
    const c = r.content(bits);
    if (c.length === 0) formatError('malformed PKIFailureInfo');
    for (const [name, bit] of Object.entries(FAILURE_INFO_BIT))
      if (1 + (bit >> 3) < c.length && c[1 + (bit >> 3)]! & (0x80 >> (bit & 7)))
        out.failInfo.push(name as PkiFailureInfo);
  }
  if (token) out.token = r.slice(token);
  return out;
}

export interface TimeStampResponseVerification extends TimeStampVerification {
  status?: number;
  failInfo: PkiFailureInfo[];
  token?: Buffer;
}

/**
 * Checks a TimeStampResp against the request it answers: status granted (or grantedWithMods), the
 * token verifies (verifyTimeStampToken) with the request's imprint and nonce, and it embeds the
 * TSA certificate when the request asked for it.
 */
export function verifyTimeStampResponse(
  responseDer: Uint8Array,
  request: ParsedTimeStampRequest | Uint8Array,
  opts: { certificates?: readonly Buffer[] } = {},
): TimeStampResponseVerification {
  let resp: ParsedTimeStampResponse;
  let req: ParsedTimeStampRequest;
  try {
    req =
      request instanceof Uint8Array
        ? parseTimeStampRequest(request, { hashAlgorithms: ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] })
        : request;
    resp = parseTimeStampResponse(responseDer);
  } catch (e) {
    if (e instanceof Asn1FormatError || e instanceof TimeStampRequestError)
      return {
        valid: false,
        subIndication: 'FORMAT_FAILURE',
        message: e.message,
        certificates: [],
        failInfo: [],
      };
    throw e;
  }
  const base = { status: resp.status, failInfo: resp.failInfo, token: resp.token };
  if (resp.status !== PKI_STATUS.granted && resp.status !== PKI_STATUS.grantedWithMods)
    return {
      ...base,
      valid: false,
      subIndication: 'GENERIC',
      message: `the TSA answered ${resp.statusName ?? resp.status}${resp.failInfo.length ? ` (${resp.failInfo.join(', ')})` : ''}${resp.statusString ? `: ${resp.statusString.join(' ')}` : ''}`,
      certificates: [],
    };
  if (!resp.token)
    return {
      ...base,
      valid: false,
      subIndication: 'FORMAT_FAILURE',
      message: 'granted without a token',
      certificates: [],
    };
  const v = verifyTimeStampToken(resp.token, {
    expectedImprint: { algorithm: req.hashAlgorithm, digest: req.digest },
    certificates: opts.certificates,
  });
  if (!v.valid) return { ...base, ...v };
  if ((req.nonce?.toString('hex') ?? '') !== (v.nonce?.toString('hex') ?? ''))
    return {
      ...base,
      ...v,
      valid: false,
      subIndication: 'GENERIC',
      message: 'the token nonce differs from the request nonce',
    };
  if (req.certReq && !v.certificates.some((c) => c.equals(v.tsaCertificate!)))
    return {
      ...base,
      ...v,
      valid: false,
      subIndication: 'GENERIC',
      message: 'the request asked for the TSA certificate but the token does not include it',
    };
  return { ...base, ...v };
}
