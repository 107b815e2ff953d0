// Group commit of issued certificates (CertificateWriter): certificates that arrive while a commit
// is in flight share the next statement and commit; each caller still gets its own answer, and a
// failure of the store fails the whole batch without a retry that could store anything twice.

import { createHash, randomBytes } from 'node:crypto';
import SQLite from 'better-sqlite3';
import { type KyselyPlugin, sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import {
  CertificateWriter,
  DuplicateSerialError,
  findCertificate,
  insertCertificate,
} from '../../src/store/certificates.ts';
import type { NewCertificateRow } from '../../src/store/schema.ts';
import { forEachStore, type TestStore } from '../helpers/db.ts';

const T0 = Date.UTC(2025, 0, 1);

function certificate(over: Partial<NewCertificateRow> = {}): NewCertificateRow {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  return {
    serial: serial.toString('hex'),
    ca: 'auth',
    profile: 'auth',
    subject: 'C=JP, CN=writer test',
    not_before: T0,
    not_after: T0 + 1000,
    issued_at: T0,
    der: randomBytes(400),
    resident_ref: null,
    spki_sha256: createHash('sha256').update(randomBytes(32)).digest('hex'),
    ...over,
  };
}

/** The store's db, reporting the number of rows of every statement that completes. */
function observed(store: TestStore, onStatement: (rows: number) => void = () => {}) {
  const statements: number[] = [];
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      const rows = Number(args.result.numAffectedRows ?? 0);
      statements.push(rows);
      onStatement(rows);
      return args.result;
    },
  };
  return { db: store.db.withPlugin(plugin), statements };
}

async function stored(store: TestStore, row: NewCertificateRow) {
  const found = await findCertificate(store.db, row.serial);
  return found ? Buffer.from(found.der).equals(Buffer.from(row.der)) : false;
}

