// The registry of authorised verifiers as operators and the revocation endpoints use it: registration,
// suspension, reinstatement and end with an append-only history and audit entries; API keys and client
// certificates, and what each answer to a credential means (401 unknown/revoked/expired, 403 not allowed).
// On SQLite, and PostgreSQL when JPKI_TEST_POSTGRES_URL is set.

import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { tailAudit, verifyAuditChain } from '../../src/audit/audit-log.ts';
import { ForbiddenError, type Principal } from '../../src/staff/roles.ts';
import { CertificateCredentialError } from '../../src/verifiers/credentials.ts';
import {
  type Authentication,
  type NewVerifier,
  revocationRefusal,
  UnknownCredentialError,
  UnknownVerifierError,
  VerifierExistsError,
  VerifierInputError,
  VerifierRegistry,
  VerifierStateError,
} from '../../src/verifiers/registry.ts';
import { forEachStore } from '../helpers/db.ts';
import { createTestCa, type TestCa } from './pki.ts';

const OPERATOR: Principal = { staffId: 7, username: 'ops', role: 'operator', municipalityCode: null };
const CLERK: Principal = { staffId: 8, username: 'clerk', role: 'clerk', municipalityCode: '131016' };
const SUPERVISOR: Principal = {
  staffId: 9,
  username: 'boss',
  role: 'supervisor',
  municipalityCode: '131016',
};

const T0 = Date.parse('2026-04-10T03:00:00Z'); // 12:00 in Japan
const DAY = 86_400_000;

