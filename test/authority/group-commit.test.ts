// Issuances in flight at the same time share commits (the store's CertificateWriter): each caller
// still gets its own certificate or its own error, only after the commit, and a refused issuance
// leaves no row while the others in its batch are stored.
import { X509Certificate } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedCertificate } from '../../src/authority/authority.ts';
import { findCertificate } from '../../src/store/certificates.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { makeCsrs } from '../register/helpers.ts';

describe.each(testStores())('concurrent issuances share commits (%s)', (backend) => {
  let ta: TestAuthority;
  let csrs: Buffer[];

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    csrs = makeCsrs(32);
    const db = ta.authority.store.db;
    // The store refuses certificates for one resident reference, as a constraint would.
    if (backend === 'postgres') {
      await sql`create function refuse_test() returns trigger language plpgsql as $$
        begin
          if new.resident_ref = 'refused' then
            raise exception 'refused by the test' using errcode = 'check_violation';
          end if;
          return new;
        end $$`.execute(db);
      await sql`create trigger refuse_test before insert on certificates
        for each row execute function refuse_test()`.execute(db);
      // Commits are slow (a slow disk): while the batches in flight wait, the issuances that
      // finish meanwhile must queue up.
      await sql`create function slow_commit() returns trigger language plpgsql as $$
        begin perform pg_sleep(0.05); return null; end $$`.execute(db);
      await sql`create trigger slow_commit after insert on certificates
        for each statement execute function slow_commit()`.execute(db);
      // Records how many certificates each statement stored.
      await sql`create table statement_sizes (n integer not null)`.execute(db);
      await sql`create function log_statement_size() returns trigger language plpgsql as $$
        begin insert into statement_sizes select count(*) from new_rows; return null; end $$`.execute(db);
      await sql`create trigger log_statement_size after insert on certificates
        referencing new table as new_rows for each statement execute function log_statement_size()`.execute(
        db,
      );
    } else {
      await sql`create trigger refuse_test before insert on certificates
        when new.resident_ref = 'refused' begin select raise(abort, 'refused by the test'); end`.execute(db);
    }
  });
  afterAll(async () => {
    await ta?.close();
  });

  /** Issues one auth certificate per request at once; `refusedAt` gets the reference the store refuses. */
  async function issueAtOnce(prefix: string, refusedAt?: number) {
    if (backend === 'postgres') {
      await sql`delete from statement_sizes`.execute(ta.authority.store.db);
    }
    return Promise.allSettled(
      csrs.map((csr, i) =>
        ta.authority.issue({
          kind: 'auth',
          csr,
          counterId: 'GC',
          residentRef: i === refusedAt ? 'refused' : `${prefix}${i}`,
        }),
      ),
    );
  }

  /** Each caller got the certificate that was stored for its own request. */
  async function expectOwnCertificates(
    prefix: string,
    results: PromiseSettledResult<IssuedCertificate>[],
    skip?: number,
  ) {
    const db = ta.authority.store.db;
    const serials = new Set<string>();
    for (const [i, result] of results.entries()) {
      if (i === skip) continue;
      expect(result.status).toBe('fulfilled');
      const mine = (result as PromiseFulfilledResult<IssuedCertificate>).value;
      serials.add(mine.serial);
      const row = await findCertificate(db, mine.serial);
      expect(row?.resident_ref).toBe(`${prefix}${i}`);
      expect(Buffer.from(row!.der).equals(mine.der)).toBe(true);
      expect(new X509Certificate(mine.der).serialNumber.toLowerCase()).toBe(mine.serial.replace(/^00/, ''));
    }
    expect(serials.size).toBe(results.length - (skip === undefined ? 0 : 1));
    const rows = await db
      .selectFrom('certificates')
      .select('resident_ref')
      .where('resident_ref', 'like', `${prefix}%`)
      .execute();
    expect(rows).toHaveLength(serials.size);
  }

  it('32 issuances at once: each caller gets its own stored certificate', async () => {
    const results = await issueAtOnce('a');
    await expectOwnCertificates('a', results);
    if (backend === 'postgres') {
      // The batches were real: while the commits in flight were slow, the others queued and went together.
      const { rows: sizes } = await sql<{ n: number }>`select n from statement_sizes`.execute(
        ta.authority.store.db,
      );
      expect(Math.max(...sizes.map((s) => s.n))).toBeGreaterThan(1);
      expect(sizes.reduce((a, s) => a + s.n, 0)).toBe(32);
    }
  });

  it('32 issuances at once, one refused by the store: the other 31 are stored, each its own; the refused one leaves no row', async () => {
    const refusedAt = 13;
    const results = await issueAtOnce('b', refusedAt);
    const refused = results[refusedAt]!;
    expect(refused.status).toBe('rejected');
    expect(String((refused as PromiseRejectedResult).reason)).toMatch(/refused by the test/);
    await expectOwnCertificates('b', results, refusedAt);
    const db = ta.authority.store.db;
    expect(
      await db.selectFrom('certificates').select('serial').where('resident_ref', '=', 'refused').execute(),
    ).toEqual([]);
  });

  it('one issuance at a time still works and is answered after its commit', async () => {
    for (const csr of csrs.slice(0, 3)) {
      const cert = await ta.authority.issue({ kind: 'auth', csr });
      expect((await findCertificate(ta.authority.store.db, cert.serial))?.serial).toBe(cert.serial);
    }
  });
});
