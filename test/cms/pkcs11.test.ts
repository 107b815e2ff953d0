// CMS signatures and time-stamp tokens made by keys inside a PKCS#11 token (SoftHSM2), checked by
// openssl: signing goes through Signer.sign() only, so an HSM or an IC card works like a software key.

import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCertificate } from '../../src/core/certificate.ts';
import { signCms, verifyCms } from '../../src/core/cms/index.ts';
import { certificateInfo } from '../../src/core/cms/signed-data.ts';
import { timeStampingTemplate } from '../../src/core/profiles.ts';
import { newSerial } from '../../src/core/serial.ts';
import {
  buildTimeStampResponse,
  parseTimeStampRequest,
  verifyTimeStampResponse,
} from '../../src/core/tsp/index.ts';
import { Pkcs11KeyStore } from '../../src/keys/pkcs11.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';
import { makePki, type Pki, writeCertPem } from './pki.ts';

const required = process.env.JPKI_TEST_PKCS11 === '1';

describe.skipIf(!required && !softHsmAvailable())('CMS and TSP with PKCS#11 keys (SoftHSM2)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let pki: Pki;
  let token: SoftHsmToken;
  let store: Pkcs11KeyStore;
  const content = Buffer.from('signed on a token\r\n');

  beforeAll(async () => {
    tmp = tempDir('jpki-cms-p11-');
    pki = makePki(tmp.dir);
    writeFileSync(tmp.path('data.bin'), content);
    token = await createSoftHsmToken({ label: 'jpki-cms' });
    store = new Pkcs11KeyStore({ module: token.module, tokenLabel: token.tokenLabel, pin: token.pin });
  });
  afterAll(async () => {
    await store?.close();
    await token?.cleanup();
    tmp?.cleanup();
  });

  for (const alg of ['rsa-2048', 'ecdsa-p256'] as const) {
    it(`${alg}: signCms on the token, verified by openssl and verifyCms`, async () => {
      const signer = await store.generate(`cms-${alg}`, alg);
      const cert = await pki.issue(signer.publicKeySpki, `Token ${alg}`);
      const der = await signCms({
        signer,
        certificate: cert,
        chain: [pki.inter.der],
        content,
        detached: true,
      });
      writeFileSync(tmp.path(`p11-${alg}.der`), der);
      const r = openssl(
        [
          'cms',
          '-verify',
          '-CAfile',
          'root.pem',
          '-inform',
          'DER',
          '-in',
          `p11-${alg}.der`,
          '-content',
          'data.bin',
          '-binary',
          '-purpose',
          'any',
          '-cades',
          '-out',
          '/dev/null',
        ],
        { cwd: tmp.dir },
      );
      expect(r.output).toContain('CAdES Verification successful');
      const v = verifyCms(der, { detachedContent: content });
      expect(v.status, v.message).toBe('valid');
      expect(v.signerCertificate).toEqual(cert);
    });
  }

  it('a TSA whose key is on the token', async () => {
    const signer = await store.generate('tsa', 'ecdsa-p256');
    const inter = certificateInfo(pki.inter.der);
    const t = timeStampingTemplate(
      signer.publicKeySpki,
      { name: inter.subject, spki: inter.spki },
      new Date(),
      1,
    );
    const cert = await signCertificate(pki.inter.signer, {
      serial: newSerial(),
      issuer: inter.subject,
      subject: t.subject,
      notBefore: t.validity.notBefore,
      notAfter: t.validity.notAfter,
      spki: signer.publicKeySpki,
      extensions: t.extensions,
    });
    writeCertPem(tmp.path('p11-tsa.pem'), cert);
    const q = openssl(['ts', '-query', '-data', 'data.bin', '-sha256', '-cert', '-out', 'p11.tsq'], {
      cwd: tmp.dir,
    });
    expect(q.status, q.output).toBe(0);
    const request = parseTimeStampRequest(readFileSync(tmp.path('p11.tsq')));
    const resp = await buildTimeStampResponse({
      signer,
      tsaCertificate: cert,
      chain: [pki.inter.der],
      policy: '1.2.3.4.1',
      request,
      serial: newSerial(),
      genTime: new Date(),
    });
    writeFileSync(tmp.path('p11.tsr'), resp);
    const v = openssl(
      [
        'ts',
        '-verify',
        '-in',
        'p11.tsr',
        '-queryfile',
        'p11.tsq',
        '-CAfile',
        'root.pem',
        '-untrusted',
        'inter.pem',
      ],
      { cwd: tmp.dir },
    );
    expect(v.output).toContain('Verification: OK');
    expect(verifyTimeStampResponse(resp, request).valid).toBe(true);
  });
});
