// The verifiers' credentials: API keys and client certificates (mTLS).
//
// API key: `jpkv_<key id>_<secret>`: the key id is 8 random bytes as 16 hex digits (public, the primary
// key of verifier_api_keys, so a presented key is found with one index probe), the secret 32 random bytes
// (256 bits) as base64url. Only SHA-256 of the secret is stored: the secret is uniformly random, so a fast
// hash is enough (nothing to brute-force that is cheaper than guessing 256 bits), and the comparison of the
// two hashes is constant-time.
//
// Client certificate: issued by the verifier CA (a configured trusted CA certificate), registered for one
// verifier by its SHA-256 fingerprint. The TLS handshake proves possession of the key; the registry says
// whose certificate it is and whether it still counts.

import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { decodePem } from '../core/pem.ts';

export const API_KEY_PREFIX = 'jpkv';
const API_KEY = /^jpkv_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
  keyId: string;
  /** The whole key, to be shown once and never stored. */
  apiKey: string;
  secretSha256: string;
}

export function generateApiKey(): NewApiKey {
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { keyId, apiKey: `${API_KEY_PREFIX}_${keyId}_${secret}`, secretSha256: sha256Hex(secret) };
}

/** Splits a presented key into its id and secret; undefined when it is not one of ours in form. */
export function parseApiKey(presented: string): { keyId: string; secret: string } | undefined {
  const m = API_KEY.exec(presented);
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

/** Constant-time comparison of a presented secret with the stored hash. */
export function secretMatches(secret: string, storedSha256: string): boolean {
  const a = createHash('sha256').update(secret, 'utf8').digest();
  const b = Buffer.from(storedSha256, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export class CertificateCredentialError extends Error {
  override name = 'CertificateCredentialError';
}

export interface ClientCertificate {
  der: Buffer;
  fingerprintSha256: string;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: number;
  notAfter: number;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';

/** Reads a PEM or DER certificate; throws CertificateCredentialError when it is not one. */
export function readCertificate(input: string | Uint8Array): X509Certificate {
  try {
    const der =
      typeof input === 'string'
        ? decodePem(input, ['CERTIFICATE'])
        : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    return new X509Certificate(der);
  } catch {
    throw new CertificateCredentialError('not an X.509 certificate (PEM or DER)');
  }
}

/**
 * Checks that `certificate` can be a verifier's client certificate under `trustedCa`: issued and signed
 * by it, not a CA, usable for TLS client authentication, and valid at `now`. Returns what the registry
 * keeps of it.
 */
export function checkClientCertificate(
  certificate: X509Certificate,
  trustedCa: X509Certificate,
  now: number,
): ClientCertificate {
  if (!certificate.checkIssued(trustedCa) || !certificate.verify(trustedCa.publicKey))
    throw new CertificateCredentialError(
      `the certificate was not issued by the verifier CA (${trustedCa.subject.replace(/\n/g, ', ')})`,
    );
  if (certificate.ca) throw new CertificateCredentialError('a CA certificate cannot be a client certificate');
  const eku = certificate.keyUsage;
  if (eku && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EKU))
    throw new CertificateCredentialError(
      'the certificate is not for TLS client authentication (extKeyUsage)',
    );
  const notBefore = new Date(certificate.validFrom).getTime();
  const notAfter = new Date(certificate.validTo).getTime();
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter))
    throw new CertificateCredentialError('the certificate has an unreadable validity period');
  if (notAfter <= now) throw new CertificateCredentialError('the certificate has expired');
  return {
    der: certificate.raw,
    fingerprintSha256: sha256Hex(certificate.raw),
    serial: certificate.serialNumber.toLowerCase(),
    subject: certificate.subject.replace(/\n/g, ', '),
    issuer: certificate.issuer.replace(/\n/g, ', '),
    notBefore,
    notAfter,
  };
}

/** "AB:CD:…" (node:crypto's fingerprint256) to lowercase hex. */
export function fingerprintHex(colonSeparated: string): string {
  return colonSeparated.replace(/:/g, '').toLowerCase();
}
