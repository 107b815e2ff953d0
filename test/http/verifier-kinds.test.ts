// Which revocation information a verifier may receive: signature verifiers (署名検証者) that of signature
// certificates, user-authentication verifiers (利用者証明検証者) that of user-authentication certificates,
// both when authorised for both. Enforced on OCSP (a CertID of another CA → `unauthorized`), on CRLs
// (/crl/sign* needs sign, /crl/auth* needs auth) and on POST /verify (needs sign). SQLite and PostgreSQL.

import { readFileSync, writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/core/pem.ts';
import { buildServer } from '../../src/http/server.ts';
import { isSuccessfulOcsp } from '../../src/http/verifier-access.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

const OCSP_UNAUTHORIZED = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x06]);
const FACTS = {
  name: '山田　太郎',
  dateOfBirth: '1990-04-01',
  sex: 'male',
  address: '東京都千代田区霞が関1-2-2',
} as const;

describe.each(testStores())('verifier kinds (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  const tmp = tempDir('jpki-verifier-kinds-');
  const f = (n: string) => tmp.path(n);
  const ocspReq: Record<'sign' | 'auth', Buffer> = { sign: Buffer.alloc(0), auth: Buffer.alloc(0) };
  let op: Record<string, string>;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend, algorithm: 'ecdsa-p256' });
    writeFileSync(`${ta.dir}/verifiers.json`, JSON.stringify({ rateLimit: { requestsPerSecond: 0 } }));
    app = await buildServer({
      authority: ta.authority,
      operatorToken: ta.operatorToken,
      verifiers: { revocationAccess: 'verifiers' },
    });
    op = { authorization: `Bearer ${ta.operatorToken}` };
    for (const kind of ['sign', 'auth'] as const) {
      const { csrPath } = opensslCsr(tmp.dir, kind, 'ec');
      const csr = readFileSync(csrPath, 'utf8');
      const cert = await ta.authority.issue(kind === 'sign' ? { kind, csr, facts: FACTS } : { kind, csr });
      writeFileSync(f(`${kind}-holder.pem`), cert.pem);
      writeFileSync(f(`${kind}.pem`), encodePem('CERTIFICATE', ta.authority.certificate(kind)));
      const r = openssl(
        ['ocsp', '-issuer', f(`${kind}.pem`), '-cert', f(`${kind}-holder.pem`), '-no_nonce'].concat([
          '-reqout',
          f(`${kind}-req.der`),
        ]),
      );
      expect(r.status, r.output).toBe(0);
      ocspReq[kind] = readFileSync(f(`${kind}-req.der`));
      await ta.authority.generateCrl(kind);
    }
  });

  afterAll(async () => {
    await app?.close();
    await ta?.close();
    tmp.cleanup();
  });

  async function verifierWithKey(name: string, kinds?: string[]) {
    const r = await app.inject({
      method: 'POST',
      url: '/api/v1/verifiers',
      headers: op,
      payload: {
        name,
        category: 'private-certification-business',
        contractFrom: '2026-01-01',
        contractTo: '2099-12-31',
        ...(kinds ? { kinds } : {}),
      },
    });
    expect(r.statusCode, r.body).toBe(201);
    const v = r.json() as { id: number; kinds: string[] };
    const k = await app.inject({
      method: 'POST',
      url: `/api/v1/verifiers/${v.id}/keys`,
      headers: op,
      payload: {},
    });
    expect(k.statusCode, k.body).toBe(201);
    return { ...v, headers: { authorization: `Bearer ${k.json().apiKey}` } };
  }

  const ocsp = (kind: 'sign' | 'auth', headers: Record<string, string>) =>
    app.inject({
      method: 'POST',
      url: '/ocsp',
      headers: { ...headers, 'content-type': 'application/ocsp-request' },
      payload: ocspReq[kind],
    });

  it('a verifier registered without kinds may receive both; with auth only, no signature revocation data', async () => {
    const both = await verifierWithKey('both kinds');
    expect(both.kinds).toEqual(['sign', 'auth']);
    for (const kind of ['sign', 'auth'] as const) {
      expect(isSuccessfulOcsp((await ocsp(kind, both.headers)).rawPayload)).toBe(true);
      expect((await app.inject({ url: `/crl/${kind}.crl`, headers: both.headers })).statusCode).toBe(200);
    }

    const authOnly = await verifierWithKey('利用者証明検証者', ['auth']);
    expect(authOnly.kinds).toEqual(['auth']);
    expect(isSuccessfulOcsp((await ocsp('auth', authOnly.headers)).rawPayload)).toBe(true);
    const refused = await ocsp('sign', authOnly.headers);
    expect(refused.rawPayload.equals(OCSP_UNAUTHORIZED)).toBe(true);

    const crl = await app.inject({ url: '/crl/sign.crl', headers: authOnly.headers });
    expect(crl.statusCode).toBe(403);
    expect(crl.headers['x-jpki-refusal']).toBe('kind-not-authorised');
    expect(crl.json().message).toMatch(
      /authorised for revocation information of user-authentication certificates only; sign\.crl concerns signature certificates/,
    );
    expect((await app.inject({ url: '/crl/sign-delta.crl', headers: authOnly.headers })).statusCode).toBe(
      403,
    );
    expect((await app.inject({ url: '/crl/auth.crl', headers: authOnly.headers })).statusCode).toBe(200);
    // The root's CRL (of the issuing CAs) concerns no resident's certificate.
    expect((await app.inject({ url: '/crl/root.crl', headers: authOnly.headers })).statusCode).not.toBe(403);

    const verify = await app.inject({
      method: 'POST',
      url: '/verify',
      headers: authOnly.headers,
      payload: { signature: 'AAAA' },
    });
    expect(verify.statusCode).toBe(403);
    expect(verify.json().message).toMatch(/POST \/verify/);

    // Only successful answers are metered: the refused OCSP request is not billed.
    await app.verifiers.meter.flush();
    const usage = await app.inject({
      url: `/api/v1/verifiers/${authOnly.id}/usage?month=${new Date(Date.now() + 9 * 3600_000).toISOString().slice(0, 7)}`,
      headers: op,
    });
    expect(usage.statusCode, usage.body).toBe(200);
    expect(usage.json().total).toMatchObject({ ocsp: 1, crl: 1 });
  });

  it('operators change the kinds (audited); a bad set is refused with 400 and nothing changes', async () => {
    const v = await verifierWithKey('署名検証者', ['sign']);
    expect(isSuccessfulOcsp((await ocsp('sign', v.headers)).rawPayload)).toBe(true);
    expect((await ocsp('auth', v.headers)).rawPayload.equals(OCSP_UNAUTHORIZED)).toBe(true);

    for (const kinds of [[], ['card'], ['sign', 'sign']]) {
      const bad = await app.inject({
        method: 'PUT',
        url: `/api/v1/verifiers/${v.id}/kinds`,
        headers: op,
        payload: { kinds },
      });
      expect(bad.statusCode, JSON.stringify(kinds)).toBe(400);
    }
    const changed = await app.inject({
      method: 'PUT',
      url: `/api/v1/verifiers/${v.id}/kinds`,
      headers: op,
      payload: { kinds: ['auth'] },
    });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json().kinds).toEqual(['auth']);
    // Takes effect at once (the change clears the credential cache).
    expect(isSuccessfulOcsp((await ocsp('auth', v.headers)).rawPayload)).toBe(true);
    expect((await ocsp('sign', v.headers)).rawPayload.equals(OCSP_UNAUTHORIZED)).toBe(true);
    const audit = await ta.authority.store.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('subject', '=', `verifier:${v.id}`)
      .where('action', '=', 'verifier.kinds')
      .execute();
    expect(audit).toHaveLength(1);
    expect(String(audit[0]!.details)).toMatch(/"from":"sign".*"to":"auth"/);

    const self = await app.inject({ url: '/api/v1/verifier', headers: v.headers });
    expect(self.json().kinds).toEqual(['auth']);
  });
});
