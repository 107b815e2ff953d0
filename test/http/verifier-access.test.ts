// The revocation endpoints as authorised verifiers and operators see them: the operators' verifier API,
// access with an API key or a client certificate (401 / 403 / 429), metering of what was answered, the
// verifier's own usage and statements, and openssl ocsp against a live server with the key in a header.
// A real authority and store per backend (SQLite, and PostgreSQL when JPKI_TEST_POSTGRES_URL is set).

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/core/pem.ts';
import { buildServer } from '../../src/http/server.ts';
import { isSuccessfulOcsp } from '../../src/http/verifier-access.ts';
import { StaffService } from '../../src/staff/service.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import { createTestCa, type TestCa } from '../verifiers/pki.ts';

const PASSWORD = 'operator-password-2026';
const OCSP_UNAUTHORIZED = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x06]);
const OCSP_TRY_LATER = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]);

/** openssl ocsp as a client; async so that the in-process server can answer. */
function ocspClient(args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['ocsp', ...args], { timeout: 20_000 });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('close', (status) => resolve({ status, output: out }));
  });
}

const thisMonth = () => new Date(Date.now() + 9 * 3600_000).toISOString().slice(0, 7);
const contract = { contractFrom: '2026-01-01', contractTo: '2099-12-31' };

describe.each(testStores())('verifier access to the revocation endpoints (%s)', (backend) => {
  let ta: TestAuthority;
  /** revocationAccess 'verifiers', real clock (adjustable), no rate limit. */
  let guarded: FastifyInstance;
  let guardedUrl: string;
  let clockOffset = 0;
  const tmp = tempDir('jpki-verifier-http-');
  const f = (n: string) => tmp.path(n);
  let ocspReq: Buffer;
  const op: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  let ca: TestCa;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend, algorithm: 'ecdsa-p256' });
    ca = await createTestCa();
    writeFileSync(f('verifier-ca.pem'), ca.certPem);
    // The tariff and the verifier CA from DATA/verifiers.json, as an operator would set them.
    writeFileSync(
      join(ta.dir, 'verifiers.json'),
      JSON.stringify({
        tariff: { monthlyBaseFeeYen: 5000, ocspYen: 2, crlYen: 20, verificationYen: 20 },
        rateLimit: { requestsPerSecond: 0 },
        clientCa: f('verifier-ca.pem'),
      }),
    );
    const staff = new StaffService(ta.authority.store.db, { scrypt: { ln: 10, r: 8, p: 1 } });
    for (const [username, role, municipalityCode] of [
      ['ops', 'operator', undefined],
      ['clerk', 'clerk', '131016'],
    ] as const)
      await staff.createStaff({ username, password: PASSWORD, role, municipalityCode }, 'cli:test');

    guarded = await buildServer({
      authority: ta.authority,
      operatorToken: ta.operatorToken,
      verifiers: { revocationAccess: 'verifiers', now: () => Date.now() + clockOffset },
    });
    await guarded.listen({ port: 0, host: '127.0.0.1' });
    const addr = guarded.server.address();
    guardedUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    for (const username of ['ops', 'clerk']) {
      const r = await guarded.inject({
        method: 'POST',
        url: '/api/v1/staff/login',
        payload: { username, password: PASSWORD },
      });
      expect(r.statusCode).toBe(200);
      tokens[username] = r.json().token;
    }
    op.authorization = `Bearer ${ta.operatorToken}`;

    // A certificate to ask about, the CA certificates for openssl, and CRLs to download.
    const { csrPath } = opensslCsr(tmp.dir, 'holder', 'ec');
    const cert = await ta.authority.issue({ kind: 'auth', csr: readFileSync(csrPath, 'utf8') });
    writeFileSync(f('holder.pem'), cert.pem);
    for (const id of ['root', 'auth'] as const)
      writeFileSync(f(`${id}.pem`), encodePem('CERTIFICATE', ta.authority.certificate(id)));
    const r = openssl([
      'ocsp',
      '-issuer',
      f('auth.pem'),
      '-cert',
      f('holder.pem'),
      '-no_nonce',
      '-reqout',
      f('req.der'),
    ]);
    expect(r.status).toBe(0);
    ocspReq = readFileSync(f('req.der'));
    await ta.authority.generateCrl('auth');
  });

  afterAll(async () => {
    await guarded?.close();
    await ta?.close();
    tmp.cleanup();
  });

  const api = (
    app: FastifyInstance,
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    headers: Record<string, string>,
    payload?: object,
  ) => app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  async function register(name: string, c = contract) {
    const r = await api(guarded, 'POST', '/api/v1/verifiers', op, {
      name,
      category: 'private-certification-business',
      ...c,
    });
    expect(r.statusCode, r.body).toBe(201);
    return r.json() as { id: number; name: string };
  }
  async function issueKey(id: number, body: object = {}) {
    const r = await api(guarded, 'POST', `/api/v1/verifiers/${id}/keys`, op, body);
    expect(r.statusCode, r.body).toBe(201);
    return r.json() as { keyId: string; apiKey: string; expiresAt: string | null; validUntil: string };
  }
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  function postOcsp(app: FastifyInstance, headers: Record<string, string> = {}, body: Buffer = ocspReq) {
    return app.inject({
      method: 'POST',
      url: '/ocsp',
      headers: { 'content-type': 'application/ocsp-request', ...headers },
      payload: body,
    });
  }
  const getOcsp = (app: FastifyInstance, headers: Record<string, string> = {}) =>
    app.inject({ method: 'GET', url: `/ocsp/${encodeURIComponent(ocspReq.toString('base64'))}`, headers });
  const getCrl = (app: FastifyInstance, headers: Record<string, string> = {}) =>
    app.inject({ method: 'GET', url: '/crl/auth.crl', headers });
  const postVerify = (app: FastifyInstance, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/verify',
      headers,
      payload: { signature: Buffer.from('not a signature').toString('base64') },
    });

  function expectOcspRefusal(r: LightMyRequestResponse, status: number, code: string) {
    expect(r.statusCode).toBe(status);
    expect(r.headers['content-type']).toBe('application/ocsp-response');
    expect(r.rawPayload.equals(OCSP_UNAUTHORIZED)).toBe(true);
    expect(r.headers['x-jpki-refusal']).toBe(code);
    expect(r.headers['cache-control']).toBe('no-store');
  }
  function expectJsonRefusal(r: LightMyRequestResponse, status: number, message: RegExp) {
    expect(r.statusCode).toBe(status);
    expect(r.json()).toMatchObject({
      error: status === 401 ? 'Unauthorized' : 'Forbidden',
      message: expect.stringMatching(message),
    });
  }
  async function usage(id: number) {
    const r = await api(guarded, 'GET', `/api/v1/verifiers/${id}/usage?month=${thisMonth()}`, op);
    expect(r.statusCode, r.body).toBe(200);
    return r.json().total as { ocsp: number; crl: number; verification: number };
  }

  // -------------------------------------------------------------------------------------------
  describe('operators’ API', () => {
    it('registers verifiers with the operator token or an operator’s session; refuses others', async () => {
      const byToken = await register('Token Registered KK');
      expect(byToken).toMatchObject({ status: 'active', createdBy: 'api:operator-token' });
      const bySession = await api(guarded, 'POST', '/api/v1/verifiers', bearer(tokens.ops!), {
        name: 'Session Registered',
        category: 'administrative-body',
        ...contract,
      });
      expect(bySession.statusCode).toBe(201);
      expect(bySession.json().createdBy).toMatch(/^staff:\d+$/);

      const body = { name: 'Nope', category: 'administrative-body', ...contract };
      expect((await api(guarded, 'POST', '/api/v1/verifiers', {}, body)).statusCode).toBe(401);
      expect(
        (await api(guarded, 'POST', '/api/v1/verifiers', bearer('not-a-session'), body)).statusCode,
      ).toBe(401);
      const clerk = await api(guarded, 'POST', '/api/v1/verifiers', bearer(tokens.clerk!), body);
      expect(clerk.statusCode).toBe(403);
      expect(clerk.json()).toMatchObject({
        error: 'ForbiddenError',
        message: expect.stringMatching(/verifier.manage/),
      });
      for (const bad of [
        { ...body, category: 'bank' },
        { ...body, extra: 1 },
        { ...body, contractFrom: '2026-02-30' },
        { name: 'x' },
      ])
        expect((await api(guarded, 'POST', '/api/v1/verifiers', op, bad)).statusCode).toBe(400);
      const dup = await api(guarded, 'POST', '/api/v1/verifiers', op, {
        ...body,
        name: 'Token Registered KK',
      });
      expect(dup.statusCode).toBe(409);
      expect((await api(guarded, 'GET', '/api/v1/verifiers/999999', op)).statusCode).toBe(404);
      const list = await api(guarded, 'GET', '/api/v1/verifiers?status=active', op);
      expect(list.json().verifiers.map((v: { name: string }) => v.name)).toEqual(
        expect.arrayContaining(['Token Registered KK', 'Session Registered']),
      );
    });

    it('issues a key shown once, lists it without its secret, changes status with reasons and keeps the history', async () => {
      const v = await register('History KK');
      const created = await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/keys`, op, { label: 'primary' });
      expect(created.headers['cache-control']).toBe('no-store');
      const key = created.json();
      expect(key.apiKey).toMatch(/^jpkv_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
      expect(key.validUntil).toBe('2099-12-31T15:00:00.000Z');
      const noReason = await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/status`, op, {
        status: 'suspended',
      });
      expect(noReason.statusCode).toBe(400);
      expect(noReason.json().message).toMatch(/reason/);
      expect(
        (
          await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/status`, op, {
            status: 'suspended',
            reason: 'late payment',
          })
        ).json().status,
      ).toBe('suspended');
      expect(
        (
          await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/status`, op, {
            status: 'suspended',
            reason: 'again',
          })
        ).statusCode,
      ).toBe(409);
      expect(
        (await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/status`, op, { status: 'active' })).json()
          .status,
      ).toBe('active');
      const contractChange = await api(guarded, 'PUT', `/api/v1/verifiers/${v.id}/contract`, op, {
        contractFrom: '2026-01-01',
        contractTo: '2098-03-31',
      });
      expect(contractChange.json().contractTo).toBe('2098-03-31');
      const d = await api(guarded, 'GET', `/api/v1/verifiers/${v.id}`, op);
      expect(d.statusCode).toBe(200);
      expect(d.body).not.toContain(key.apiKey.slice(22));
      expect(d.json().apiKeys).toEqual([
        expect.objectContaining({ keyId: key.keyId, label: 'primary', state: 'valid', revokedAt: null }),
      ]);
      expect(
        d.json().history.map((h: { status: string; reason: string | null }) => [h.status, h.reason]),
      ).toEqual([
        ['active', null],
        ['suspended', 'late payment'],
        ['active', null],
      ]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe("revocationAccess: 'verifiers'", () => {
    it('keeps CA certificates, health and metrics public', async () => {
      for (const url of ['/ca/root.pem', '/ca/auth.der', '/healthz', '/metrics'])
        expect((await guarded.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    });

    it('answers 401 without a key or with an unknown one: OCSP as an OCSP response, CRLs and /verify as JSON', async () => {
      const none = await postOcsp(guarded);
      expectOcspRefusal(none, 401, 'missing-credential');
      expect(none.headers['www-authenticate']).toBe('Bearer realm="jpki-revocation"');
      expectOcspRefusal(await getOcsp(guarded), 401, 'missing-credential');
      expectJsonRefusal(await getCrl(guarded), 401, /authorised verifiers only/);
      expectJsonRefusal(await postVerify(guarded), 401, /authorised verifiers only/);

      const unknownKey = `jpkv_${'0'.repeat(16)}_${'A'.repeat(43)}`;
      for (const headers of [
        bearer(unknownKey),
        { 'x-api-key': unknownKey },
        bearer('garbage'),
        { 'x-api-key': ta.operatorToken },
      ]) {
        const r = await postOcsp(guarded, headers);
        expectOcspRefusal(r, 401, 'unknown-credential');
        expect(r.headers['www-authenticate']).toMatch(/error="invalid_token"/);
        expectJsonRefusal(await getCrl(guarded, headers), 401, /unknown API key/);
      }
    });

    it('serves a verifier with a good key (Bearer or X-API-Key) and meters exactly what was answered', async () => {
      const v = await register('Metered KK');
      const { apiKey } = await issueKey(v.id);
      const headers = [bearer(apiKey), { 'x-api-key': apiKey }];
      for (const h of headers) {
        const post = await postOcsp(guarded, h);
        expect(post.statusCode).toBe(200);
        expect(isSuccessfulOcsp(post.rawPayload)).toBe(true);
        expect((await getOcsp(guarded, h)).statusCode).toBe(200);
        const crl = await getCrl(guarded, h);
        expect(crl.statusCode).toBe(200);
        expect(crl.headers['content-type']).toBe('application/pkix-crl');
        // Revalidation: 304, not a download.
        expect(
          (await getCrl(guarded, { ...h, 'if-none-match': crl.headers.etag as string })).statusCode,
        ).toBe(304);
        const report = await postVerify(guarded, h);
        expect(report.statusCode).toBe(200);
        expect(report.json().indication).toBeDefined();
      }
      // A malformed OCSP request gets an OCSP error, which is not a billable answer.
      const malformed = await postOcsp(guarded, bearer(apiKey), Buffer.from('3003020101', 'hex'));
      expect(isSuccessfulOcsp(malformed.rawPayload)).toBe(false);
      // A HEAD of a CRL is not a download either.
      expect(
        (await guarded.inject({ method: 'HEAD', url: '/crl/auth.crl', headers: bearer(apiKey) })).statusCode,
      ).toBe(200);

      expect(await usage(v.id)).toEqual({ ocsp: 4, crl: 2, verification: 2 });

      // Concurrent answers are all counted.
      const many = await Promise.all(
        Array.from({ length: 60 }, () => postOcsp(guarded, { 'x-api-key': apiKey })),
      );
      expect(many.every((r) => r.statusCode === 200)).toBe(true);
      expect((await usage(v.id)).ocsp).toBe(64);
    });

    it('refuses a suspended, ended, not-yet-started or expired-contract verifier with 403, and revoked or expired keys with 401', async () => {
      const v = await register('Refused KK');
      const { apiKey, keyId } = await issueKey(v.id);
      const status = (body: object) => api(guarded, 'POST', `/api/v1/verifiers/${v.id}/status`, op, body);
      expect((await postOcsp(guarded, bearer(apiKey))).statusCode).toBe(200);

      await status({ status: 'suspended', reason: 'unpaid' });
      expectOcspRefusal(await postOcsp(guarded, bearer(apiKey)), 403, 'suspended');
      expectJsonRefusal(await getCrl(guarded, bearer(apiKey)), 403, /suspended/);
      expectJsonRefusal(await postVerify(guarded, bearer(apiKey)), 403, /suspended/);
      await status({ status: 'active', reason: 'paid' });
      expect((await postOcsp(guarded, bearer(apiKey))).statusCode).toBe(200);

      // The contract's last day passes (the server's clock moves on).
      const short = await register('Short Contract', {
        contractFrom: '2026-01-01',
        contractTo: '2099-12-30',
      });
      const shortKey = (await issueKey(short.id)).apiKey;
      expect((await getCrl(guarded, bearer(shortKey))).statusCode).toBe(200);
      clockOffset = Date.parse('2099-12-31T00:00:00+09:00') - Date.now();
      try {
        expectJsonRefusal(await getCrl(guarded, bearer(shortKey)), 403, /ended on 2099-12-30/);
      } finally {
        clockOffset = 0;
      }
      const future = await register('Future Contract', {
        contractFrom: '2099-01-01',
        contractTo: '2099-12-31',
      });
      expectOcspRefusal(
        await postOcsp(guarded, bearer((await issueKey(future.id)).apiKey)),
        403,
        'outside-contract',
      );

      const expiring = await issueKey(v.id, { expiresAt: new Date(Date.now() + 60_000).toISOString() });
      expect((await postOcsp(guarded, bearer(expiring.apiKey))).statusCode).toBe(200);
      clockOffset = 120_000;
      try {
        expectOcspRefusal(await postOcsp(guarded, bearer(expiring.apiKey)), 401, 'expired-credential');
      } finally {
        clockOffset = 0;
      }

      const revoke = await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/keys/${keyId}/revocation`, op);
      expect(revoke.json()).toEqual({ revoked: true });
      expectOcspRefusal(await postOcsp(guarded, bearer(apiKey)), 401, 'revoked-credential');
      expectJsonRefusal(await getCrl(guarded, bearer(apiKey)), 401, /revoked/);

      // The key that has not expired yet stops with the verifier's end.
      expect((await postOcsp(guarded, bearer(expiring.apiKey))).statusCode).toBe(200);
      await status({ status: 'ended', reason: 'contract terminated' });
      expectOcspRefusal(await postOcsp(guarded, bearer(expiring.apiKey)), 403, 'ended');
      expectJsonRefusal(await postVerify(guarded, bearer(expiring.apiKey)), 403, /has ended/);
      expect((await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/keys`, op, {})).statusCode).toBe(409);
    });

    it('works end to end with openssl ocsp and the key in an Authorization or X-API-Key header', async () => {
      const v = await register('OpenSSL KK');
      const { apiKey } = await issueKey(v.id);
      const base = [
        '-issuer',
        f('auth.pem'),
        '-cert',
        f('holder.pem'),
        '-url',
        `${guardedUrl}/ocsp`,
        '-CAfile',
        f('root.pem'),
      ];
      const without = await ocspClient(base);
      expect(without.status).not.toBe(0);
      expect(without.output).toMatch(/code=401/);
      const bearerRun = await ocspClient([...base, '-header', `Authorization=Bearer ${apiKey}`]);
      expect(bearerRun.output).toContain('Response verify OK');
      expect(bearerRun.output).toMatch(/holder\.pem: good/);
      const xApiKey = await ocspClient([...base, '-header', `X-API-Key=${apiKey}`]);
      expect(xApiKey.output).toMatch(/holder\.pem: good/);
      expect((await usage(v.id)).ocsp).toBe(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('a verifier’s own account', () => {
    it('reads its own usage and statements (JSON and CSV), never another’s, and not the operators’ API', async () => {
      const a = await register('Self A');
      const b = await register('Self B');
      const keyA = (await issueKey(a.id)).apiKey;
      const keyB = (await issueKey(b.id)).apiKey;
      for (let i = 0; i < 3; i++) expect((await postOcsp(guarded, bearer(keyA))).statusCode).toBe(200);
      expect((await getCrl(guarded, bearer(keyB))).statusCode).toBe(200);

      const me = await api(guarded, 'GET', '/api/v1/verifier', bearer(keyA));
      expect(me.json()).toMatchObject({
        id: a.id,
        name: 'Self A',
        status: 'active',
        credential: { type: 'api-key' },
      });
      const creds = await api(guarded, 'GET', '/api/v1/verifier/credentials', bearer(keyA));
      expect(creds.json().apiKeys).toEqual([expect.objectContaining({ state: 'valid' })]);
      expect(creds.body).not.toContain(keyA.slice(22));
      expect(creds.json().certificates).toEqual([]);
      const u = await api(guarded, 'GET', '/api/v1/verifier/usage', bearer(keyA));
      expect(u.json()).toMatchObject({ verifierId: a.id, total: { ocsp: 3, crl: 0, verification: 0 } });
      const s = await api(guarded, 'GET', `/api/v1/verifier/statements/${thisMonth()}`, bearer(keyA));
      expect(s.statusCode).toBe(200);
      expect(s.json()).toMatchObject({ verifier: { id: a.id }, totalYen: 5000 + 3 * 2, final: false });
      const csv = await api(
        guarded,
        'GET',
        `/api/v1/verifier/statements/${thisMonth()}?format=csv`,
        bearer(keyB),
      );
      expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(csv.body.split('\r\n')[3]).toBe(
        `${thisMonth()},${b.id},Self B,private-certification-business,crl,CRL downloads (失効リスト提供),1,20,20`,
      );

      // Nothing in the own-account API names another verifier; the operators' routes refuse a verifier key.
      expect((await api(guarded, 'GET', `/api/v1/verifiers/${b.id}/usage`, bearer(keyA))).statusCode).toBe(
        401,
      );
      expect(
        (
          await api(guarded, 'GET', `/api/v1/verifiers/${b.id}/statements/${thisMonth()}`, {
            'x-api-key': keyA,
          })
        ).statusCode,
      ).toBe(401);
      expect((await api(guarded, 'GET', '/api/v1/verifier-usage', bearer(keyA))).statusCode).toBe(401);
      expect((await api(guarded, 'GET', '/api/v1/verifier/usage', {})).statusCode).toBe(401);
      expect(
        (await api(guarded, 'GET', '/api/v1/verifier/usage?month=2026-13', bearer(keyA))).statusCode,
      ).toBe(400);

      // A suspended verifier still reads its statements (but gets no revocation data).
      await api(guarded, 'POST', `/api/v1/verifiers/${a.id}/status`, op, {
        status: 'suspended',
        reason: 'review',
      });
      expect(
        (await api(guarded, 'GET', `/api/v1/verifier/statements/${thisMonth()}`, bearer(keyA))).statusCode,
      ).toBe(200);

      // The operators' overview has both, and the CSV form.
      const o = await api(guarded, 'GET', `/api/v1/verifier-usage?month=${thisMonth()}`, op);
      const rows = o.json().verifiers as {
        verifierId: number;
        ocsp: number;
        crl: number;
        amountYen: number;
      }[];
      expect(rows.find((r) => r.verifierId === a.id)).toMatchObject({ ocsp: 3, crl: 0, amountYen: 5006 });
      expect(rows.find((r) => r.verifierId === b.id)).toMatchObject({ ocsp: 0, crl: 1, amountYen: 5020 });
      expect(o.json().total.amountYen).toBe(rows.reduce((s, r) => s + r.amountYen, 0));
      const oc = await api(guarded, 'GET', `/api/v1/verifier-usage?month=${thisMonth()}&format=csv`, op);
      expect(
        oc.body.startsWith('month,verifier_id,verifier,category,status,ocsp,crl,verification,amount_yen\r\n'),
      ).toBe(true);
      expect((await api(guarded, 'GET', '/api/v1/verifier-usage', bearer(tokens.clerk!))).statusCode).toBe(
        403,
      );
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('other servers on the same authority', () => {
    it('public mode: anyone may ask; a presented key is still checked and counted', async () => {
      const pub = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken });
      try {
        expect(pub.verifiers.revocationAccess).toBe('public');
        expect((await postOcsp(pub)).statusCode).toBe(200);
        expect((await getCrl(pub)).statusCode).toBe(200);
        expectOcspRefusal(await postOcsp(pub, bearer('garbage')), 401, 'unknown-credential');
        const v = await register('Public Mode KK');
        const { apiKey } = await issueKey(v.id);
        expect((await postOcsp(pub, bearer(apiKey))).statusCode).toBe(200);
        // Written when the server closes (onClose flushes).
        await pub.close();
        expect((await usage(v.id)).ocsp).toBe(1);
      } finally {
        await pub.close();
      }
    });

    it('refuses to start with an unknown revocationAccess or a bad verifiers.json value', async () => {
      await expect(
        buildServer({
          authority: ta.authority,
          operatorToken: ta.operatorToken,
          verifiers: { revocationAccess: 'everyone' as 'public' },
        }),
      ).rejects.toThrow(/revocationAccess must be one of public, verifiers/);
      await expect(
        buildServer({
          authority: ta.authority,
          operatorToken: ta.operatorToken,
          verifiers: { settings: { tariff: { ocspYen: -2 } } },
        }),
      ).rejects.toThrow(/tariff.ocspYen/);
    });

    it('rate limits per verifier with 429 and Retry-After (tryLater for OCSP); other verifiers are not affected', async () => {
      const limited = await buildServer({
        authority: ta.authority,
        operatorToken: ta.operatorToken,
        verifiers: {
          revocationAccess: 'verifiers',
          settings: { rateLimit: { requestsPerSecond: 1, burst: 2 } },
        },
      });
      try {
        const v = await register('Flooding KK');
        const w = await register('Quiet KK');
        const { apiKey } = await issueKey(v.id);
        const quiet = (await issueKey(w.id)).apiKey;
        expect((await postOcsp(limited, bearer(apiKey))).statusCode).toBe(200);
        expect((await getCrl(limited, bearer(apiKey))).statusCode).toBe(200);
        const third = await postOcsp(limited, bearer(apiKey));
        expect(third.statusCode).toBe(429);
        expect(third.headers['retry-after']).toBe('1');
        expect(third.rawPayload.equals(OCSP_TRY_LATER)).toBe(true);
        const crl = await getCrl(limited, bearer(apiKey));
        expect(crl.statusCode).toBe(429);
        expect(crl.json()).toMatchObject({
          error: 'TooManyRequests',
          message: expect.stringMatching(/rate limit of 1 requests per second/),
        });
        expect((await postOcsp(limited, bearer(quiet))).statusCode).toBe(200);
        await new Promise((r) => setTimeout(r, 1100));
        expect((await postOcsp(limited, bearer(apiKey))).statusCode).toBe(200);
      } finally {
        await limited.close();
      }
    });

    it('mTLS: a registered client certificate of the verifier CA gets answers; none, a stranger’s or a revoked one gets 401', async () => {
      const server = await ca.issue('127.0.0.1', {
        extendedKeyUsage: ['1.3.6.1.5.5.7.3.1'],
        ipAddresses: ['127.0.0.1'],
      });
      const tls = await buildServer({
        authority: ta.authority,
        operatorToken: ta.operatorToken,
        verifiers: { revocationAccess: 'verifiers' },
        https: {
          key: server.keyPem,
          cert: server.certPem,
          ca: [ca.certPem],
          requestCert: true,
          rejectUnauthorized: false,
        },
      });
      await tls.listen({ port: 0, host: '127.0.0.1' });
      const port = (tls.server.address() as { port: number }).port;
      const ask = (client?: { keyPem: string; certPem: string }) =>
        new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port,
              path: '/ocsp',
              method: 'POST',
              headers: { 'content-type': 'application/ocsp-request' },
              ca: ca.certPem,
              agent: false,
              ...(client ? { key: client.keyPem, cert: client.certPem } : {}),
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
            },
          );
          req.on('error', reject);
          req.end(ocspReq);
        });
      try {
        const v = await register('mTLS KK');
        const client = await ca.issue('mtls-kk');
        const reg = await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/certificates`, op, {
          certificate: client.certPem,
        });
        expect(reg.statusCode, reg.body).toBe(201);
        const fp = reg.json().fingerprintSha256 as string;
        const stranger = await (await createTestCa('Stranger CA')).issue('stranger');
        const bad = await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/certificates`, op, {
          certificate: stranger.certPem,
        });
        expect(bad.statusCode).toBe(400);
        expect(bad.json().message).toMatch(/not issued by the verifier CA/);

        const good = await ask(client);
        expect(good.status).toBe(200);
        expect(isSuccessfulOcsp(good.body)).toBe(true);
        expect((await ask()).status).toBe(401);
        expect((await ask(stranger)).status).toBe(401);
        const unregistered = await ca.issue('not-registered');
        expect((await ask(unregistered)).status).toBe(401);

        await api(guarded, 'POST', `/api/v1/verifiers/${v.id}/certificates/${fp}/revocation`, op);
        // The TLS server is another "process": its cache forgets within credentialCacheMs (5 s).
        tls.verifiers.registry.clearCache();
        const revoked = await ask(client);
        expect(revoked.status).toBe(401);
        expect(revoked.body.equals(OCSP_UNAUTHORIZED)).toBe(true);
      } finally {
        await tls.close();
      }
      // Counted by the TLS server and written at its close.
      const v = (await api(guarded, 'GET', '/api/v1/verifiers', op))
        .json()
        .verifiers.find((x: { name: string }) => x.name === 'mTLS KK');
      expect((await usage(v.id)).ocsp).toBe(1);
    });
  });
});
