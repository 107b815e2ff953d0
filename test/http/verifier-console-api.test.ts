// What the verifier console needs from the server, without a browser: /verifier/ served from the build
// (or a clear 503 before the first build), and a refused key on the verifier's own-account API saying
// which refusal it is (X-JPKI-Refusal), so the console can say "revoked" rather than "unknown".

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';

describe('verifier console: pages and refusals', () => {
  let ta: TestAuthority;
  let built: FastifyInstance;
  let unbuilt: FastifyInstance;
  const dirs: string[] = [];
  const op = () => ({ authorization: `Bearer ${ta.operatorToken}` });

  beforeAll(async () => {
    ta = await createTestAuthority({ backend: 'sqlite' });
    const web = mkdtempSync(join(tmpdir(), 'jpki-web-fake-'));
    const empty = mkdtempSync(join(tmpdir(), 'jpki-web-empty-'));
    dirs.push(web, empty);
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>counter</title>');
    writeFileSync(join(web, 'verifier.html'), '<!doctype html><title>console</title>');
    built = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken, webRoot: web });
    unbuilt = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken, webRoot: empty });
  });
  afterAll(async () => {
    await built?.close();
    await unbuilt?.close();
    await ta?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('serves the console page at /verifier/ with the strict policy, and redirects /verifier', async () => {
    const r = await built.inject({ method: 'GET', url: '/verifier/' });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('<title>console</title>');
    expect(r.headers['content-type']).toContain('text/html');
    expect(r.headers['content-security-policy']).toContain("script-src 'self'");
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['cache-control']).toBe('no-cache');
    const redirect = await built.inject({ method: 'GET', url: '/verifier' });
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/verifier/');
    // The counter page is still where it was.
    expect((await built.inject({ method: 'GET', url: '/counter/' })).body).toContain(
      '<title>counter</title>',
    );
  });

  it('says how to build the pages when they were never built', async () => {
    for (const url of ['/verifier/', '/counter/']) {
      const r = await unbuilt.inject({ method: 'GET', url });
      expect(r.statusCode).toBe(503);
      expect(r.body).toContain('npm run build:web');
    }
  });

  it('names the refusal of a missing, unknown or revoked key on the own-account API', async () => {
    const reg = await built.inject({
      method: 'POST',
      url: '/api/v1/verifiers',
      headers: op(),
      payload: {
        name: 'Console refusals Ltd',
        category: 'administrative-body',
        contractFrom: '2026-01-01',
        contractTo: '2099-12-31',
      },
    });
    expect(reg.statusCode, reg.body).toBe(201);
    const id = reg.json().id as number;
    const key = await built.inject({ method: 'POST', url: `/api/v1/verifiers/${id}/keys`, headers: op() });
    const { apiKey, keyId } = key.json() as { apiKey: string; keyId: string };
    const self = (headers: Record<string, string>) =>
      built.inject({ method: 'GET', url: '/api/v1/verifier', headers });

    const ok = await self({ 'x-api-key': apiKey });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ id, name: 'Console refusals Ltd', status: 'active' });

    const missing = await self({});
    expect([missing.statusCode, missing.headers['x-jpki-refusal']]).toEqual([401, 'missing-credential']);
    const unknown = await self({ authorization: `Bearer jpkv_0123456789abcdef_${'A'.repeat(43)}` });
    expect([unknown.statusCode, unknown.headers['x-jpki-refusal']]).toEqual([401, 'unknown-credential']);

    const revoke = await built.inject({
      method: 'POST',
      url: `/api/v1/verifiers/${id}/keys/${keyId}/revocation`,
      headers: op(),
    });
    expect(revoke.json()).toEqual({ revoked: true });
    const revoked = await self({ 'x-api-key': apiKey });
    expect([revoked.statusCode, revoked.headers['x-jpki-refusal']]).toEqual([401, 'revoked-credential']);
    expect(revoked.json().message).toContain('revoked');
  });
});
