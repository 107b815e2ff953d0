// Two responder processes on one store (docs/ocsp.md): they answer the same GET with the same bytes,
// and both answer "revoked" within the documented window after a third process (this one, the
// authority) revokes; after that window neither ever answers "good". On PostgreSQL the responders hold
// responses in memory and learn of revocations by LISTEN/NOTIFY (1 s polling as the fallback); on
// SQLite they read the stored row for every answer.

import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedCertificate } from '../../src/authority/authority.ts';
import { issuerHashes } from '../../src/core/ocsp.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { ecCsr, ocspRequest, said } from './helpers.ts';

/** The documented window: the feed's poll period (1 s), plus room for a loaded machine. */
const WINDOW_MS = 1500;

interface Responder {
  child: ChildProcess;
  url: string;
}

async function startResponder(ta: TestAuthority): Promise<Responder> {
  const args = ['--import', 'tsx', new URL('./responder-child.ts', import.meta.url).pathname, ta.dir];
  if (ta.databaseUrl) args.push(ta.databaseUrl);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...ta.env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const m = /^port (\d+)$/.exec(line);
    if (m) return { child, url: `http://127.0.0.1:${m[1]}` };
  }
  throw new Error('the responder exited before listening');
}

async function get(r: Responder, request: Buffer) {
  const res = await fetch(`${r.url}/ocsp/${encodeURIComponent(request.toString('base64'))}`);
  expect(res.status).toBe(200);
  return { der: Buffer.from(await res.arrayBuffer()), etag: res.headers.get('etag') };
}

describe.each(testStores())('two OCSP responder processes on one store (%s)', (backend) => {
  let ta: TestAuthority;
  let certs: IssuedCertificate[];
  const responders: Responder[] = [];
  const request = (serial: string) => ocspRequest(issuerHashes(ta.authority.certificate('auth')), serial);

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    certs = [];
    for (let i = 0; i < 8; i++) certs.push(await ta.authority.issue({ kind: 'auth', csr: ecCsr() }));
    await ta.authority.ocspResponses.presign();
    responders.push(...(await Promise.all([startResponder(ta), startResponder(ta)])));
  }, 90_000);
  afterAll(async () => {
    await Promise.all(
      responders.map(
        (r) =>
          new Promise<void>((resolve) => {
            r.child.once('exit', () => resolve());
            r.child.stdin!.end();
            setTimeout(() => r.child.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    await ta?.close();
  });

  it('answer the same GET with the same bytes and the same ETag', async () => {
    for (const c of certs) {
      const [a, b] = await Promise.all(responders.map((r) => get(r, request(c.serial))));
      expect(said(a!.der).status).toBe('good');
      expect(a!.der.equals(b!.der)).toBe(true);
      expect(a!.etag).toBe(b!.etag);
      // Again (from memory on PostgreSQL): still the same bytes.
      expect((await get(responders[0]!, request(c.serial))).der.equals(a!.der)).toBe(true);
    }
  });

  it('both answer "revoked" within the window after another process revokes, and never "good" after it', async () => {
    const latencies: number[] = [];
    for (const c of certs.slice(0, 4)) {
      const req = request(c.serial);
      for (const r of responders) expect(said((await get(r, req)).der).status).toBe('good');
      await ta.authority.revoke(c.serial, 'keyCompromise');
      const acknowledged = performance.now();
      const firstRevoked: (number | undefined)[] = [undefined, undefined];
      // Ask both until both say revoked, then for 300 ms more.
      let stopAt = Number.POSITIVE_INFINITY;
      while (performance.now() < stopAt) {
        const answers = await Promise.all(responders.map((r) => get(r, req)));
        const t = performance.now() - acknowledged;
        answers.forEach((a, i) => {
          const status = said(a.der).status;
          if (status === 'revoked') firstRevoked[i] ??= t;
          else {
            expect(firstRevoked[i], `responder ${i} said ${status} again after "revoked"`).toBeUndefined();
            expect(
              t,
              `responder ${i} still said ${status} ${t.toFixed(0)} ms after the revocation`,
            ).toBeLessThan(WINDOW_MS);
          }
        });
        if (firstRevoked.every((x) => x !== undefined) && stopAt === Number.POSITIVE_INFINITY)
          stopAt = performance.now() + 300;
      }
      latencies.push(...(firstRevoked as number[]));
    }
    console.log(`${backend}: "revoked" after ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);
    expect(Math.max(...latencies)).toBeLessThan(WINDOW_MS);
  }, 60_000);
});
