// The store's hot paths: revocations read in keyset pages, a CRL handed over to SQLite before the
// row is written, SQLite statements prepared once, rows streamed in chunks, and WAL checkpoints on
// a worker thread once a store writes a lot. Behaviour only; no timings.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import {
  certificateStatus,
  crlDer,
  insertCertificate,
  insertCrl,
  revoke,
  streamRevocationPages,
} from '../../src/store/certificates.ts';
import { openDatabase } from '../../src/store/db.ts';
import type { NewCertificateRow } from '../../src/store/schema.ts';
import { forEachStore } from '../helpers/db.ts';

const T0 = Date.UTC(2025, 0, 1);

let counter = 0x10000000;
function certificate(over: Partial<NewCertificateRow> = {}): NewCertificateRow {
  return {
    serial: (counter++).toString(16),
    ca: 'sign',
    profile: 'sign',
    subject: 'CN=fast path',
    not_before: T0,
    not_after: T0 + 86_400_000,
    issued_at: T0,
    der: randomBytes(100),
    resident_ref: null,
    spki_sha256: '0'.repeat(64),
    ...over,
  };
}

forEachStore((current) => {
  describe('streamRevocationPages', () => {
    it('hands over the rows in id order, a page at a time, and can stop early', async () => {
      const { db } = current();
      const ids: number[] = [];
      for (let i = 0; i < 25; i++) {
        const cert = certificate({ ca: i % 5 === 0 ? 'auth' : 'sign' });
        await insertCertificate(db, cert);
        const { revocation } = await revoke(db, {
          serial: cert.serial,
          reason: 1,
          revokedAt: T0 + i,
          recordedAt: T0 + i,
        });
        if (cert.ca === 'sign') ids.push(revocation.id);
      }
      const pages: number[][] = [];
      for await (const page of streamRevocationPages(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 6 }))
        pages.push(page.map((r) => r.id));
      expect(pages.map((p) => p.length)).toEqual([6, 6, 6, 2]);
      expect(pages.flat()).toEqual(ids);

      const first = await streamRevocationPages(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 4 }).next();
      expect(first.value).toHaveLength(4);
      let seen = 0;
      for await (const page of streamRevocationPages(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 4 })) {
        seen += page.length;
        break; // a prefetched page (PostgreSQL) must not be left pending
      }
      expect(seen).toBe(4);
      expect(await certificateStatus(db, (counter - 1).toString(16))).toMatchObject({ ca: 'sign' });

      // exactly a multiple of the page size: the last page is full and one more query finds nothing
      const exact = [];
      for await (const page of streamRevocationPages(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 5 }))
        exact.push(page.length);
      expect(exact).toEqual([5, 5, 5, 5]);
      await expect(
        streamRevocationPages(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 0 }).next(),
      ).rejects.toThrow(RangeError);
    });
  });

  describe('insertCrl afterCopy', () => {
    it('stores the DER as given; on SQLite the caller may free it before the row is written', async () => {
      const { db, backend } = current();
      const der = randomBytes(3 << 20);
      const original = Buffer.from(der);
      let called = 0;
      const row = await insertCrl(
        db,
        {
          ca: 'sign',
          number: 1,
          kind: 'full',
          base_number: null,
          this_update: T0,
          next_update: T0 + 1,
          max_revocation_id: 0,
          entries: 0,
          der,
        },
        {
          afterCopy: () => {
            called++;
            der.fill(0); // the store must already have its own copy
          },
        },
      );
      expect(called).toBe(backend === 'sqlite' ? 1 : 0);
      expect(row.sha256).toBe(createHash('sha256').update(original).digest('hex'));
      expect((await crlDer(db, 'sign', 1))?.equals(original)).toBe(true);
    });

    it('inside a transaction, and rolled back with it', async () => {
      const { db } = current();
      await expect(
        db.transaction().execute(async (trx) => {
          await insertCrl(
            trx,
            {
              ca: 'auth',
              number: 7,
              kind: 'full',
              base_number: null,
              this_update: T0,
              next_update: T0 + 1,
              max_revocation_id: 0,
              entries: 0,
              der: randomBytes(1000),
            },
            { afterCopy: () => {} },
          );
          expect(await crlDer(trx, 'auth', 7)).toBeDefined();
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(await crlDer(db, 'auth', 7)).toBeUndefined();
    });
  });
});

describe('SQLite connection', () => {
  async function withStore(
    fn: (store: Awaited<ReturnType<typeof openDatabase>>, path: string) => Promise<void>,
  ) {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-fast-'));
    const path = join(dir, 'ca.sqlite');
    const store = await openDatabase({ sqlitePath: path });
    try {
      await fn(store, path);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('reuses prepared statements across schema changes, and streams rows in chunks', async () => {
    await withStore(async ({ db }) => {
      const cert = certificate();
      await insertCertificate(db, cert);
      expect(await certificateStatus(db, cert.serial)).toMatchObject({ ca: 'sign' });
      await sql`create index fast_paths_test_idx on certificates (subject)`.execute(db);
      expect(await certificateStatus(db, cert.serial)).toMatchObject({ ca: 'sign' });
      await sql`drop index fast_paths_test_idx`.execute(db);
      expect(await certificateStatus(db, cert.serial)).toMatchObject({ ca: 'sign' });
      for (let i = 0; i < 9; i++) await insertCertificate(db, certificate());
      const streamed = [];
      for await (const row of db.selectFrom('certificates').select('serial').orderBy('serial').stream(4))
        streamed.push(row.serial);
      expect(streamed).toHaveLength(10);
      expect(streamed).toEqual([...streamed].sort());
    });
  });

  it('checkpoints on a worker thread once it has written a lot, and closes cleanly', async () => {
    let path = '';
    await withStore(async ({ db }, p) => {
      path = p;
      const autocheckpoint = async () =>
        (await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db)).rows[0]
          ?.wal_autocheckpoint;
      expect(await autocheckpoint()).toBe(1000);
      for (let i = 0; i < 600; i++) await insertCertificate(db, certificate());
      expect(await autocheckpoint()).toBe(0); // the worker checkpoints instead
      for (let i = 0; i < 600; i++) await insertCertificate(db, certificate());
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(
        (
          await db
            .selectFrom('certificates')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        )?.n,
      ).toBe(1200);
    });
    expect(path).not.toBe('');
  });
});