/** A clock the test moves. */
function clock(start = T0) {
  let t = start;
  return {
    now: () => t,
    set: (ms: number) => {
      t = ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const CONTRACT = { contractFrom: '2026-04-01', contractTo: '2027-03-31' };

function expectRefused(a: Authentication, status: 401 | 403, code: string) {
  expect(a.ok).toBe(false);
  if (a.ok) return;
  expect(a.status).toBe(status);
  expect(a.code).toBe(code);
  expect(a.message.length).toBeGreaterThan(10);
}

let ca: TestCa;
let otherCa: TestCa;
beforeAll(async () => {
  ca = await createTestCa();
  otherCa = await createTestCa('Someone Else CA');
});

forEachStore((current) => {
  const registry = (c = clock(), opts: { credentialCacheMs?: number; clientCa?: string } = {}) =>
    new VerifierRegistry(current().db, { now: c.now, credentialCacheMs: 0, ...opts });

  describe('registry', () => {
    it('registers an active verifier with its first history entry and an audit entry; only operators may', async () => {
      const r = registry();
      const v = await r.register(
        { name: 'デジタル庁', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      expect(v).toMatchObject({
        name: 'デジタル庁',
        category: 'administrative-body',
        status: 'active',
        contractFrom: '2026-04-01',
        contractTo: '2027-03-31',
        createdBy: 'staff:7',
        createdAt: T0,
      });
      const d = await r.details(v.id, OPERATOR);
      expect(d.history).toEqual([
        { status: 'active', previousStatus: null, reason: null, at: T0, actor: 'staff:7' },
      ]);
      const [entry] = await tailAudit(current().db, { limit: 1 });
      expect(entry).toMatchObject({
        actor: 'staff:7',
        action: 'verifier.register',
        subject: `verifier:${v.id}`,
        details: { category: 'administrative-body', contractFrom: '2026-04-01', contractTo: '2027-03-31' },
      });

      for (const who of [CLERK, SUPERVISOR]) {
        await expect(
          r.register({ name: 'Other', category: 'administrative-body', ...CONTRACT }, who),
        ).rejects.toBeInstanceOf(ForbiddenError);
        await expect(r.suspend(v.id, 'x', who)).rejects.toBeInstanceOf(ForbiddenError);
        await expect(r.list({ actor: who })).rejects.toBeInstanceOf(ForbiddenError);
        await expect(r.issueApiKey(v.id, {}, who)).rejects.toBeInstanceOf(ForbiddenError);
      }
      expect(await r.list({ actor: OPERATOR })).toHaveLength(1);
      expect((await r.details(v.id)).history).toHaveLength(1);
      // A local actor (the command line) is trusted as the holder of the database.
      const cli = await r.register(
        { name: 'Kaisha KK', category: 'private-certification-business', ...CONTRACT },
        'cli:root',
      );
      expect(cli.createdBy).toBe('cli:root');
    });

    it('refuses bad input with a clear error and writes nothing', async () => {
      const r = registry();
      const bad = [
        { name: '', category: 'administrative-body', ...CONTRACT },
        { name: 'x'.repeat(201), category: 'administrative-body', ...CONTRACT },
        { name: 'a\nb', category: 'administrative-body', ...CONTRACT },
        { name: 'A', category: 'bank', ...CONTRACT },
        { name: 'A', category: 'administrative-body', contractFrom: '2026-02-30', contractTo: '2027-01-01' },
        { name: 'A', category: 'administrative-body', contractFrom: '2026/04/01', contractTo: '2027-01-01' },
        { name: 'A', category: 'administrative-body', contractFrom: '2026-05-01', contractTo: '2026-04-30' },
        // Over before it is registered.
        { name: 'A', category: 'administrative-body', contractFrom: '2025-01-01', contractTo: '2026-04-09' },
      ];
      for (const input of bad)
        await expect(r.register(input as NewVerifier, OPERATOR)).rejects.toBeInstanceOf(VerifierInputError);
      expect(await r.list()).toEqual([]);
      expect(await tailAudit(current().db)).toEqual([]);

      await r.register({ name: 'Same Name', category: 'administrative-body', ...CONTRACT }, OPERATOR);
      await expect(
        r.register(
          { name: ' Same Name ', category: 'private-certification-business', ...CONTRACT },
          OPERATOR,
        ),
      ).rejects.toBeInstanceOf(VerifierExistsError);
      await expect(r.get(999)).rejects.toBeInstanceOf(UnknownVerifierError);
      await expect(r.suspend(999, 'x', OPERATOR)).rejects.toBeInstanceOf(UnknownVerifierError);
    });

    it('suspends, reinstates and ends, keeping every change in the history; an end is final', async () => {
      const c = clock();
      const r = registry(c);
      const v = await r.register(
        { name: 'Tax Agency', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      await expect(r.suspend(v.id, '  ', OPERATOR)).rejects.toThrow(/reason/);
      c.advance(1000);
      expect((await r.suspend(v.id, 'unpaid invoice', OPERATOR)).status).toBe('suspended');
      await expect(r.suspend(v.id, 'again', OPERATOR)).rejects.toBeInstanceOf(VerifierStateError);
      c.advance(1000);
      expect((await r.reinstate(v.id, undefined, OPERATOR)).status).toBe('active');
      await expect(r.reinstate(v.id, undefined, OPERATOR)).rejects.toThrow(
        /is active; it cannot become active/,
      );
      c.advance(1000);
      const ended = await r.end(v.id, 'contract terminated', 'cli:ops');
      expect(ended).toMatchObject({ status: 'ended', statusChangedAt: T0 + 3000, updatedBy: 'cli:ops' });
      await expect(r.reinstate(v.id, 'please', OPERATOR)).rejects.toBeInstanceOf(VerifierStateError);
      await expect(r.suspend(v.id, 'x', OPERATOR)).rejects.toBeInstanceOf(VerifierStateError);
      await expect(r.end(v.id, 'x', OPERATOR)).rejects.toBeInstanceOf(VerifierStateError);
      await expect(r.issueApiKey(v.id, {}, OPERATOR)).rejects.toBeInstanceOf(VerifierStateError);
      await expect(
        r.changeContract(v.id, { from: '2026-04-01', to: '2028-03-31' }, OPERATOR),
      ).rejects.toBeInstanceOf(VerifierStateError);

      const { history } = await r.details(v.id);
      expect(history.map((h) => [h.previousStatus, h.status, h.reason, h.at, h.actor])).toEqual([
        [null, 'active', null, T0, 'staff:7'],
        ['active', 'suspended', 'unpaid invoice', T0 + 1000, 'staff:7'],
        ['suspended', 'active', null, T0 + 2000, 'staff:7'],
        ['active', 'ended', 'contract terminated', T0 + 3000, 'cli:ops'],
      ]);
      const actions = (await tailAudit(current().db)).map((e) => e.action);
      expect(actions).toEqual([
        'verifier.register',
        'verifier.suspend',
        'verifier.reinstate',
        'verifier.end',
      ]);
      expect((await verifyAuditChain(current().db)).ok).toBe(true);
    });

    it('keeps the status history append-only in the database itself', async () => {
      const r = registry();
      const v = await r.register(
        { name: 'Pension Service', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      await r.suspend(v.id, 'investigation', OPERATOR);
      const db = current().db;
      await expect(
        db.updateTable('verifier_status_history').set({ reason: 'nothing happened' }).execute(),
      ).rejects.toThrow(/append-only/);
      await expect(db.deleteFrom('verifier_status_history').execute()).rejects.toThrow(/append-only/);
      if (current().backend === 'postgres')
        await expect(sql`truncate verifier_status_history cascade`.execute(db)).rejects.toThrow(
          /append-only/,
        );
      expect((await r.details(v.id)).history.map((h) => h.reason)).toEqual([null, 'investigation']);
    });

    it('lets one of two concurrent suspensions win; the other is refused, and the history has one', async () => {
      const r = registry();
      const v = await r.register({ name: 'Courts', category: 'administrative-body', ...CONTRACT }, OPERATOR);
      const results = await Promise.allSettled([
        r.suspend(v.id, 'first', OPERATOR),
        r.suspend(v.id, 'second', OPERATOR),
        new VerifierRegistry(current().db).suspend(v.id, 'third', OPERATOR),
      ]);
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      for (const x of results.filter((x) => x.status === 'rejected'))
        expect((x as PromiseRejectedResult).reason).toBeInstanceOf(VerifierStateError);
      const { history } = await r.details(v.id);
      expect(history.filter((h) => h.status === 'suspended')).toHaveLength(1);
    });

    it('changes the contract period (audited) and refuses a reversed one', async () => {
      const r = registry();
      const v = await r.register(
        { name: 'Prefecture', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      const changed = await r.changeContract(v.id, { from: '2026-04-01', to: '2028-03-31' }, OPERATOR);
      expect(changed.contractTo).toBe('2028-03-31');
      await expect(
        r.changeContract(v.id, { from: '2026-04-01', to: '2026-03-01' }, OPERATOR),
      ).rejects.toBeInstanceOf(VerifierInputError);
      const [last] = await tailAudit(current().db, { limit: 1 });
      expect(last).toMatchObject({
        action: 'verifier.contract',
        details: { from: { contractTo: '2027-03-31' }, to: { contractTo: '2028-03-31' } },
      });
    });
  });

  describe('API keys', () => {
    it('issues a 256-bit key shown once, stores only its hash, and recognises it', async () => {
      const r = registry();
      const v = await r.register(
        { name: 'Bank Auth KK', category: 'private-certification-business', ...CONTRACT },
        OPERATOR,
      );
      const k = await r.issueApiKey(v.id, { label: 'production' }, OPERATOR);
      expect(k.apiKey).toMatch(/^jpkv_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
      expect(k.apiKey).toContain(k.keyId);
      const secret = /^jpkv_[0-9a-f]{16}_(.+)$/.exec(k.apiKey)![1]!;
      expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
      expect(k.expiresAt).toBeNull();
      // Without an expiry of its own the key lasts until the end of the contract's last day (JST).
      expect(k.validUntil).toBe(Date.parse('2027-04-01T00:00:00+09:00'));

      const rows = await current().db.selectFrom('verifier_api_keys').selectAll().execute();
      expect(JSON.stringify(rows)).not.toContain(secret);
      const audit = await tailAudit(current().db, { limit: 1 });
      expect(JSON.stringify(audit)).not.toContain(secret);
      expect(audit[0]).toMatchObject({ action: 'verifier.key-issue', details: { keyId: k.keyId } });

      const a = await r.authenticateApiKey(k.apiKey);
      expect(a).toEqual({
        ok: true,
        verifier: {
          verifierId: v.id,
          name: 'Bank Auth KK',
          category: 'private-certification-business',
          kinds: ['sign', 'auth'],
          status: 'active',
          contractFrom: CONTRACT.contractFrom,
          contractTo: CONTRACT.contractTo,
          credential: { type: 'api-key', keyId: k.keyId },
        },
      });
      if (a.ok) expect(revocationRefusal(a.verifier, T0)).toBeNull();

      // A second key works alongside the first; the details list both, without secrets.
      const k2 = await r.issueApiKey(v.id, {}, OPERATOR);
      expect((await r.authenticateApiKey(k2.apiKey)).ok).toBe(true);
      const d = await r.details(v.id);
      expect(d.apiKeys.map((x) => [x.keyId, x.label, x.state])).toEqual([
        [k.keyId, 'production', 'valid'],
        [k2.keyId, null, 'valid'],
      ]);
      expect(JSON.stringify(d)).not.toContain(secret);
    });

    it('answers 401 for a missing, malformed, unknown or wrong key', async () => {
      const r = registry();
      const v = await r.register(
        { name: 'Verifier A', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      const k = await r.issueApiKey(v.id, {}, OPERATOR);
      const wrongSecret = `${k.apiKey.slice(0, -1)}${k.apiKey.endsWith('A') ? 'B' : 'A'}`;
      const unknownId = k.apiKey.replace(
        k.keyId,
        k.keyId === '0'.repeat(16) ? '1'.repeat(16) : '0'.repeat(16),
      );
      for (const presented of ['', 'nonsense', k.apiKey.slice(0, -1), `${k.apiKey}x`, wrongSecret, unknownId])
        expectRefused(await r.authenticateApiKey(presented), 401, 'unknown-credential');
    });

    it('stops a revoked key at once and an expired one at its expiry (401)', async () => {
      const c = clock();
      const r = registry(c, { credentialCacheMs: 60_000 });
      const v = await r.register(
        { name: 'Verifier B', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      const k = await r.issueApiKey(v.id, {}, OPERATOR);
      expect((await r.authenticateApiKey(k.apiKey)).ok).toBe(true); // now cached
      expect(await r.revokeApiKey(v.id, k.keyId, OPERATOR)).toEqual({ revoked: true });
      expectRefused(await r.authenticateApiKey(k.apiKey), 401, 'revoked-credential');
      expect(await r.revokeApiKey(v.id, k.keyId, OPERATOR)).toEqual({ revoked: false });
      await expect(r.revokeApiKey(v.id, 'ffffffffffffffff', OPERATOR)).rejects.toBeInstanceOf(
        UnknownCredentialError,
      );
      // A key of another verifier cannot be revoked through this one.
      const w = await r.register(
        { name: 'Verifier W', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      const kw = await r.issueApiKey(w.id, {}, OPERATOR);
      await expect(r.revokeApiKey(v.id, kw.keyId, OPERATOR)).rejects.toBeInstanceOf(UnknownCredentialError);
      expect((await r.authenticateApiKey(kw.apiKey)).ok).toBe(true);

      await expect(r.issueApiKey(v.id, { expiresAt: T0 - 1 }, OPERATOR)).rejects.toBeInstanceOf(
        VerifierInputError,
      );
      const short = await r.issueApiKey(v.id, { expiresAt: T0 + 3600_000 }, OPERATOR);
      expect(short.validUntil).toBe(T0 + 3600_000);
      expect((await r.authenticateApiKey(short.apiKey)).ok).toBe(true);
      c.advance(3600_000);
      expectRefused(await r.authenticateApiKey(short.apiKey), 401, 'expired-credential');
      expect((await r.details(v.id)).apiKeys.map((x) => x.state)).toEqual(['revoked', 'expired']);
    });

    it('recognises the key of a suspended, ended or out-of-contract verifier but refuses it revocation data (403)', async () => {
      const c = clock();
      const r = registry(c);
      const v = await r.register(
        {
          name: 'Verifier C',
          category: 'private-certification-business',
          contractFrom: '2026-05-01',
          contractTo: '2026-06-30',
        },
        OPERATOR,
      );
      const k = await r.issueApiKey(v.id, {}, OPERATOR);
      const standing = async () => {
        const a = await r.authenticateApiKey(k.apiKey);
        if (!a.ok) throw new Error(a.message);
        return revocationRefusal(a.verifier, c.now());
      };
      expect(await standing()).toMatchObject({
        status: 403,
        code: 'outside-contract',
        message: expect.stringMatching(/starts on 2026-05-01/),
      });
      // The contract starts at midnight in Japan, not UTC.
      c.set(Date.parse('2026-05-01T00:00:00+09:00'));
      expect(await standing()).toBeNull();
      c.set(Date.parse('2026-06-30T23:59:59+09:00'));
      expect(await standing()).toBeNull();
      c.set(Date.parse('2026-07-01T00:00:00+09:00'));
      expect(await standing()).toMatchObject({
        status: 403,
        code: 'outside-contract',
        message: expect.stringMatching(/ended on 2026-06-30/),
      });
      c.set(Date.parse('2026-06-01T00:00:00+09:00'));
      await r.suspend(v.id, 'audit finding', OPERATOR);
      expect(await standing()).toMatchObject({ status: 403, code: 'suspended' });
      await r.end(v.id, 'terminated', OPERATOR);
      expect(await standing()).toMatchObject({ status: 403, code: 'ended' });
    });

    it('a suspension made by another process reaches a cached credential within credentialCacheMs', async () => {
      const c = clock();
      const responder = registry(c, { credentialCacheMs: 5000 });
      const operatorSide = registry(c);
      const v = await operatorSide.register(
        { name: 'Verifier D', category: 'administrative-body', ...CONTRACT },
        OPERATOR,
      );
      const k = await operatorSide.issueApiKey(v.id, {}, OPERATOR);
      const status = async () => {
        const a = await responder.authenticateApiKey(k.apiKey);
        return a.ok ? a.verifier.status : a.code;
      };
      expect(await status()).toBe('active');
      await operatorSide.revokeApiKey(v.id, k.keyId, OPERATOR);
      expect(await status()).toBe('active'); // the responder's cache, up to 5 s
      c.advance(5001);
      expect(await status()).toBe('revoked-credential');
    });
  });

  describe('client certificates', () => {
    it('registers a certificate of the verifier CA by fingerprint and recognises it; refuses others', async () => {
      const c = clock(Date.now());
      const r = registry(c, { clientCa: ca.certPem });
      const v = await r.register(
        {
          name: 'mTLS Verifier',
          category: 'private-certification-business',
          contractFrom: '2026-01-01',
          contractTo: '2099-12-31',
        },
        OPERATOR,
      );
      const client = await ca.issue('verifier-1');
      const info = await r.registerCertificate(v.id, client.certPem, OPERATOR);
      expect(info.fingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(info.subject).toContain('CN=verifier-1');
      expect(info.state).toBe('valid');
      const a = await r.authenticateCertificate(info.fingerprintSha256);
      expect(a.ok && a.verifier.credential).toEqual({
        type: 'certificate',
        fingerprintSha256: info.fingerprintSha256,
      });
      await expect(r.registerCertificate(v.id, client.der, OPERATOR)).rejects.toBeInstanceOf(
        VerifierExistsError,
      );

      const refused = [
        (await otherCa.issue('impostor')).certPem, // another CA
        ca.certPem, // the CA itself
        (await ca.issue('sub-ca', { ca: true })).certPem,
        (await ca.issue('server-only', { extendedKeyUsage: ['1.3.6.1.5.5.7.3.1'] })).certPem,
        (
          await ca.issue('expired', {
            notBefore: new Date(c.now() - 10 * DAY),
            notAfter: new Date(c.now() - DAY),
          })
        ).certPem,
        'not a certificate',
      ];
      for (const pem of refused)
        await expect(r.registerCertificate(v.id, pem, OPERATOR)).rejects.toBeInstanceOf(
          CertificateCredentialError,
        );
      expectRefused(await r.authenticateCertificate('ab'.repeat(32)), 401, 'unknown-credential');

      expect(await r.revokeCertificate(v.id, info.fingerprintSha256.toUpperCase(), OPERATOR)).toEqual({
        revoked: true,
      });
      expectRefused(await r.authenticateCertificate(info.fingerprintSha256), 401, 'revoked-credential');

      const later = await r.registerCertificate(v.id, (await ca.issue('verifier-2')).certPem, OPERATOR);
      c.advance(31 * DAY);
      expectRefused(await r.authenticateCertificate(later.fingerprintSha256), 401, 'expired-credential');
      const actions = (await tailAudit(current().db, { limit: 3 })).map((e) => e.action);
      expect(actions).toEqual([
        'verifier.certificate-register',
        'verifier.certificate-revoke',
        'verifier.certificate-register',
      ]);
    });

    it('refuses to register certificates when no verifier CA is configured', async () => {
      const r = registry();
      const v = await r.register({ name: 'No CA', category: 'administrative-body', ...CONTRACT }, OPERATOR);
      await expect(r.registerCertificate(v.id, (await ca.issue('x')).certPem, OPERATOR)).rejects.toThrow(
        /no verifier CA is configured/,
      );
      expect(() => new VerifierRegistry(current().db, { clientCa: 'junk' })).toThrow(/not a certificate/);
      const leaf = (await ca.issue('leaf')).certPem;
      expect(() => new VerifierRegistry(current().db, { clientCa: leaf })).toThrow(/not a CA certificate/);
    });
  });
});
