// The counter's sequence with a software card and the real authority: key generated on the card, the
// request signed on the card, the certificates issued and written to the card; then the resident signs
// an application with the card and a verifier checks it with the authority's CRLs.

import { verify, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedCertificate } from '../../src/authority/authority.ts';
import { SoftwareCard } from '../../src/card/software-card.ts';
import { decodePem } from '../../src/core/pem.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { verifySignature } from '../../src/verifier/verify-signature.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { tempDir } from '../helpers/openssl.ts';
import { AUTH_PIN, SIGN_PIN, UNBLOCK } from './helpers.ts';

const FACTS = {
  name: '山田 花子',
  dateOfBirth: '1985-12-24',
  sex: 'female',
  address: '大阪府大阪市北区中之島1-3-20',
} as const;

const tmp = tempDir('jpki-card-e2e-');
let ta: TestAuthority;
let card: SoftwareCard;
let signCert: IssuedCertificate;
let authCert: IssuedCertificate;

const pem = (id: 'root' | 'sign' | 'auth') => decodePem(ta.certPem(id), ['CERTIFICATE']);

async function crls(): Promise<Buffer[]> {
  await ta.authority.generateCrl('root');
  await ta.authority.generateCrl('sign');
  return [
    (await ta.authority.currentCrl('root', 'full'))!.der,
    (await ta.authority.currentCrl('sign', 'full'))!.der,
  ];
}

beforeAll(async () => {
  ta = await createTestAuthority();
  card = await SoftwareCard.create(tmp.path('card.json'), {
    signPin: SIGN_PIN,
    authPin: AUTH_PIN,
    unblock: UNBLOCK,
  });
  // at the counter: keys made on the card, requests signed on the card, certificates written back
  await card.generateKey('sign', 'rsa-2048', SIGN_PIN);
  signCert = await ta.authority.issue({
    kind: 'sign',
    csr: await card.createCsr('sign', SIGN_PIN),
    facts: FACTS,
  });
  await card.writeCertificate('sign', signCert.der);
  await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
  authCert = await ta.authority.issue({ kind: 'auth', csr: await card.createCsr('auth', AUTH_PIN) });
  await card.writeCertificate('auth', authCert.der);
});

afterAll(async () => {
  await card?.close();
  await ta?.close();
  tmp.cleanup();
});

describe('card → authority → signed application → verifier', () => {
  it('the issued certificates are on the card, for the card’s keys', async () => {
    expect((await card.certificate('sign'))?.equals(signCert.der)).toBe(true);
    expect((await card.certificate('auth'))?.equals(authCert.der)).toBe(true);
    const onCard = await card.keyInfo('sign');
    expect(new X509Certificate(signCert.der).publicKey.export({ type: 'spki', format: 'der' })).toEqual(
      onCard?.publicKeySpki,
    );
  });

  it.each(['cms', 'xml'] as const)(
    '%s signed with the card: TOTAL_PASSED with the authority’s CRLs, four basic facts in the report',
    async (format) => {
      const content =
        format === 'xml'
          ? Buffer.from(
              '<?xml version="1.0" encoding="UTF-8"?><申告書 xmlns="urn:example:etax"><税額>43500</税額></申告書>',
            )
          : Buffer.from('転出届 2026-04-01 山田　花子\n');
      const signer = await card.signer('sign', SIGN_PIN);
      const { output } = await signDocument({
        format,
        signer,
        certificate: (await card.certificate('sign'))!,
        chain: [pem('sign')],
        content,
      });
      const report = await verifySignature({
        signature: output,
        trust: [pem('root')],
        untrusted: [pem('sign')],
        crls: await crls(),
      });
      expect(report.indication, report.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(report.signer).toMatchObject({
        kind: 'sign',
        serial: expect.any(String),
        basicFacts: { name: '山田　花子', dateOfBirth: '1985-12-24', sex: 'female' },
      });
    },
  );

  it('the authentication key answers a log-in challenge that verifies against the authentication certificate', async () => {
    const challenge = Buffer.from(`login ${Date.now()}`);
    const signature = await (await card.signer('auth', AUTH_PIN)).sign(challenge);
    expect(verify('sha256', challenge, new X509Certificate(authCert.der).publicKey, signature)).toBe(true);
  });

  it('once the signature certificate is revoked, a new signature from the card no longer passes', async () => {
    await ta.authority.revoke(signCert.serial, 'keyCompromise');
    const signer = await card.signer('sign', SIGN_PIN);
    const { output } = await signDocument({
      format: 'cms',
      signer,
      certificate: signCert.der,
      content: Buffer.from('after revocation'),
    });
    const report = await verifySignature({
      signature: output,
      trust: [pem('root')],
      untrusted: [pem('sign')],
      crls: await crls(),
    });
    expect(report.indication).not.toBe('TOTAL_PASSED');
    expect(report.messages.join('\n')).toMatch(/revoked/i);
  });
});
