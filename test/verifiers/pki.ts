// A verifier CA and client certificates for the mTLS tests, made with @peculiar/x509 on node's WebCrypto
// (ECDSA P-256: fast to generate). Until the authority issues from a verifier CA of its own, this is the
// "configured trusted CA" of verifiers.json.

import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface TestIdentity {
  certPem: string;
  keyPem: string;
  der: Buffer;
}

export interface TestCa extends TestIdentity {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  /** Issues a certificate under this CA. */
  issue(cn: string, opts?: IssueOptions): Promise<TestIdentity>;
}

export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** Default: clientAuth. */
  extendedKeyUsage?: string[];
  ca?: boolean;
  /** DNS names (for a TLS server certificate). */
  dnsNames?: string[];
  ipAddresses?: string[];
}

let serial = 1;

async function keyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim()}\n-----END PRIVATE KEY-----\n`;
}

export async function createTestCa(cn = 'Test Verifier CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as unknown as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    name: `C=JP, O=JPKI, CN=${cn}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const ca: TestCa = {
    cert,
    keys,
    certPem: cert.toString('pem'),
    keyPem: await keyPem(keys.privateKey),
    der: Buffer.from(cert.rawData),
    async issue(subjectCn, o = {}) {
      const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, [
        'sign',
        'verify',
      ])) as unknown as CryptoKeyPair;
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(!!o.ca, undefined, true),
        new x509.KeyUsagesExtension(
          o.ca ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        new x509.ExtendedKeyUsageExtension(o.extendedKeyUsage ?? ['1.3.6.1.5.5.7.3.2']),
      ];
      if (o.dnsNames || o.ipAddresses)
        extensions.push(
          new x509.SubjectAlternativeNameExtension([
            ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
            ...(o.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
          ]),
        );
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: (serial++).toString(16).padStart(2, '0'),
        subject: `C=JP, O=Verifier, CN=${subjectCn}`,
        issuer: cert.subject,
        notBefore: o.notBefore ?? new Date(Date.now() - DAY),
        notAfter: o.notAfter ?? new Date(Date.now() + 30 * DAY),
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions,
      });
      return {
        certPem: leaf.toString('pem'),
        keyPem: await keyPem(leafKeys.privateKey),
        der: Buffer.from(leaf.rawData),
      };
    },
  };
  return ca;
}
