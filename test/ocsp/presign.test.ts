// Pre-signed OCSP responses (docs/ocsp.md): the batch signer stores one response per certificate, the
// responder serves those bytes, a revocation replaces them in its own transaction, and a batch that
// races revocations never leaves "good" behind. On SQLite, and on PostgreSQL when it is configured.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedCertificate } from '../../src/authority/authority.ts';
import { issuerHashes } from '../../src/core/ocsp.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { ecCsr, ocspRequest, said } from './helpers.ts';

describe.each(testStores())('pre-signed OCSP responses (%s)', (backend) => {
  let ta: TestAuthority;
  let certs: IssuedCertificate[];
  const hashes = () => issuerHashes(ta.authority.certificate('auth'));
  const ask = async (serial: string, opts: { sha256?: boolean; nonce?: boolean } = {}) =>
    (await ta.authority.ocsp(ocspRequest(hashes(), serial, opts))).der;
  const stored = (serial: string) =>
    ta.authority.store.db
      .selectFrom('ocsp_responses')
      .selectAll()
      .where('serial', '=', serial)
      .executeTakeFirst();

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    certs = [];
    for (let i = 0; i < 40; i++) certs.push(await ta.authority.issue({ kind: 'auth', csr: ecCsr() }));
    await ta.authority.revoke(certs[0]!.serial, 'keyCompromise');
  }, 60_000);
  afterAll(() => ta?.close());

  it('signs a response for every certificate still without one, and a second run signs none', async () => {
    // The revocation before any batch already stored its revoked response.
    expect((await stored(certs[0]!.serial))?.status_key).toMatch(/^r\d+:1$/);
    const progress: number[] = [];
    const first = await ta.authority.ocspResponses.presign({
      batchSize: 7,
      total: true,
      onProgress: (p) => progress.push(p.examined),
    });
    expect(first).toMatchObject({ examined: 40, signed: 39, good: 39, revoked: 0, superseded: 0 });
    expect(progress.at(-1)).toBe(40);
    const row = await stored(certs[1]!.serial);
    expect(row?.status_key).toBe('good');
    expect(row!.next_update - row!.this_update).toBe(24 * 3600_000);
    expect((await stored(certs[0]!.serial))?.status_key).toMatch(/^r\d+:1$/);
    const again = await ta.authority.ocspResponses.presign();
    expect(again).toMatchObject({ examined: 40, signed: 0 });
  });

  it('answers a single SHA-1 CertID without nonce with the stored bytes', async () => {
    const der = await ask(certs[2]!.serial);
    expect(der.equals((await stored(certs[2]!.serial))!.der)).toBe(true);
    expect(said(der).status).toBe('good');
    expect(said(await ask(certs[0]!.serial)).status).toBe('revoked');
    // Twice the same bytes (the memory cache on PostgreSQL, the row on SQLite).
    expect((await ask(certs[2]!.serial)).equals(der)).toBe(true);
  });

  it('signs on demand what the stored response does not answer: a nonce, a SHA-256 CertID, an unknown serial', async () => {
    const row = (await stored(certs[3]!.serial))!;
    const withNonce = await ask(certs[3]!.serial, { nonce: true });
    expect(said(withNonce).status).toBe('good');
    expect(withNonce.equals(row.der)).toBe(false);
    const sha256 = await ask(certs[3]!.serial, { sha256: true });
    expect(said(sha256).status).toBe('good');
    expect(sha256.equals(row.der)).toBe(false);
    expect(said(await ask('0123456789abcdef')).status).toBe('unknown');
  });

  it('a revocation replaces the stored response in its transaction: "revoked" as soon as revoke returns', async () => {
    const c = certs[4]!;
    expect(said(await ask(c.serial)).status).toBe('good'); // now in the memory cache on PostgreSQL
    await ta.authority.revoke(c.serial, 'affiliationChanged');
    expect((await stored(c.serial))?.status_key).toMatch(/^r\d+:3$/);
    expect(said(await ask(c.serial)).status).toBe('revoked');
  });

  it('a revocation inside a caller transaction: "revoked" from its commit, nothing if it rolls back', async () => {
    const c = certs[5]!;
    expect(said(await ask(c.serial)).status).toBe('good');
    await ta.authority.store.db.transaction().execute(async (trx) => {
      await ta.authority.revoke(c.serial, 'superseded', undefined, { db: trx });
    });
    expect(said(await ask(c.serial)).status).toBe('revoked');

    const d = certs[6]!;
    expect(said(await ask(d.serial)).status).toBe('good');
    await expect(
      ta.authority.store.db.transaction().execute(async (trx) => {
        await ta.authority.revoke(d.serial, 'superseded', undefined, { db: trx });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await ta.authority.findRevocation(d.serial)).toBeUndefined();
    expect((await stored(d.serial))?.status_key).toBe('good');
    expect(said(await ask(d.serial)).status).toBe('good');
  });

  it('a batch racing revocations never leaves "good" stored for a revoked certificate', async () => {
    // Stale every stored response, so the batch signs all of them again while revocations come in.
    await ta.authority.store.db.updateTable('ocsp_responses').set({ next_update: 0 }).execute();
    const victims = certs.slice(10, 30);
    const batch = ta.authority.ocspResponses.presign({ batchSize: 3, concurrency: 2 });
    for (const v of victims) await ta.authority.revoke(v.serial, 'keyCompromise');
    const r = await batch;
    expect(r.examined).toBe(40);
    for (const v of victims) {
      expect((await stored(v.serial))?.status_key, v.serial).not.toBe('good');
      expect(said(await ask(v.serial)).status).toBe('revoked');
    }
    // The next run finds every revoked certificate with its revoked response, and signs only what is stale.
    await ta.authority.ocspResponses.presign();
    for (const v of victims) expect((await stored(v.serial))?.status_key).not.toBe('good');
  });

  it('a stale stored response is not served: it is signed on demand with a fresh nextUpdate', async () => {
    const c = certs[35]!;
    await ta.authority.store.db
      .updateTable('ocsp_responses')
      .set({ next_update: Date.now() + 30_000 })
      .where('serial', '=', c.serial)
      .execute();
    await ta.authority.ocspResponses.poll(); // not a revocation: the cache may hold it still on PostgreSQL
    const der = await ask(c.serial);
    expect(said(der).status).toBe('good');
    const nu = said(der).nextUpdate!.getTime();
    expect(nu).toBeGreaterThan(Date.now() + 60_000);
  });

  it('presignSerials signs the named certificates only: good, revoked, and skips an unknown serial', async () => {
    const [a, b] = [
      await ta.authority.issue({ kind: 'auth', csr: ecCsr() }),
      await ta.authority.issue({ kind: 'auth', csr: ecCsr() }),
    ];
    await ta.authority.revoke(b.serial, 'superseded');
    await ta.authority.store.db.deleteFrom('ocsp_responses').where('serial', '=', a.serial).execute();
    const r = await ta.authority.ocspResponses.presignSerials([a.serial, b.serial, '0fedcba987654321']);
    expect(r).toMatchObject({ examined: 3, signed: 2, good: 1, revoked: 1, superseded: 0 });
    expect((await stored(a.serial))?.status_key).toBe('good');
    expect((await stored(b.serial))?.status_key).toMatch(/^r\d+:4$/);
    expect(await stored('0fedcba987654321')).toBeUndefined();
    expect((await ask(a.serial)).equals((await stored(a.serial))!.der)).toBe(true);
    expect(said(await ask(b.serial)).status).toBe('revoked');
  });

  it('refuses a bad batch size', async () => {
    await expect(ta.authority.ocspResponses.presign({ batchSize: 0 })).rejects.toThrow(/batch size/);
  });
});
