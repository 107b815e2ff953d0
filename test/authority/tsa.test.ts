// The authority's own time-stamping authority, as openssl's client sees it over HTTP.
import { writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';

describe('time-stamping authority (RFC 3161)', () => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  const tmp = tempDir();

  beforeAll(async () => {
    ta = await createTestAuthority({ backend: 'sqlite' });
    app = await buildServer({ authority: ta.authority, operatorToken: 'x'.repeat(32) });
    writeFileSync(tmp.path('root.pem'), ta.certPem('root'));
    writeFileSync(tmp.path('tsa.pem'), ta.certPem('tsa'));
  });
  afterAll(async () => {
    await app?.close();
    await ta?.close();
    tmp.cleanup();
  });

  it('answers openssl ts queries with tokens openssl verifies against the root', async () => {
    writeFileSync(tmp.path('data.txt'), '申告書 2026\n');
    const q = openssl([
      'ts',
      '-query',
      '-data',
      tmp.path('data.txt'),
      '-sha256',
      '-cert',
      '-out',
      tmp.path('q.tsq'),
    ]);
    expect(q.status).toBe(0);
    const { readFileSync } = await import('node:fs');
    const res = await app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: readFileSync(tmp.path('q.tsq')),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/timestamp-reply');
    writeFileSync(tmp.path('r.tsr'), res.rawPayload);
    const text = openssl(['ts', '-reply', '-in', tmp.path('r.tsr'), '-text']);
    expect(text.output).toContain('Status: Granted.');
    expect(text.output).toContain(`Policy OID: ${ta.authority.config.tsa.policy}`);
    const v = openssl([
      'ts',
      '-verify',
      '-in',
      tmp.path('r.tsr'),
      '-queryfile',
      tmp.path('q.tsq'),
      '-CAfile',
      tmp.path('root.pem'),
      '-untrusted',
      tmp.path('tsa.pem'),
    ]);
    expect(v.output).toContain('Verification: OK');
  });

  it('rejects garbage with a time-stamp response openssl can read, and wrong content types with 415', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: Buffer.from('not a request'),
    });
    expect(res.statusCode).toBe(200);
    writeFileSync(tmp.path('bad.tsr'), res.rawPayload);
    expect(openssl(['ts', '-reply', '-in', tmp.path('bad.tsr'), '-text']).output).toContain(
      'Status: Rejected.',
    );
    const wrong = await app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(wrong.statusCode).toBe(415);
  });
});
