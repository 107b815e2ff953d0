import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority } from '../../src/authority/authority.ts';
import { issueForResident } from '../../src/counter/issuance.ts';
import { residentCertificates } from '../../src/register/certificates.ts';
import { type OutboxOutcome, OutboxProcessor } from '../../src/register/outbox.ts';
import { type RegisterEventInput, recordEvent } from '../../src/register/register.ts';
import { revokeResidentCertificate } from '../../src/register/slots.ts';
import type { Store } from '../../src/store/db.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { tempDir } from '../helpers/openssl.ts';
import {
  makeCsrs,
  newResidentId,
  newSourceId,
  ocspCertStatus,
  ocspRequest,
  registration,
  waitFor,
} from './helpers.ts';

const tmp = tempDir('jpki-outbox-');
const CHILD = resolve(import.meta.dirname, 'outbox-child.ts');
afterAll(() => tmp.cleanup());

describe.each(testStores())('register events revoke certificates (%s)', (backend) => {
  let ta: TestAuthority;
  let authority: Authority;
  let store: Store;
  let csrs: Buffer[];
  let next = 0;
  const csr = () => csrs[next++ % csrs.length]!;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    authority = ta.authority;
    store = authority.store;
    csrs = makeCsrs(50);
  });
  afterAll(async () => {
    await ta?.close();
  });

  async function residentWithCertificates(kinds: ('sign' | 'auth')[] = ['sign', 'auth']) {
    const residentId = newResidentId();
    await recordEvent(store, registration(residentId, '2020-01-01'));
    const certs: Record<string, Awaited<ReturnType<typeof issueForResident>>> = {};
    for (const kind of kinds)
      certs[kind] = await issueForResident(authority, store, { residentId, kind, csr: csr() });
    return { residentId, sign: certs.sign!, auth: certs.auth! };
  }

  const move = (residentId: string, address = '東京都千代田区永田町1丁目7番1号'): RegisterEventInput => ({
    sourceEventId: newSourceId('move'),
    residentId,
    type: 'moved-within',
    effectiveDate: '2024-04-01',
    facts: { address },
  });

  let reqNo = 0;
  async function ocspStatus(kind: 'sign' | 'auth', pem: string) {
    const req = ocspRequest(tmp.dir, ta.certPath(kind), pem, `${backend}-${reqNo++}`);
    return { req, ...ocspCertStatus((await authority.ocsp(req)).der) };
  }

  async function pendingOutbox(residentId: string) {
    return store.db
      .selectFrom('outbox')
      .selectAll()
      .where('resident_id', '=', residentId)
      .where('processed_at', 'is', null)
      .execute();
  }

  it('a move revokes the signature certificate, visible in OCSP within 1 s; the authentication certificate survives', async () => {
    const { residentId, sign, auth } = await residentWithCertificates();
    const processor = new OutboxProcessor(authority);
    processor.start();
    try {
      const signReq = await ocspStatus('sign', sign.pem);
      expect(signReq.status).toBe('good');
      const t0 = performance.now();
      await recordEvent(store, move(residentId));
      let status = 'good';
      let reason: number | undefined;
      while (status !== 'revoked' && performance.now() - t0 < 5000) {
        const s = ocspCertStatus((await authority.ocsp(signReq.req)).der);
        status = s.status;
        reason = s.reason;
        if (status !== 'revoked') await new Promise((r) => setImmediate(r));
      }
      const ms = performance.now() - t0;
      console.log(
        `[register→OCSP] ${backend}: revocation visible in OCSP ${ms.toFixed(1)} ms after recordEvent returned`,
      );
      expect(status).toBe('revoked');
      expect(reason).toBe(3); // affiliationChanged
      expect(ms).toBeLessThan(1000);
      expect((await ocspStatus('auth', auth.pem)).status).toBe('good');
    } finally {
      await processor.stop();
    }

    const certs = await residentCertificates(store, residentId);
    const s = certs.find((c) => c.serial === sign.serial)!;
    expect(s).toMatchObject({
      kind: 'sign',
      status: 'revoked',
      current: false,
      revocation: {
        reason: 'affiliationChanged',
        cause: 'register-event',
        event: { type: 'moved-within', effectiveDate: '2024-04-01' },
      },
    });
    expect(s.message).toEqual({
      ja: '転居により署名用電子証明書は失効しました。市区町村窓口で新しい証明書の発行を受けられます。',
      en: 'Your signature certificate was revoked because you moved. You can get a new one at your municipal counter.',
    });
    expect(certs.find((c) => c.serial === auth.serial)).toMatchObject({ status: 'valid', current: true });
    expect(certs.find((c) => c.serial === auth.serial)?.message).toBeUndefined();

    // The slot is free: a new signature certificate, with the new address, without replace.
    const renewed = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
    expect(renewed.replaced).toBeUndefined();
    expect(renewed.der.includes(Buffer.from('東京都千代田区永田町1丁目7番1号'))).toBe(true);
  });

  it('death revokes both certificates (cessationOfOperation) and ends issuance', async () => {
    const { residentId, sign, auth } = await residentWithCertificates();
    const processor = new OutboxProcessor(authority);
    processor.start();
    try {
      const r = await recordEvent(store, {
        sourceEventId: newSourceId('death'),
        residentId,
        type: 'died',
        effectiveDate: '2024-05-05',
      });
      expect(r.outbox).toBe('revoke-all');
      await waitFor(async () => (await ocspStatus('auth', auth.pem)).status === 'revoked');
    } finally {
      await processor.stop();
    }
    expect(await ocspStatus('sign', sign.pem)).toMatchObject({ status: 'revoked', reason: 5 });
    expect(await ocspStatus('auth', auth.pem)).toMatchObject({ status: 'revoked', reason: 5 });
    const certs = await residentCertificates(store, residentId);
    expect(certs.map((c) => [c.kind, c.status, c.current, c.revocation?.reason])).toEqual(
      expect.arrayContaining([
        ['sign', 'revoked', false, 'cessationOfOperation'],
        ['auth', 'revoked', false, 'cessationOfOperation'],
      ]),
    );
    expect(certs.find((c) => c.kind === 'auth')?.message?.ja).toBe(
      '死亡により利用者証明用電子証明書は失効しました。',
    );
    await expect(
      issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() }),
    ).rejects.toThrow(/is deceased/);
  });

  it('an event for a resident without certificates is recorded and processed with nothing to revoke', async () => {
    const residentId = newResidentId();
    await recordEvent(store, registration(residentId));
    const r = await recordEvent(store, move(residentId));
    expect(r.outbox).toBe('revoke-sign');
    const outcomes: OutboxOutcome[] = [];
    const processor = new OutboxProcessor(authority, { onProcessed: (o) => outcomes.push(o) });
    expect(await processor.drain()).toBeGreaterThanOrEqual(1);
    expect(outcomes.find((o) => o.residentId === residentId)).toMatchObject({ revoked: [], kept: [] });
    expect(await pendingOutbox(residentId)).toEqual([]);
    expect(await residentCertificates(store, residentId)).toEqual([]);
  });

  it('crash safety: an event recorded with no processor running is revoked by the next one (another process)', async () => {
    const { residentId, sign } = await residentWithCertificates(['sign']);
    await recordEvent(store, {
      sourceEventId: newSourceId('rename'),
      residentId,
      type: 'name-changed',
      effectiveDate: '2024-06-01',
      facts: { name: '佐藤 太郎' },
    });
    // "The process died" after the register write: the row waits, the certificate is still good.
    expect(await pendingOutbox(residentId)).toHaveLength(1);
    expect((await ocspStatus('sign', sign.pem)).status).toBe('good');

    // A second authority instance on the same database stands for the restarted process.
    const restarted = await Authority.open(ta.dir, { env: ta.env, databaseUrl: ta.databaseUrl });
    try {
      const processor = new OutboxProcessor(restarted);
      expect(await processor.drain()).toBe(1);
      expect(await pendingOutbox(residentId)).toEqual([]);
      const row = await store.db
        .selectFrom('outbox')
        .selectAll()
        .where('resident_id', '=', residentId)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ processed_by: processor.id, attempts: 1, last_error: null });
    } finally {
      await restarted.close();
    }
    expect(await ocspStatus('sign', sign.pem)).toMatchObject({ status: 'revoked', reason: 3 });
    const [cert] = await residentCertificates(store, residentId);
    expect(cert?.message?.ja).toBe(
      '氏名の変更により署名用電子証明書は失効しました。市区町村窓口で新しい証明書の発行を受けられます。',
    );
  });

  async function residentsWithMoves(n: number) {
    const residents = [];
    for (let i = 0; i < n; i++) residents.push(await residentWithCertificates(['sign']));
    for (const r of residents)
      await recordEvent(store, move(r.residentId, `東京都千代田区丸の内${i2k(r.residentId)}丁目`));
    return residents;
  }

  it.runIf(backend === 'postgres')(
    'two processors (two authority instances) on one database never process a row twice',
    async () => {
      const residents = await residentsWithMoves(12);
      const second = await Authority.open(ta.dir, { env: ta.env, databaseUrl: ta.databaseUrl });
      try {
        const outcomes: OutboxOutcome[] = [];
        const p1 = new OutboxProcessor(authority, { onProcessed: (o) => outcomes.push(o) });
        const p2 = new OutboxProcessor(second, { onProcessed: (o) => outcomes.push(o) });
        const [n1, n2] = await Promise.all([p1.drain(), p2.drain()]);
        console.log(`[outbox] ${backend}: two in-process processors took ${n1} and ${n2} rows`);
        expect(n1 + n2).toBe(12);
        expect(p1.stats.failed + p2.stats.failed).toBe(0);
        expect(new Set(outcomes.map((o) => o.outboxId)).size).toBe(12);
        expect(outcomes.flatMap((o) => o.revoked).sort()).toEqual(residents.map((r) => r.sign.serial).sort());
      } finally {
        await second.close();
      }
      for (const r of residents) expect((await authority.findRevocation(r.sign.serial))?.reason).toBe(3);
    },
  );

  // Two OS processes: on SQLite that is the only way two writers meet (better-sqlite3 waits for a lock
  // synchronously, so two connections in one process would block each other's event loop).
  it('processors in two processes never process a row twice', async () => {
    const N = 40;
    const residents = await residentsWithMoves(N);
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ta.dir, ta.databaseUrl ?? ''], {
      env: { ...process.env, ...ta.env, NODE_OPTIONS: '' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe('ready');
    const outcomes: OutboxOutcome[] = [];
    const p1 = new OutboxProcessor(authority, { onProcessed: (o) => outcomes.push(o) });
    child.stdin!.write('go\n');
    expect((await lines.next()).value).toBe('started');
    const [mine, theirs] = await Promise.all([
      p1.drain(),
      lines
        .next()
        .then((l) => JSON.parse(String(l.value)) as { outcomes: OutboxOutcome[]; stats: { failed: number } }),
    ]);
    await new Promise((r) => child.once('exit', r));
    console.log(
      `[outbox] ${backend}: processors in two processes took ${mine} and ${theirs.outcomes.length} rows`,
    );
    expect(mine + theirs.outcomes.length).toBe(N);
    expect(p1.stats.failed + theirs.stats.failed).toBe(0);
    const all = [...outcomes, ...theirs.outcomes];
    expect(new Set(all.map((o) => o.outboxId)).size).toBe(N);
    expect(all.flatMap((o) => o.revoked).sort()).toEqual(residents.map((r) => r.sign.serial).sort());
    for (const r of residents) expect((await authority.findRevocation(r.sign.serial))?.reason).toBe(3);
  });

  it('keeps a certificate issued with facts that already include the event', async () => {
    const { residentId, sign: old } = await residentWithCertificates(['sign']);
    await recordEvent(store, move(residentId));
    // Re-issued at the counter before the processor ran: it carries the new address.
    const fresh = await issueForResident(authority, store, {
      residentId,
      kind: 'sign',
      csr: csr(),
      replace: true,
    });
    expect(fresh.replaced).toBe(old.serial);
    const outcomes: OutboxOutcome[] = [];
    await new OutboxProcessor(authority, { onProcessed: (o) => outcomes.push(o) }).drain();
    expect(outcomes.find((o) => o.residentId === residentId)).toMatchObject({
      revoked: [],
      kept: [fresh.serial],
    });
    expect(await authority.findRevocation(fresh.serial)).toBeUndefined();
    expect((await authority.findRevocation(old.serial))?.reason).toBe(4); // superseded
    const certs = await residentCertificates(store, residentId);
    expect(certs.find((c) => c.serial === old.serial)?.message?.ja).toBe(
      '新しい証明書の発行により署名用電子証明書は失効しました。',
    );
  });

  it('a failing row is retried later and does not block the others', async () => {
    const now = Date.now();
    await store.db
      .insertInto('outbox')
      .values({
        topic: 'register.certificates',
        ref_id: 987654321,
        resident_id: null,
        created_at: now,
        next_attempt_at: now,
      })
      .execute();
    const errors: unknown[] = [];
    const processor = new OutboxProcessor(authority, { onError: (e) => errors.push(e) });
    await processor.drain();
    expect(processor.stats.failed).toBe(1);
    expect(String(errors[0])).toMatch(/register event 987654321 does not exist/);
    const row = await store.db
      .selectFrom('outbox')
      .selectAll()
      .where('ref_id', '=', 987654321)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ processed_at: null, attempts: 1 });
    expect(row.next_attempt_at).toBeGreaterThan(now);
    expect(await processor.drain()).toBe(0); // not due yet
    await store.db.deleteFrom('outbox').where('id', '=', row.id).execute();
  });

  it('a loss report revokes through revokeResidentCertificate: slot freed, cause shown', async () => {
    const { residentId, sign } = await residentWithCertificates(['sign']);
    await revokeResidentCertificate(authority, store, sign.serial, 'keyCompromise');
    const [cert] = await residentCertificates(store, residentId);
    expect(cert).toMatchObject({
      status: 'revoked',
      current: false,
      revocation: { reason: 'keyCompromise', cause: 'loss-report' },
    });
    expect(cert?.message?.ja).toBe(
      '紛失・盗難の届出により署名用電子証明書は失効しました。市区町村窓口で新しい証明書の発行を受けられます。',
    );
    const again = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
    expect(again.replaced).toBeUndefined();
  });
});

function i2k(id: string): number {
  return (Number(id.slice(-2)) % 9) + 1;
}
