// The operators' API for certificates of the authority's verifier CA: `{csr}` issues and registers in one
// transaction (the answer carries the PEM), a bad request is refused with nothing stored, and revoking
// the registered certificate also revokes it at the authority, so the verifier CA's CRL lists it.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

describe.each(testStores())('certificates of the verifier CA through the API (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  const tmp = tempDir('jpki-verifier-ca-');
  let op: Record<string, string>;
  let id = 0;
  let csr = '';

  beforeAll(async () => {
    ta = await createTestAuthority({ backend, algorithm: 'ecdsa-p256' });
    app = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken });
    op = { authorization: `Bearer ${ta.operatorToken}` };
    const r = await app.inject({
      method: 'POST',
      url: '/api/v1/verifiers',
      headers: op,
      payload: {
        name: 'Bank KK',
        category: 'private-certification-business',
        contractFrom: '2026-01-01',
        contractTo: '2099-12-31',
      },
    });
    expect(r.statusCode, r.body).toBe(201);
    id = r.json().id;
    csr = readFileSync(opensslCsr(tmp.dir, 'client', 'ec').csrPath, 'utf8');
  });

  afterAll(async () => {
    await app?.close();
    await ta?.close();
    tmp.cleanup();
  });

  const count = async () =>
    Number(
      (
        await ta.authority.store.db
          .selectFrom('certificates')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('ca', '=', 'verifier')
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('issues from a CSR and registers the certificate; bad requests store nothing', async () => {
    const before = await count();
    const bad = await Promise.all([
      app.inject({
        method: 'POST',
        url: `/api/v1/verifiers/${id}/certificates`,
        headers: op,
        payload: { csr: 'not a csr' },
      }),
      app.inject({
        method: 'POST',
        url: '/api/v1/verifiers/999/certificates',
        headers: op,
        payload: { csr },
      }),
      app.inject({
        method: 'POST',
        url: `/api/v1/verifiers/${id}/certificates`,
        headers: op,
        payload: { csr, certificate: 'x' },
      }),
    ]);
    expect(bad.map((r) => r.statusCode)).toEqual([400, 404, 400]);
    expect(await count()).toBe(before);

    const r = await app.inject({
      method: 'POST',
      url: `/api/v1/verifiers/${id}/certificates`,
      headers: op,
      payload: { csr },
    });
    expect(r.statusCode, r.body).toBe(201);
    const body = r.json();
    const cert = new X509Certificate(body.pem);
    expect(cert.subject).toContain(`CN=verifier-${id}`);
    expect(cert.checkIssued(new X509Certificate(ta.authority.certificate('verifier')))).toBe(true);
    expect(body.fingerprintSha256).toBe(cert.fingerprint256.replace(/:/g, '').toLowerCase());
    expect(body.state).toBe('valid');
    expect(await count()).toBe(before + 1);

    // Revoking the credential revokes the certificate at the authority: the verifier CA's CRL lists it.
    const rev = await app.inject({
      method: 'POST',
      url: `/api/v1/verifiers/${id}/certificates/${body.fingerprintSha256}/revocation`,
      headers: op,
    });
    expect(rev.json()).toEqual({ revoked: true });
    expect(await ta.authority.findRevocation(cert.serialNumber)).toBeDefined();
    await ta.authority.generateCrl('verifier');
    const crl = (await ta.authority.currentCrl('verifier', 'full'))!;
    const text = openssl(['crl', '-inform', 'DER', '-noout', '-text'], { input: crl.der });
    expect(text.stdout).toContain(`Serial Number: ${cert.serialNumber}`);
    const served = await app.inject({ url: '/crl/verifier.crl' });
    expect(served.statusCode).toBe(200);
    expect(served.rawPayload.equals(crl.der)).toBe(true);
  });
});
