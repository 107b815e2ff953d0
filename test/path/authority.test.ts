// Certificates of the project's own authority validated as a relying party would: with the
// authority's CRLs, with its OCSP answers, at times that make things expire or go stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/core/pem.ts';
import { validateCertificate } from '../../src/verifier/validate-certificate.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

describe('validating certificates of the authority', () => {
  let ta: TestAuthority;
  const tmp = tempDir('jpki-path-');
  let root: Buffer;
  let signCa: Buffer;
  let authCa: Buffer;

  beforeAll(async () => {
    ta = await createTestAuthority();
    root = ta.authority.certificate('root');
    signCa = ta.authority.certificate('sign');
    authCa = ta.authority.certificate('auth');
    writeFileSync(tmp.path('sign.pem'), encodePem('CERTIFICATE', signCa));
    await ta.authority.generateCrl('root');
  });
  afterAll(async () => {
    await ta?.close();
    tmp.cleanup();
  });

  async function issue(kind: 'sign' | 'auth', name: string) {
    const { csrPath } = opensslCsr(tmp.dir, name);
    const cert = await ta.authority.issue({
      kind,
      csr: readFileSync(csrPath, 'utf8'),
      facts:
        kind === 'sign'
          ? {
              name: '山田 太郎',
              dateOfBirth: '1980-04-01',
              sex: 'male',
              address: '東京都千代田区霞が関2丁目1番2号',
            }
          : undefined,
    });
    writeFileSync(tmp.path(`${name}.pem`), cert.pem);
    return cert;
  }

  async function crls(ca: 'sign' | 'auth' = 'sign') {
    await ta.authority.generateCrl(ca);
    const rootCrl = await ta.authority.currentCrl('root', 'full');
    const caCrl = await ta.authority.currentCrl(ca, 'full');
    return [rootCrl!.der, caCrl!.der];
  }

  /** An OCSP response from the authority, for a request made by openssl. */
  async function ocspFor(name: string): Promise<Buffer> {
    const req = tmp.path(`${name}.req`);
    const r = openssl([
      'ocsp',
      '-issuer',
      tmp.path('sign.pem'),
      '-cert',
      tmp.path(`${name}.pem`),
      '-no_nonce',
      '-reqout',
      req,
    ]);
    expect(r.status, r.output).toBe(0);
    const answer = await ta.authority.ocsp(readFileSync(req));
    expect(answer.status).toBe('successful');
    return answer.der;
  }

  it('a signature certificate validates with the CRLs (TOTAL_PASSED)', async () => {
    const cert = await issue('sign', 'valid');
    const r = await validateCertificate({
      target: Buffer.from(cert.pem),
      untrusted: [signCa, authCa],
      trust: [root],
      crls: await crls(),
    });
    expect(r.indication, r.message).toBe('TOTAL_PASSED');
    expect(r.chain).toHaveLength(3);
    expect(r.chain[0]!.equals(cert.der)).toBe(true);
    expect(r.chain[2]!.equals(root)).toBe(true);
    expect(r.revocation.map((s) => [s.index, s.source, s.status])).toEqual([
      [0, 'crl', 'good'],
      [1, 'crl', 'good'],
    ]);
    expect(r.revocation[0]!.crlNumber).toMatch(/^\d+$/);
    expect(r.message).toContain('is valid');
    // The signature certificate allows non-repudiation but not certificate signing.
    const ku = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: await crls(),
      options: { keyUsage: ['nonRepudiation'] },
    });
    expect(ku.indication).toBe('TOTAL_PASSED');
    const bad = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: await crls(),
      options: { keyUsage: ['keyCertSign'] },
    });
    expect(bad.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
    expect(bad.message).toContain('keyCertSign');
  });

  it('after revocation and a new CRL: TOTAL_FAILED/REVOKED with the time and reason', async () => {
    const cert = await issue('sign', 'revoked');
    // revoked half a minute after issuance (the authority accepts a time up to a minute ahead)
    const revokedAt = new Date(cert.notBefore.getTime() + 30_000);
    await ta.authority.revoke(cert.serial, 'keyCompromise', revokedAt);
    const list = await crls();
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: list,
      at: new Date(revokedAt.getTime() + 1000),
    });
    expect(r.indication).toBe('TOTAL_FAILED');
    expect(r.subIndication).toBe('REVOKED');
    expect(r.failedAt).toBe(0);
    expect(r.revocation[0]).toMatchObject({
      source: 'crl',
      status: 'revoked',
      reason: 'keyCompromise',
      reasonCode: 1,
    });
    expect(r.revocation[0]!.revokedAt!.getTime()).toBe(revokedAt.getTime());
    expect(r.message).toContain('keyCompromise');
    expect(r.message).toContain(revokedAt.toISOString().replace('.000Z', 'Z'));
    // validated at a time before the revocation, the same CRL says it was not revoked yet
    const before = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: list,
      at: new Date(revokedAt.getTime() - 10_000),
    });
    expect(before.indication, before.message).toBe('TOTAL_PASSED');
  });

  it('with an OCSP response from the authority: good, then revoked', async () => {
    const cert = await issue('sign', 'ocsp');
    const rootCrl = (await ta.authority.currentCrl('root', 'full'))!.der;
    const good = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl],
      ocsp: [await ocspFor('ocsp')],
    });
    expect(good.indication, good.message).toBe('TOTAL_PASSED');
    expect(good.revocation[0]).toMatchObject({ source: 'ocsp', status: 'good' });
    expect(good.revocation[0]!.producedAt).toBeInstanceOf(Date);
    expect(good.revocation[1]).toMatchObject({ source: 'crl', status: 'good' });

    await ta.authority.revoke(cert.serial, 'affiliationChanged');
    const revoked = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl],
      ocsp: [await ocspFor('ocsp')],
    });
    expect(revoked.subIndication).toBe('REVOKED');
    expect(revoked.revocation[0]).toMatchObject({
      source: 'ocsp',
      status: 'revoked',
      reason: 'affiliationChanged',
    });
  });

  it('a tampered OCSP response is not used', async () => {
    const cert = await issue('sign', 'ocsp-tampered');
    const rootCrl = (await ta.authority.currentCrl('root', 'full'))!.der;
    const der = await ocspFor('ocsp-tampered');
    const { parseOcspResponse } = await import('../../src/core/path/index.ts');
    const sig = parseOcspResponse(der).basic!.signature;
    const at = der.indexOf(sig);
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(der);
    tampered[at + 10]! ^= 0xff;
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl],
      ocsp: [tampered],
    });
    expect(r.subIndication).toBe('TRY_LATER');
    expect(r.revocation[0]!.message).toContain('does not verify');
  });

  it('an OCSP response for another certificate does not count', async () => {
    const a = await issue('sign', 'ocsp-a');
    await issue('sign', 'ocsp-b');
    const rootCrl = (await ta.authority.currentCrl('root', 'full'))!.der;
    const r = await validateCertificate({
      target: a.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl],
      ocsp: [await ocspFor('ocsp-b')],
    });
    expect(r.subIndication).toBe('TRY_LATER');
  });

  it('after the certificate expired: INDETERMINATE/OUT_OF_BOUNDS_NO_POE', async () => {
    const cert = await issue('auth', 'expired');
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [authCa],
      trust: [root],
      crls: await crls('auth'),
      at: new Date(cert.notAfter.getTime() + 24 * 3600_000),
    });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('OUT_OF_BOUNDS_NO_POE');
    expect(r.failedAt).toBe(0);
    expect(r.message).toContain('expired');
  });

  it('before the certificate is valid: TOTAL_FAILED/NOT_YET_VALID', async () => {
    const cert = await issue('auth', 'early');
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [authCa],
      trust: [root],
      crls: await crls('auth'),
      at: new Date(cert.notBefore.getTime() - 3600_000),
    });
    expect(r.indication).toBe('TOTAL_FAILED');
    expect(r.subIndication).toBe('NOT_YET_VALID');
  });

  it('a CRL past its nextUpdate: INDETERMINATE/REVOCATION_OUT_OF_BOUNDS', async () => {
    const cert = await issue('auth', 'stale');
    const [rootCrl, caCrl] = await crls('auth');
    const info = await ta.authority.currentCrlInfo('auth', 'full');
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [authCa],
      trust: [root],
      crls: [rootCrl!, caCrl!],
      at: new Date(info!.next_update + 3600_000),
    });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('REVOCATION_OUT_OF_BOUNDS');
    expect(r.message).toContain('nextUpdate');
  });

  it('without any CRL: INDETERMINATE/TRY_LATER; with revocation checking off: passed, and said so', async () => {
    const cert = await issue('auth', 'nocrl');
    const r = await validateCertificate({ target: cert.der, untrusted: [authCa], trust: [root] });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('TRY_LATER');
    expect(r.message).toMatch(/no CRL or OCSP response/);
    const skipped = await validateCertificate({
      target: cert.der,
      untrusted: [authCa],
      trust: [root],
      revocationCheck: false,
    });
    expect(skipped.indication).toBe('TOTAL_PASSED');
    expect(skipped.revocationChecked).toBe(false);
    expect(skipped.revocation.every((s) => s.status === 'skipped')).toBe(true);
    expect(skipped.message).toContain('skipped');
  });

  it('the authentication CA cannot stand in for the signature CA', async () => {
    const cert = await issue('sign', 'wrongca');
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [authCa],
      trust: [root],
      crls: await crls(),
    });
    expect(r.subIndication).toBe('NO_CERTIFICATE_CHAIN_FOUND');
    expect(r.message).toContain('JPKI for digital signature');
  });

  it('a delta CRL listing a revocation made after the full CRL', async () => {
    const cert = await issue('sign', 'delta');
    const [rootCrl, full] = await crls();
    await ta.authority.revoke(cert.serial, 'cessationOfOperation');
    await ta.authority.generateCrl('sign', { delta: true });
    const delta = (await ta.authority.currentCrl('sign', 'delta'))!.der;
    const withoutDelta = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl!, full!],
    });
    expect(withoutDelta.indication).toBe('TOTAL_PASSED');
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [signCa],
      trust: [root],
      crls: [rootCrl!, full!, delta],
    });
    expect(r.subIndication).toBe('REVOKED');
    expect(r.revocation[0]!.deltaCrlNumber).toMatch(/^\d+$/);
    expect(r.revocation[0]!.reason).toBe('cessationOfOperation');
  });
});
