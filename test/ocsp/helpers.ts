// Helpers of the pre-signed OCSP tests: an EC CSR, an RFC 5019 request for a serial, and what a
// response says, read with @peculiar/asn1-ocsp as a verifier would.

import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { AsnParser } from '@peculiar/asn1-schema';
import {
  bitString,
  explicit,
  integer,
  NULL,
  octetString,
  oid,
  sequence,
  set,
  tlv,
  utf8String,
} from '../../src/core/der.ts';
import type { IssuerHashes } from '../../src/core/ocsp.ts';
import { OID } from '../../src/core/oids.ts';

export function ecCsr(): Buffer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const info = sequence(
    integer(0),
    sequence(set(sequence(oid(OID.commonName), utf8String('ocsp-test')))),
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(0),
  );
  return sequence(info, sequence(oid(OID.ecdsaWithSHA256)), bitString(sign('sha256', info, privateKey)));
}

/** One CertID (SHA-1 with NULL parameters, as openssl sends, or SHA-256), optionally a nonce. */
export function ocspRequest(
  hashes: IssuerHashes,
  serialHex: string,
  opts: { sha256?: boolean; nonce?: boolean } = {},
): Buffer {
  const alg = opts.sha256 ? 'sha256' : 'sha1';
  const certId = sequence(
    sequence(oid(OID[alg]), NULL),
    octetString(hashes[alg].name),
    octetString(hashes[alg].key),
    tlv(0x02, Buffer.from(serialHex, 'hex')),
  );
  const exts = opts.nonce
    ? [
        explicit(
          2,
          sequence(sequence(oid(OID.ocspNonce), octetString(octetString(Buffer.from('0123456789abcdef'))))),
        ),
      ]
    : [];
  return sequence(sequence(sequence(sequence(certId)), ...exts));
}

export interface Said {
  status: 'good' | 'revoked' | 'unknown';
  producedAt: Date;
  nextUpdate?: Date;
}

export function said(der: Buffer): Said {
  const res = AsnParser.parse(der, OCSPResponse);
  if (res.responseStatus !== 0) throw new Error(`OCSP response status ${res.responseStatus}`);
  const basic = AsnParser.parse(res.responseBytes!.response.buffer, BasicOCSPResponse);
  const single = basic.tbsResponseData.responses[0]!;
  const s = single.certStatus;
  const status = s.good !== undefined ? 'good' : s.revoked ? 'revoked' : 'unknown';
  return { status, producedAt: basic.tbsResponseData.producedAt, nextUpdate: single.nextUpdate };
}

export const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
