import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Authority, IssueOptions, IssueRequest } from '../../src/authority/authority.ts';
import {
  AlreadyIssuedError,
  ConcurrentIssuanceError,
  issueForResident,
  ResidentNotEligibleError,
  revokeResidentCertificate,
} from '../../src/counter/issuance.ts';
import { UnknownResidentError } from '../../src/register/errors.ts';
import { recordEvent } from '../../src/register/register.ts';
import type { Store } from '../../src/store/db.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { makeCsrs, newResidentId, newSourceId, registration } from '../register/helpers.ts';

describe.each(testStores())('Art. 6: one valid certificate per resident and kind (%s)', (backend) => {
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
    csrs = makeCsrs(60);
  });
  afterAll(async () => {
    await ta?.close();
  });

  async function newResident() {
    const residentId = newResidentId();
    await recordEvent(store, registration(residentId, '2020-01-01'));
    return residentId;
  }

  async function certificatesOf(residentId: string, kind: 'sign' | 'auth') {
    return store.db
      .selectFrom('certificates as c')
      .leftJoin('revocations as r', 'r.serial', 'c.serial')
      .select(['c.serial', 'r.reason'])
      .where('c.resident_ref', '=', residentId)
      .where('c.ca', '=', kind)
      .execute();
  }

  async function slotOf(residentId: string, kind: 'sign' | 'auth') {
    return store.db
      .selectFrom('certificate_slots')
      .selectAll()
      .where('resident_id', '=', residentId)
      .where('kind', '=', kind)
      .executeTakeFirst();
  }

  /** Counts how many issuance transactions are inside the slot hook at once (is the race real?). */
  function measureOverlap(): { max: () => number; restore: () => void } {
    const original = authority.issue;
    let inside = 0;
    let max = 0;
    authority.issue = (req: IssueRequest, opts: IssueOptions = {}) =>
      original.call(authority, req, {
        inTransaction: async (trx, cert) => {
          max = Math.max(max, ++inside);
          try {
            await opts.inTransaction?.(trx, cert);
          } finally {
            inside--;
          }
        },
      });
    return {
      max: () => max,
      restore: () => {
        authority.issue = original;
      },
    };
  }

  for (const kind of ['sign', 'auth'] as const) {
    it(`10 concurrent first issuances of a ${kind} certificate: one wins, 9 AlreadyIssuedError, one row`, async () => {
      const residentId = await newResident();
      const overlap = measureOverlap();
      let results: PromiseSettledResult<Awaited<ReturnType<typeof issueForResident>>>[];
      try {
        results = await Promise.allSettled(
          Array.from({ length: 10 }, () =>
            issueForResident(authority, store, { residentId, kind, csr: csr() }),
          ),
        );
      } finally {
        overlap.restore();
      }
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results
        .filter((r) => r.status === 'rejected')
        .map((r) => (r as PromiseRejectedResult).reason);
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(9);
      for (const e of lost) expect(e).toBeInstanceOf(AlreadyIssuedError);
      const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof issueForResident>>>).value;
      expect((lost[0] as AlreadyIssuedError).serial).toBe(winner.serial);
      expect(await certificatesOf(residentId, kind)).toEqual([{ serial: winner.serial, reason: null }]);
      expect(await slotOf(residentId, kind)).toMatchObject({ serial: winner.serial, facts_version: 1 });
      console.log(
        `[art6] ${backend} ${kind}: up to ${overlap.max()} issuance transactions in the slot hook at once`,
      );
      // PostgreSQL runs them on separate pool connections: the primary key really decides a race.
      if (backend === 'postgres') expect(overlap.max()).toBeGreaterThan(1);
    });
  }

  it('10 concurrent re-issues: exactly one valid certificate remains, the others superseded or never stored', async () => {
    const residentId = await newResident();
    const first = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        issueForResident(authority, store, { residentId, kind: 'sign', csr: csr(), replace: true }),
      ),
    );
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConcurrentIssuanceError);
    expect(won.length).toBeGreaterThanOrEqual(1);
    const certs = await certificatesOf(residentId, 'sign');
    expect(certs).toHaveLength(1 + won.length); // losers left no row
    const valid = certs.filter((c) => c.reason === null);
    expect(valid).toHaveLength(1);
    for (const c of certs.filter((c) => c.reason !== null)) expect(c.reason).toBe(4); // superseded
    expect((await slotOf(residentId, 'sign'))?.serial).toBe(valid[0]!.serial);
    expect(certs.find((c) => c.serial === first.serial)?.reason).toBe(4);
    // Each replaced certificate was replaced once: the chain of replacements covers every earlier one.
    expect(new Set(won.map((w) => w.replaced)).size).toBe(won.length);
    console.log(`[art6] ${backend}: ${won.length} of 10 concurrent re-issues succeeded`);
  });

  it('a revoked or expired slot holder does not block issuance (compare-and-set), a valid one does', async () => {
    const residentId = await newResident();
    const a = await issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() });
    await expect(
      issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() }),
    ).rejects.toThrow(AlreadyIssuedError);
    // Revoked behind the slot's back (directly at the authority): the slot still names it.
    await authority.revoke(a.serial, 'keyCompromise');
    expect((await slotOf(residentId, 'auth'))?.serial).toBe(a.serial);
    const b = await issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() });
    expect(b.replaced).toBeUndefined();
    expect((await slotOf(residentId, 'auth'))?.serial).toBe(b.serial);
    // Expired: make the stored notAfter lie in the past.
    await store.db
      .updateTable('certificates')
      .set({ not_after: Date.now() - 1000 })
      .where('serial', '=', b.serial)
      .execute();
    const c = await issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() });
    expect((await slotOf(residentId, 'auth'))?.serial).toBe(c.serial);
    expect(await authority.findRevocation(b.serial)).toBeUndefined(); // expired, not revoked
  });

  it('revokeResidentCertificate frees the slot in the same transaction', async () => {
    const residentId = await newResident();
    const a = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
    await store.db.transaction().execute(async (trx) => {
      await revokeResidentCertificate(authority, store, a.serial, 'unspecified', { trx });
      expect(
        await trx.selectFrom('certificate_slots').selectAll().where('resident_id', '=', residentId).execute(),
      ).toEqual([]);
    });
    expect(await slotOf(residentId, 'sign')).toBeUndefined();
    const cause = await store.db
      .selectFrom('revocation_causes')
      .selectAll()
      .where('serial', '=', a.serial)
      .executeTakeFirst();
    expect(cause).toMatchObject({ resident_id: residentId, cause: 'holder-request', event_id: null });
    const b = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
    expect(b.replaced).toBeUndefined();
  });

  it('refuses unknown, moved-out and deceased residents, storing nothing', async () => {
    await expect(
      issueForResident(authority, store, { residentId: newResidentId(), kind: 'sign', csr: csr() }),
    ).rejects.toBeInstanceOf(UnknownResidentError);
    const movedOut = await newResident();
    await recordEvent(store, {
      sourceEventId: newSourceId(),
      residentId: movedOut,
      type: 'moved-out',
      effectiveDate: '2024-01-01',
    });
    const dead = await newResident();
    await recordEvent(store, {
      sourceEventId: newSourceId(),
      residentId: dead,
      type: 'died',
      effectiveDate: '2024-01-01',
    });
    for (const [residentId, status] of [
      [movedOut, 'moved-out'],
      [dead, 'deceased'],
    ] as const) {
      const err = await issueForResident(authority, store, { residentId, kind: 'auth', csr: csr() }).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(ResidentNotEligibleError);
      expect(err.status).toBe(status);
      expect(await certificatesOf(residentId, 'auth')).toEqual([]);
    }
  });

  it('signs with the facts of the register, and again when they change during issuance', async () => {
    const residentId = await newResident();
    const original = authority.issue;
    let calls = 0;
    authority.issue = async (req: IssueRequest, opts?: IssueOptions) => {
      // The register records a move while the first certificate is being signed.
      if (calls++ === 0)
        await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId,
          type: 'moved-within',
          effectiveDate: '2024-02-02',
          facts: { address: '東京都千代田区丸の内1丁目9番1号' },
        });
      return original.call(authority, req, opts);
    };
    try {
      const cert = await issueForResident(authority, store, { residentId, kind: 'sign', csr: csr() });
      expect(calls).toBe(2);
      expect(cert.factsVersion).toBe(2);
      expect(cert.der.includes(Buffer.from('東京都千代田区丸の内1丁目9番1号'))).toBe(true);
    } finally {
      authority.issue = original;
    }
    const certs = await certificatesOf(residentId, 'sign');
    expect(certs).toHaveLength(1); // the first signature never reached the table
  });
});