describe('CertificateWriter', () => {
  it('refuses a transaction and a bad batch size', () => {
    expect(() => new CertificateWriter({ isTransaction: true } as never)).toThrow(TypeError);
    expect(() => new CertificateWriter({ isTransaction: false } as never, { maxBatch: 0 })).toThrow(
      RangeError,
    );
  });

  forEachStore((current) => {
    it('refuses a bad number of batches in flight', () => {
      expect(() => new CertificateWriter(current().db, { maxInFlight: 0 })).toThrow(RangeError);
    });
  });

  forEachStore((current, backend) => {
    it('one certificate at a time: each goes alone, at once', async () => {
      const { db, statements } = observed(current());
      const writer = new CertificateWriter(db);
      const rows = [certificate(), certificate(), certificate()];
      for (const row of rows) await writer.insert(row);
      expect(statements).toEqual([1, 1, 1]);
      for (const row of rows) expect(await stored(current(), row)).toBe(true);
    });

    it('certificates that arrive during a commit share the next statement; every caller is answered after it', async () => {
      const { db, statements } = observed(current());
      const writer = new CertificateWriter(db, { maxInFlight: 1 });
      const rows = Array.from({ length: 6 }, () => certificate());
      const answered: number[] = [];
      await Promise.all(
        rows.map((row, i) =>
          writer.insert(row).then(async () => {
            answered.push(i);
            // Answered only once the row is in the store (committed: visible on another connection).
            expect(await stored(current(), row)).toBe(true);
          }),
        ),
      );
      expect(statements).toEqual([1, 5]);
      expect(answered.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    });

    it('several batches in flight (PostgreSQL writes 4 at once): the ones that arrive meanwhile still go together', async () => {
      const { db, statements } = observed(current());
      const writer = new CertificateWriter(db, { maxInFlight: 2 });
      const rows = Array.from({ length: 6 }, () => certificate());
      await Promise.all(rows.map((row) => writer.insert(row)));
      expect([...statements].sort()).toEqual([1, 1, 4]);
      for (const row of rows) expect(await stored(current(), row)).toBe(true);
    });

    it('gather: certificates on their way are waited for (SQLite: until the end of the event-loop turn)', async () => {
      const { db, statements } = observed(current());
      const writer = new CertificateWriter(db, { maxInFlight: 1 });
      const rows = [certificate(), certificate(), certificate()];
      // The second and third arrive later in the same turn, as completed signatures do.
      const first = writer.insert(rows[0]!, { gather: true });
      await Promise.resolve();
      const rest = rows.slice(1).map((row) => writer.insert(row, { gather: true }));
      await Promise.all([first, ...rest]);
      // On PostgreSQL the first goes at once and the others join the next commit.
      expect(statements).toEqual(backend === 'sqlite' ? [3] : [1, 2]);
      for (const row of rows) expect(await stored(current(), row)).toBe(true);
    });

    it('batches are capped at maxBatch', async () => {
      const { db, statements } = observed(current());
      const writer = new CertificateWriter(db, { maxBatch: 2, maxInFlight: 1 });
      await Promise.all(Array.from({ length: 6 }, () => writer.insert(certificate())));
      expect(statements).toEqual([1, 2, 2, 1]);
    });

    it('a duplicate serial in the middle of a batch: the others are stored, the duplicate gets its own error and changes nothing', async () => {
      const existing = certificate();
      await insertCertificate(current().db, existing);
      const writer = new CertificateWriter(current().db, { maxInFlight: 1 });
      const rows = [
        certificate(),
        certificate(),
        certificate({ serial: existing.serial }),
        certificate(),
        certificate(),
      ];
      const results = await Promise.allSettled(rows.map((row) => writer.insert(row)));
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
      ]);
      expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateSerialError);
      for (const i of [0, 1, 3, 4]) expect(await stored(current(), rows[i]!)).toBe(true);
      expect(await stored(current(), existing)).toBe(true); // the first record stands
    });

    it('two certificates with one serial in one batch: the first is stored, the second gets DuplicateSerialError', async () => {
      const writer = new CertificateWriter(current().db, { maxInFlight: 1 });
      const first = certificate();
      const twin = certificate({ serial: first.serial });
      const other = certificate();
      const results = await Promise.allSettled(
        [certificate(), first, other, twin].map((r) => writer.insert(r)),
      );
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateSerialError);
      expect(await stored(current(), first)).toBe(true);
      expect(await stored(current(), other)).toBe(true);
    });

    it('a row the database refuses (a constraint) fails alone', async () => {
      const store = current();
      if (backend === 'postgres') {
        await sql`create function refuse_writer_test() returns trigger language plpgsql as $$
          begin
            if new.resident_ref = 'refused' then
              raise exception 'refused by the test' using errcode = 'check_violation';
            end if;
            return new;
          end $$`.execute(store.db);
        await sql`create trigger refuse_writer_test before insert on certificates
          for each row execute function refuse_writer_test()`.execute(store.db);
      } else {
        await sql`create trigger refuse_writer_test before insert on certificates
          when new.resident_ref = 'refused' begin select raise(abort, 'refused by the test'); end`.execute(
          store.db,
        );
      }
      const writer = new CertificateWriter(store.db, { maxInFlight: 1 });
      const rows = [certificate(), certificate(), certificate({ resident_ref: 'refused' }), certificate()];
      const results = await Promise.allSettled(rows.map((row) => writer.insert(row)));
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      expect(String((results[2] as PromiseRejectedResult).reason)).toMatch(/refused by the test/);
      expect(await findCertificate(store.db, rows[2]!.serial)).toBeUndefined();
      for (const i of [0, 1, 3]) expect(await stored(store, rows[i]!)).toBe(true);
    });

    it('a malformed row is refused before it joins a batch', async () => {
      const writer = new CertificateWriter(current().db, { maxInFlight: 1 });
      const good = certificate();
      const results = await Promise.allSettled([
        writer.insert(certificate({ serial: 'ABCD' })),
        writer.insert(good),
      ]);
      expect(results[0]!.status).toBe('rejected');
      expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(TypeError);
      expect(await stored(current(), good)).toBe(true);
    });

    it('the store fails the commit of a batch: every caller in it gets the error, nothing of it is stored, and the writer goes on', async () => {
      const store = current();
      let afterFirst: () => void = () => {};
      const { db } = observed(store, () => {
        afterFirst();
        afterFirst = () => {};
      });
      let release = async () => {};
      if (backend === 'postgres') {
        // The server session dies in the middle of the batch's statement (as in a crash of the
        // backend): the transaction never commits.
        await sql`create function crash_writer_test() returns trigger language plpgsql as $$
          begin
            if new.resident_ref = 'crash' then perform pg_terminate_backend(pg_backend_pid()); end if;
            return new;
          end $$`.execute(store.db);
        await sql`create trigger crash_writer_test before insert on certificates
          for each row execute function crash_writer_test()`.execute(store.db);
      } else {
        // Another process holds the write lock when the batch commits: "database is locked".
        await sql`pragma busy_timeout = 100`.execute(store.db);
        const path = store.options.sqlitePath!;
        afterFirst = () => {
          const other = new SQLite(path);
          other.exec('begin immediate');
          release = async () => {
            other.exec('rollback');
            other.close();
          };
        };
      }
      const writer = new CertificateWriter(db, { maxInFlight: 1 });
      const rows = [certificate(), certificate(), certificate({ resident_ref: 'crash' }), certificate()];
      const results = await Promise.allSettled(rows.map((row) => writer.insert(row)));
      await release();
      // pg's pool drops the dead session once its socket has closed; until then a query may get it.
      if (backend === 'postgres')
        await expect
          .poll(
            () =>
              sql`select 1`.execute(store.db).then(
                () => true,
                () => false,
              ),
            { timeout: 5000 },
          )
          .toBe(true);
      expect(results[0]!.status).toBe('fulfilled');
      const errors = results.slice(1).map((r) => (r.status === 'rejected' ? r.reason : undefined));
      expect(errors.every((e) => e instanceof Error)).toBe(true);
      expect(new Set(errors).size).toBe(1); // one failure, given to each caller of the batch
      if (backend === 'postgres') expect(String(errors[0])).toMatch(/terminat/);
      else expect((errors[0] as { code?: string }).code).toBe('SQLITE_BUSY');
      expect(await stored(store, rows[0]!)).toBe(true);
      for (const row of rows.slice(1)) expect(await findCertificate(store.db, row.serial)).toBeUndefined();

      // The writer is not stuck: the next certificates are stored.
      const later = certificate();
      await writer.insert(later);
      expect(await stored(store, later)).toBe(true);
    });
  });
});
