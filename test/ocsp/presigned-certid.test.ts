// The responder serves a stored response only for a request whose CertID is exactly the one the stored
// response echoes (SHA-1, NULL parameters, the issuer's hashes, the serial): isPresignedCertId must agree
// with building that CertID, and say no to anything else (else the response would name another CertID).

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPresignedCertId, presignedCertId } from '../../src/authority/ocsp-responses.ts';
import { octetString, oid, sequence, tlv } from '../../src/core/der.ts';
import { type IssuerHashes, parseOcspRequest } from '../../src/core/ocsp.ts';
import { OID } from '../../src/core/oids.ts';
import { ocspRequest } from './helpers.ts';

const hashes = (): IssuerHashes => ({
  sha1: { name: randomBytes(20), key: randomBytes(20) },
  sha256: { name: randomBytes(32), key: randomBytes(32) },
});
const certIdOf = (der: Buffer) => parseOcspRequest(der).certIds[0]!;

describe('isPresignedCertId', () => {
  const issuer = hashes();

  it('accepts the CertID of the pre-signed response, for short and sign-octet serials', () => {
    for (const serial of [
      '01',
      '7f',
      '00ff',
      `00${randomBytes(16).toString('hex')}`,
      randomBytes(20)
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
    ]) {
      const id = certIdOf(ocspRequest(issuer, serial));
      expect(isPresignedCertId(issuer, id)).toBe(true);
      expect(id.der.equals(presignedCertId(issuer, id.serial).der)).toBe(true);
    }
  });

  it('refuses another issuer, SHA-256, and a CertID without the NULL parameters', () => {
    const serial = randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '2');
    expect(isPresignedCertId(hashes(), certIdOf(ocspRequest(issuer, serial)))).toBe(false);
    expect(isPresignedCertId(issuer, certIdOf(ocspRequest(issuer, serial, { sha256: true })))).toBe(false);
    const noParams = sequence(
      sequence(oid(OID.sha1)),
      octetString(issuer.sha1.name),
      octetString(issuer.sha1.key),
      tlv(0x02, Buffer.from(serial, 'hex')),
    );
    const id = certIdOf(sequence(sequence(sequence(sequence(noParams)))));
    expect(id.hashAlgorithm).toBe('sha1');
    expect(isPresignedCertId(issuer, id)).toBe(false);
  });

  it('refuses a CertID whose bytes differ from its parsed serial (the echoed CertID would differ)', () => {
    const id = certIdOf(ocspRequest(issuer, '0a0b0c'));
    expect(isPresignedCertId(issuer, { ...id, serial: Buffer.from('0a0b0d', 'hex') })).toBe(false);
    expect(isPresignedCertId(issuer, { ...id, serial: Buffer.from('0a0b', 'hex') })).toBe(false);
  });
});
