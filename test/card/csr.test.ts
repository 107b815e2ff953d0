import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCsr, createCsr } from '../../src/card/csr.ts';
import { SoftwareCard } from '../../src/card/software-card.ts';
import { CsrError, verifyCsr } from '../../src/core/csr.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { buildCsr as testHelperBuildCsr } from '../signing/csr.ts';
import { AUTH_PIN, SIGN_PIN, UNBLOCK } from './helpers.ts';

const tmp = tempDir('jpki-card-csr-');
afterAll(() => tmp.cleanup());

describe('PKCS#10 requests signed through a Signer', () => {
  it.each(['rsa-2048', 'ecdsa-p256'] as const)(
    '%s: openssl req -verify accepts it (DER), and so does the authority’s verifyCsr',
    async (algorithm) => {
      const signer = SoftwareSigner.generate(algorithm);
      const der = await createCsr(signer, 'SC0123456789');
      writeFileSync(tmp.path(`${algorithm}.der`), der);
      const r = openssl(
        ['req', '-in', `${algorithm}.der`, '-inform', 'DER', '-verify', '-noout', '-subject'],
        {
          cwd: tmp.dir,
        },
      );
      expect(r.status, r.output).toBe(0);
      expect(r.output).toMatch(/verify OK/);
      expect(r.stdout).toMatch(/subject=CN\s*=\s*SC0123456789/);
      const v = verifyCsr(der);
      expect(v.spki.equals(signer.publicKeySpki)).toBe(true);
      // PEM form, via the test helper that re-exports the same implementation
      expect(testHelperBuildCsr).toBe(buildCsr);
      expect(verifyCsr(await buildCsr(signer, 'x')).spki.equals(signer.publicKeySpki)).toBe(true);
      // one flipped bit in the signed part: no proof of possession
      const bad = Buffer.from(der);
      bad[20]! ^= 1;
      expect(() => verifyCsr(bad)).toThrow(CsrError);
    },
  );

  it('a card makes its request inside (CN = the card id) after checking the PIN', async () => {
    const card = await SoftwareCard.create(tmp.path('card.json'), {
      signPin: SIGN_PIN,
      authPin: AUTH_PIN,
      unblock: UNBLOCK,
      id: 'SC-TEST-1',
    });
    try {
      const spki = await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
      const der = await card.createCsr('auth', AUTH_PIN);
      expect(verifyCsr(der).spki.equals(spki)).toBe(true);
      writeFileSync(tmp.path('card.der'), der);
      const r = openssl(['req', '-in', 'card.der', '-inform', 'DER', '-verify', '-noout', '-subject'], {
        cwd: tmp.dir,
      });
      expect(r.output).toMatch(/verify OK/);
      expect(r.stdout).toMatch(/CN\s*=\s*SC-TEST-1/);
      await expect(card.createCsr('auth', '0000')).rejects.toThrow(/2 tries left/);
    } finally {
      await card.close();
    }
  });
});
