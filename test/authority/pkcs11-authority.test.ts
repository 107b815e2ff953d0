// The whole authority with its CA keys inside a PKCS#11 token (SoftHSM2 here; an HSM in production
// through the same code): init generates the keys on the token, certificates and OCSP answers made
// with them verify in openssl, and a second authority cannot overwrite the keys.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority } from '../../src/authority/authority.ts';
import { encodePem } from '../../src/core/pem.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';

const required = process.env.JPKI_TEST_PKCS11 === '1';

// Skipped only on a developer machine without SoftHSM2; CI sets JPKI_TEST_PKCS11=1, which makes
// a missing SoftHSM2 fail the suite.
describe.skipIf(!required && !softHsmAvailable())('authority with CA keys on a PKCS#11 token', () => {
  let token: SoftHsmToken;
  let authority: Authority;
  const tmp = tempDir();
  const dataDir = join(tmp.dir, 'data');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    token = await createSoftHsmToken({ label: 'jpki-ca' });
    env = { JPKI_PKCS11_PIN: token.pin };
    await Authority.init({
      dataDir,
      env,
      algorithm: 'ecdsa-p256',
      keyStore: { type: 'pkcs11', module: token.module, tokenLabel: token.tokenLabel },
    });
    authority = await Authority.open(dataDir, { env });
  });

  afterAll(async () => {
    await authority?.close();
    await token?.cleanup();
    tmp.cleanup();
  });

  it('keeps no key material in the data directory', () => {
    const cfg = JSON.parse(readFileSync(join(dataDir, 'authority.json'), 'utf8'));
    expect(cfg.keyStore).toEqual({ type: 'pkcs11', module: token.module, tokenLabel: 'jpki-ca' });
    expect(() => readFileSync(join(dataDir, 'keys', 'jpki-root.key.pem'))).toThrow();
  });

  it('issues a certificate that openssl verifies up to the token-signed root', async () => {
    const { csrPath } = opensslCsr(tmp.dir, 'hsmuser', 'ec');
    const cert = await authority.issue({ kind: 'auth', csr: readFileSync(csrPath, 'utf8') });
    for (const id of ['root', 'auth'] as const)
      writeFileSync(tmp.path(`${id}.pem`), encodePem('CERTIFICATE', authority.certificate(id)));
    writeFileSync(tmp.path('hsmuser.pem'), cert.pem);
    const text = openssl(['x509', '-in', tmp.path('root.pem'), '-noout', '-text']);
    expect(text.output).toContain('ecdsa-with-SHA256');
    const r = openssl([
      'verify',
      '-CAfile',
      tmp.path('root.pem'),
      '-untrusted',
      tmp.path('auth.pem'),
      tmp.path('hsmuser.pem'),
    ]);
    expect(r.output).toContain(': OK');

    // A CRL signed on the token
    await authority.revoke(cert.serial, 'keyCompromise');
    const crl = await authority.generateCrl('auth');
    const der = (await authority.currentCrl('auth', crl.kind))!.der;
    writeFileSync(tmp.path('auth.crl'), der);
    const c = openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      tmp.path('auth.crl'),
      '-noout',
      '-CAfile',
      tmp.path('auth.pem'),
    ]);
    expect(c.output).toContain('verify OK');

    // An OCSP answer signed by the token's delegated responder key
    const req = openssl([
      'ocsp',
      '-issuer',
      tmp.path('auth.pem'),
      '-cert',
      tmp.path('hsmuser.pem'),
      '-reqout',
      tmp.path('req.der'),
    ]);
    expect(req.status).toBe(0);
    const ans = await authority.ocsp(readFileSync(tmp.path('req.der')));
    writeFileSync(tmp.path('resp.der'), ans.der);
    const v = openssl([
      'ocsp',
      '-respin',
      tmp.path('resp.der'),
      '-reqin',
      tmp.path('req.der'),
      '-issuer',
      tmp.path('auth.pem'),
      '-CAfile',
      tmp.path('root.pem'),
      '-resp_text',
    ]);
    expect(v.output).toContain('Response verify OK');
    expect(v.output).toContain('Cert Status: revoked');
  });

  it('refuses to init a second authority over the keys already on the token', async () => {
    await expect(
      Authority.init({
        dataDir: join(tmp.dir, 'other'),
        env,
        keyStore: { type: 'pkcs11', module: token.module, tokenLabel: token.tokenLabel },
      }),
    ).rejects.toThrow(/already holds a key labelled jpki-root/);
    // and the first authority still signs with its keys
    const { csrPath } = opensslCsr(tmp.dir, 'after', 'ec');
    await expect(authority.issue({ kind: 'auth', csr: readFileSync(csrPath, 'utf8') })).resolves.toBeTruthy();
  });
});
