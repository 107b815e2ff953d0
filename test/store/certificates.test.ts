import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import {
  certificateStatus,
  crlDer,
  DuplicateCrlNumberError,
  DuplicateSerialError,
  findCertificate,
  findRevocation,
  insertCertificate,
  insertCrl,
  isCanonicalSerialHex,
  latestCrl,
  maxRevocationId,
  nextCrlNumber,
  revoke,
  streamRevocations,
  UnknownCertificateError,
} from '../../src/store/certificates.ts';
import { MigrationError, openDatabase } from '../../src/store/db.ts';
import { migrations } from '../../src/store/migrations.ts';
import type { NewCertificateRow } from '../../src/store/schema.ts';
import { forEachStore } from '../helpers/db.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2025, 0, 1);

/** A canonical serial: 8 random bytes, top bit cleared so no 00 prefix is needed. */
function newSerial(): string {
  const b = randomBytes(8);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

function certificate(over: Partial<NewCertificateRow> = {}): NewCertificateRow {
  return {
    serial: newSerial(),
    ca: 'sign',
    profile: 'sign',
    subject: 'CN=Test Resident',
    not_before: T0,
    not_after: T0 + 5 * 365 * DAY,
    issued_at: T0,
    der: randomBytes(300),
    resident_ref: null,
    spki_sha256: createHash('sha256').update(randomBytes(32)).digest('hex'),
    ...over,
  };
}

describe('isCanonicalSerialHex', () => {
  it('accepts minimal positive DER INTEGER contents only', () => {
    for (const ok of ['01', '7f', '0080', '00ff01', '1234abcd']) expect(isCanonicalSerialHex(ok)).toBe(true);
    for (const bad of ['', '1', '00', '0001', '80', 'ff', 'ABCD', '0x12', '12 34']) {
      expect(isCanonicalSerialHex(bad)).toBe(false);
    }
  });
});

describe('openDatabase', () => {
  it('needs a location', async () => {
    await expect(openDatabase({})).rejects.toThrow(TypeError);
  });

  it('reports a failed migration as MigrationError and closes the database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jpki-store-'));
    try {
      const path = join(dir, 'ca.sqlite');
      const raw = new SQLite(path);
      raw.exec('create table certificates (x integer)');
      raw.close();
      const err = await openDatabase({ sqlitePath: path }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect((err as Error).message).toMatch(/migration 0001_authority failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

forEachStore((current, backend) => {
  describe('migrations', () => {
    it('are idempotent: opening the database again applies nothing and keeps the data', async () => {
      const row = certificate();
      await insertCertificate(current().db, row);
      const again = await openDatabase(current().options);
      try {
        expect(again.dialect).toBe(backend);
        const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
          again.db,
        );
        expect(applied.rows.map((r) => r.name)).toEqual(Object.keys(migrations(backend)).sort());
        expect((await findCertificate(again.db, row.serial))?.subject).toBe(row.subject);
      } finally {
        await again.close();
      }
    });

    if (backend === 'sqlite') {
      it('configures SQLite for WAL, foreign keys and a busy timeout', async () => {
        const { db } = current();
        const pragma = async (name: string) =>
          Object.values((await sql.raw<Record<string, unknown>>(`pragma ${name}`).execute(db)).rows[0]!)[0];
        expect(await pragma('journal_mode')).toBe('wal');
        expect(await pragma('foreign_keys')).toBe(1);
        expect(await pragma('synchronous')).toBe(1); // NORMAL
        expect(await pragma('busy_timeout')).toBe(5000);
      });
    }
  });

  describe('certificates', () => {
    it('round-trips a certificate, DER bytes exactly, instants as numbers', async () => {
      const { db } = current();
      const bytes = Buffer.concat([
        Buffer.from([0x30, 0x82, 0x00, 0x00]),
        randomBytes(2000),
        Buffer.alloc(16),
      ]);
      // A Uint8Array view that is not a Buffer and does not start at offset 0 of its ArrayBuffer.
      const padded = Buffer.concat([Buffer.from('junk'), bytes]);
      const view = new Uint8Array(padded.buffer, padded.byteOffset + 4, bytes.length);
      const row = certificate({ der: view, resident_ref: 'resident-1', not_after: T0 + 10 * 365 * DAY });
      await insertCertificate(db, row);
      const found = await findCertificate(db, row.serial);
      expect(found).toBeDefined();
      expect(Buffer.isBuffer(found!.der)).toBe(true);
      expect(found!.der.equals(bytes)).toBe(true);
      expect(found).toEqual({ ...row, der: found!.der });
      expect(typeof found!.not_after).toBe('number');
      expect(await findCertificate(db, newSerial())).toBeUndefined();
    });

    it('refuses a duplicate serial with DuplicateSerialError and writes nothing', async () => {
      const { db } = current();
      const first = certificate();
      await insertCertificate(db, first);
      const dup = certificate({ serial: first.serial, subject: 'CN=Someone Else', ca: 'auth' });
      const err = await insertCertificate(db, dup).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateSerialError);
      expect((err as DuplicateSerialError).serial).toBe(first.serial);
      const rows = await db.selectFrom('certificates').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.subject).toBe(first.subject);
      expect(rows[0]!.der.equals(first.der as Buffer)).toBe(true);
    });

    it('leaves the caller’s transaction usable after a duplicate serial', async () => {
      const { db } = current();
      const first = certificate();
      await insertCertificate(db, first);
      const second = certificate();
      await db.transaction().execute(async (trx) => {
        await expect(insertCertificate(trx, certificate({ serial: first.serial }))).rejects.toThrow(
          DuplicateSerialError,
        );
        await insertCertificate(trx, second);
      });
      expect(await findCertificate(db, second.serial)).toBeDefined();
    });

    it('rolls back with the caller’s transaction', async () => {
      const { db } = current();
      const row = certificate();
      await expect(
        db.transaction().execute(async (trx) => {
          await insertCertificate(trx, row);
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(await findCertificate(db, row.serial)).toBeUndefined();
    });

    it('rejects a serial that is not canonical lowercase DER hex', async () => {
      const { db } = current();
      for (const serial of ['ABCD', '0012', '80', '']) {
        await expect(insertCertificate(db, certificate({ serial }))).rejects.toThrow(TypeError);
      }
    });
  });

  describe('revocations', () => {
    it('records a revocation, copying CA and notAfter from the certificate', async () => {
      const { db } = current();
      const cert = certificate({ ca: 'auth', not_after: T0 + 123 * DAY });
      await insertCertificate(db, cert);
      const { revocation, created } = await revoke(db, {
        serial: cert.serial,
        reason: 1,
        revokedAt: T0 + DAY,
        recordedAt: T0 + DAY + 5,
      });
      expect(created).toBe(true);
      expect(revocation).toEqual({
        id: expect.any(Number),
        serial: cert.serial,
        ca: 'auth',
        reason: 1,
        revoked_at: T0 + DAY,
        recorded_at: T0 + DAY + 5,
        not_after: T0 + 123 * DAY,
      });
      expect(await findRevocation(db, cert.serial)).toEqual(revocation);
    });

    it('keeps the first record when revoked twice', async () => {
      const { db } = current();
      const cert = certificate();
      await insertCertificate(db, cert);
      const first = await revoke(db, {
        serial: cert.serial,
        reason: 1,
        revokedAt: T0 + DAY,
        recordedAt: T0 + DAY,
      });
      const second = await revoke(db, {
        serial: cert.serial,
        reason: 4,
        revokedAt: T0 + 2 * DAY,
        recordedAt: T0 + 2 * DAY,
      });
      expect(second.created).toBe(false);
      expect(second.revocation).toEqual(first.revocation);
      expect(second.revocation.reason).toBe(1);
      expect(second.revocation.revoked_at).toBe(T0 + DAY);
      const count = await db
        .selectFrom('revocations')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirst();
      expect(Number(count?.n)).toBe(1);
    });

    it('creates exactly one record when the same certificate is revoked concurrently', async () => {
      const { db } = current();
      const cert = certificate();
      await insertCertificate(db, cert);
      const results = await Promise.all(
        [1, 3, 4, 5].map((reason) =>
          revoke(db, { serial: cert.serial, reason, revokedAt: T0, recordedAt: T0 }),
        ),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const winner = results.find((r) => r.created)!.revocation;
      for (const r of results) expect(r.revocation).toEqual(winner);
    });

    it('throws UnknownCertificateError for an unknown serial and records nothing', async () => {
      const { db } = current();
      const serial = newSerial();
      const err = await revoke(db, { serial, reason: 0, revokedAt: T0, recordedAt: T0 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UnknownCertificateError);
      expect((err as UnknownCertificateError).serial).toBe(serial);
      expect(await db.selectFrom('revocations').selectAll().execute()).toEqual([]);
    });

    it('rejects reason codes that are not revocation reasons', async () => {
      const { db } = current();
      const cert = certificate();
      await insertCertificate(db, cert);
      for (const reason of [-1, 7, 8, 11, 1.5]) {
        await expect(
          revoke(db, { serial: cert.serial, reason, revokedAt: T0, recordedAt: T0 }),
        ).rejects.toThrow(RangeError);
      }
      expect(await findRevocation(db, cert.serial)).toBeUndefined();
    });

    it('works inside the caller’s transaction', async () => {
      const { db } = current();
      const cert = certificate();
      await db.transaction().execute(async (trx) => {
        await insertCertificate(trx, cert);
        const r = await revoke(trx, { serial: cert.serial, reason: 0, revokedAt: T0, recordedAt: T0 });
        expect(r.created).toBe(true);
      });
      expect((await certificateStatus(db, cert.serial))?.revocation?.reason).toBe(0);
    });

    it('certificateStatus: unknown, good, revoked', async () => {
      const { db } = current();
      expect(await certificateStatus(db, newSerial())).toBeUndefined();
      const cert = certificate({ ca: 'auth', not_after: T0 + 42 * DAY });
      await insertCertificate(db, cert);
      expect(await certificateStatus(db, cert.serial)).toEqual({ ca: 'auth', notAfter: T0 + 42 * DAY });
      const { revocation } = await revoke(db, {
        serial: cert.serial,
        reason: 5,
        revokedAt: T0 + 7,
        recordedAt: T0 + 8,
      });
      expect(await certificateStatus(db, cert.serial)).toEqual({
        ca: 'auth',
        notAfter: T0 + 42 * DAY,
        revocation: { id: revocation.id, reason: 5, revokedAt: T0 + 7 },
      });
    });
  });

  describe('streamRevocations', () => {
    async function revokeMany(
      db: ReturnType<typeof current>['db'],
      specs: { ca: string; notAfter: number }[],
    ): Promise<{ serial: string; id: number; ca: string; notAfter: number }[]> {
      const out = [];
      for (const [i, s] of specs.entries()) {
        const cert = certificate({ ca: s.ca, not_after: s.notAfter });
        await insertCertificate(db, cert);
        const { revocation } = await revoke(db, {
          serial: cert.serial,
          reason: i % 3,
          revokedAt: T0 + i,
          recordedAt: T0 + i,
        });
        out.push({ serial: cert.serial, id: revocation.id, ca: s.ca, notAfter: s.notAfter });
      }
      return out;
    }

    async function collect(it: AsyncIterable<{ id: number }>): Promise<number[]> {
      const ids: number[] = [];
      for await (const r of it) ids.push(r.id);
      return ids;
    }

    it('returns one CA’s revocations in id order, honouring afterId, throughId and notAfterFrom', async () => {
      const { db } = current();
      const cut = T0 + 100 * DAY;
      const rows = await revokeMany(
        db,
        Array.from({ length: 12 }, (_, i) => ({
          ca: i % 3 === 2 ? 'auth' : 'sign',
          notAfter: i % 4 === 0 ? cut - 1 : i % 4 === 1 ? cut : cut + DAY,
        })),
      );
      const sign = rows.filter((r) => r.ca === 'sign');
      const ids = (pred: (r: (typeof rows)[number]) => boolean) => sign.filter(pred).map((r) => r.id);

      const all = [];
      for await (const r of streamRevocations(db, { ca: 'sign', notAfterFrom: 0 })) all.push(r);
      expect(all.map((r) => r.id)).toEqual(sign.map((r) => r.id));
      const firstSign = rows.indexOf(sign[0]!);
      expect(all[0]).toEqual({
        id: sign[0]!.id,
        serial: sign[0]!.serial,
        reason: firstSign % 3,
        revokedAt: T0 + firstSign,
      });
      expect(all.every((r) => typeof r.id === 'number' && typeof r.revokedAt === 'number')).toBe(true);

      expect(await collect(streamRevocations(db, { ca: 'sign', notAfterFrom: cut }))).toEqual(
        ids((r) => r.notAfter >= cut),
      );
      const after = sign[3]!.id;
      expect(await collect(streamRevocations(db, { ca: 'sign', notAfterFrom: 0, afterId: after }))).toEqual(
        ids((r) => r.id > after),
      );
      const through = sign[5]!.id;
      expect(
        await collect(
          streamRevocations(db, { ca: 'sign', notAfterFrom: cut, afterId: after, throughId: through }),
        ),
      ).toEqual(ids((r) => r.id > after && r.id <= through && r.notAfter >= cut));
      expect(await collect(streamRevocations(db, { ca: 'auth', notAfterFrom: 0 }))).toEqual(
        rows.filter((r) => r.ca === 'auth').map((r) => r.id),
      );
      expect(await collect(streamRevocations(db, { ca: 'none', notAfterFrom: 0 }))).toEqual([]);

      expect(await maxRevocationId(db, 'sign')).toBe(sign.at(-1)!.id);
      expect(await maxRevocationId(db, 'none')).toBe(0);
    });

    it('streams 50,000 revocations in id order without collecting them', async () => {
      const { db } = current();
      const total = 50_000;
      const batch = 1_000;
      await db.transaction().execute(async (trx) => {
        const der = randomBytes(64);
        for (let start = 0; start < total; start += batch) {
          const certs = Array.from({ length: batch }, (_, i) => ({
            ...certificate({ der }),
            serial: (0x10000000 + start + i).toString(16),
            not_after: T0 + ((start + i) % 2) * DAY,
          }));
          await trx.insertInto('certificates').values(certs).execute();
          await trx
            .insertInto('revocations')
            .values(
              certs.map((c, i) => ({
                serial: c.serial,
                ca: c.ca,
                reason: 1,
                revoked_at: T0 + start + i,
                recorded_at: T0 + start + i,
                not_after: c.not_after,
              })),
            )
            .execute();
        }
      });

      let count = 0;
      let lastId = 0;
      let ordered = true;
      for await (const r of streamRevocations(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 500 })) {
        if (r.id <= lastId) ordered = false;
        lastId = r.id;
        count++;
      }
      expect(ordered).toBe(true);
      expect(count).toBe(total);
      expect(lastId).toBe(await maxRevocationId(db, 'sign'));

      let unexpired = 0;
      for await (const _ of streamRevocations(db, { ca: 'sign', notAfterFrom: T0 + 1 })) unexpired++;
      expect(unexpired).toBe(total / 2);
    });

    it('releases the connection when the consumer stops early', async () => {
      const { db } = current();
      await revokeMany(
        db,
        Array.from({ length: 30 }, () => ({ ca: 'sign', notAfter: T0 + DAY })),
      );
      let seen = 0;
      for await (const _ of streamRevocations(db, { ca: 'sign', notAfterFrom: 0, chunkSize: 4 })) {
        if (++seen === 10) break;
      }
      expect(seen).toBe(10);
      // Would hang on SQLite (single connection) or leak a pooled client on PostgreSQL otherwise.
      expect(await maxRevocationId(db, 'sign')).toBeGreaterThan(0);
      await expect(
        Promise.all(Array.from({ length: 20 }, () => certificateStatus(db, newSerial()))),
      ).resolves.toHaveLength(20);
    });
  });

  describe('CRLs', () => {
    const crlFields = (ca: string, kind: 'full' | 'delta', baseNumber: number | null = null, t = T0) => ({
      ca,
      kind,
      base_number: baseNumber,
      this_update: t,
      next_update: t + DAY,
      max_revocation_id: 0,
      entries: 0,
    });
    const fakeDer = (ca: string, n: number) => Buffer.from(`CRL ${ca} #${n}`);

    it('numbers full and delta CRLs in one increasing sequence per CA', async () => {
      const { db } = current();
      expect(await nextCrlNumber(db, 'sign')).toBe(1);
      const a = await insertCrl(db, { ...crlFields('sign', 'full'), der: (n) => fakeDer('sign', n) });
      const b = await insertCrl(db, {
        ...crlFields('sign', 'delta', a.number),
        der: (n) => fakeDer('sign', n),
      });
      const c = await insertCrl(db, {
        ...crlFields('sign', 'delta', a.number),
        der: (n) => fakeDer('sign', n),
      });
      const d = await insertCrl(db, { ...crlFields('sign', 'full'), der: (n) => fakeDer('sign', n) });
      const other = await insertCrl(db, { ...crlFields('auth', 'full'), der: (n) => fakeDer('auth', n) });
      expect([a.number, b.number, c.number, d.number]).toEqual([1, 2, 3, 4]);
      expect(other.number).toBe(1);
      expect(await nextCrlNumber(db, 'sign')).toBe(5);
      expect(d.der.equals(fakeDer('sign', 4))).toBe(true);
      expect(d.sha256).toBe(createHash('sha256').update(fakeDer('sign', 4)).digest('hex'));
    });

    it('gives concurrent insertCrl calls for one CA distinct numbers', async () => {
      const { db } = current();
      // Both calls allocate before either inserts: the second insert hits the (ca, number) key and
      // must re-allocate and re-build.
      const built: number[] = [];
      let bothAllocated!: () => void;
      const barrier = new Promise<void>((resolve) => {
        bothAllocated = resolve;
      });
      const build = async (n: number) => {
        built.push(n);
        if (built.length === 2) bothAllocated();
        await barrier;
        return fakeDer('sign', n);
      };
      const [x, y] = await Promise.all([
        insertCrl(db, { ...crlFields('sign', 'full'), der: build }),
        insertCrl(db, { ...crlFields('sign', 'full'), der: build }),
      ]);
      expect([x.number, y.number].sort()).toEqual([1, 2]);
      expect(built).toEqual([1, 1, 2]);
      // Each stored DER is the one built for its number.
      for (const crl of [x, y]) {
        expect((await crlDer(db, 'sign', crl.number))!.equals(fakeDer('sign', crl.number))).toBe(true);
      }
    });

    it('refuses a CRL number that is taken with DuplicateCrlNumberError', async () => {
      const { db } = current();
      const n = await nextCrlNumber(db, 'sign');
      await insertCrl(db, { ...crlFields('sign', 'full'), number: n, der: fakeDer('sign', n) });
      const err = await insertCrl(db, {
        ...crlFields('sign', 'full'),
        number: n,
        der: fakeDer('sign', 99),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateCrlNumberError);
      expect((await crlDer(db, 'sign', n))!.equals(fakeDer('sign', n))).toBe(true);
      await expect(
        insertCrl(db, {
          ...crlFields('sign', 'full'),
          number: n + 1,
          der: fakeDer('sign', n + 1),
          sha256: '00',
        }),
      ).rejects.toThrow(/sha256/);
    });

    it('requires a stored full CRL as the base of a delta CRL', async () => {
      const { db } = current();
      await expect(
        insertCrl(db, { ...crlFields('sign', 'delta'), der: (n) => fakeDer('sign', n) }),
      ).rejects.toThrow(TypeError);
      await expect(
        insertCrl(db, { ...crlFields('sign', 'full', 1), der: (n) => fakeDer('sign', n) }),
      ).rejects.toThrow(TypeError);
      await expect(
        insertCrl(db, { ...crlFields('sign', 'delta', 41), der: (n) => fakeDer('sign', n) }),
      ).rejects.toThrow(); // foreign key (ca, base_number) -> crls
    });

    it('latestCrl picks the newest of each kind, without DER unless asked', async () => {
      const { db } = current();
      expect(await latestCrl(db, 'sign', 'full')).toBeUndefined();
      const f1 = await insertCrl(db, {
        ...crlFields('sign', 'full', null, T0),
        der: (n) => fakeDer('sign', n),
      });
      const d1 = await insertCrl(db, {
        ...crlFields('sign', 'delta', f1.number, T0 + 1),
        der: (n) => fakeDer('sign', n),
      });
      const f2 = await insertCrl(db, {
        ...crlFields('sign', 'full', null, T0 + 2),
        der: (n) => fakeDer('sign', n),
      });
      const d2 = await insertCrl(db, {
        ...crlFields('sign', 'delta', f2.number, T0 + 3),
        der: (n) => fakeDer('sign', n),
      });
      await insertCrl(db, { ...crlFields('auth', 'full', null, T0 + 4), der: (n) => fakeDer('auth', n) });

      const full = await latestCrl(db, 'sign', 'full');
      const { der: _f2der, ...f2meta } = f2;
      expect(full).toEqual(f2meta);
      expect(full && 'der' in full).toBe(false);
      const delta = await latestCrl(db, 'sign', 'delta', { withDer: true });
      expect(delta).toEqual(d2);
      expect(delta!.der.equals(fakeDer('sign', d2.number))).toBe(true);
      expect(typeof delta!.this_update).toBe('number');
      expect(delta!.base_number).toBe(f2.number);
      expect((await latestCrl(db, 'auth', 'full'))?.number).toBe(1);
      expect(await latestCrl(db, 'auth', 'delta')).toBeUndefined();
      expect((await crlDer(db, 'sign', d1.number))!.equals(fakeDer('sign', d1.number))).toBe(true);
      expect(await crlDer(db, 'sign', 999)).toBeUndefined();
    });
  });
});
