// Metering: counts kept in memory and written in batches must add up exactly, under concurrency and
// across processes, and survive a store that refuses them for a while. Real stores (SQLite, and
// PostgreSQL when JPKI_TEST_POSTGRES_URL is set); the failures are real (the table renamed away).

import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/db.ts';
import { UsageMeter } from '../../src/verifiers/meter.ts';
import { VerifierRegistry } from '../../src/verifiers/registry.ts';
import { forEachStore } from '../helpers/db.ts';

const KINDS = ['ocsp', 'crl', 'verification'] as const;

forEachStore((current) => {
  async function verifiers(n: number): Promise<number[]> {
    const r = new VerifierRegistry(current().db);
    const ids: number[] = [];
    for (let i = 0; i < n; i++)
      ids.push(
        (
          await r.register(
            {
              name: `Verifier ${i}`,
              category: 'administrative-body',
              contractFrom: '2026-01-01',
              contractTo: '2099-12-31',
            },
            'cli:test',
          )
        ).id,
      );
    return ids;
  }

  async function stored(): Promise<Map<string, number>> {
    const rows = await current().db.selectFrom('verifier_usage').selectAll().execute();
    return new Map(rows.map((r) => [`${r.verifier_id}/${r.day}/${r.kind}`, Number(r.count)]));
  }

  const renameUsage = (from: string, to: string) =>
    sql`alter table ${sql.table(from)} rename to ${sql.table(to)}`.execute(current().db);

  describe('usage meter', () => {
    it('counts exactly under concurrency: many callers, threshold flushes racing explicit ones, two processes', async () => {
      const ids = await verifiers(3);
      // On PostgreSQL a second process: its own pool on the same database. (Two SQLite connections in one
      // thread would wait on each other's write lock with the event loop blocked: one connection there.)
      const other = current().backend === 'postgres' ? await openDatabase(current().options) : undefined;
      const T = Date.parse('2026-04-10T03:00:00Z');
      const meters = [
        new UsageMeter(current().db, { flushCount: 37, now: () => T }),
        new UsageMeter((other ?? current()).db, { flushCount: 53, now: () => T }),
      ];
      const expected = new Map<string, number>();
      try {
        const workers = Array.from({ length: 40 }, async (_, w) => {
          const meter = meters[w % 2]!;
          for (let i = 0; i < 150; i++) {
            const id = ids[(w + i) % ids.length]!;
            const kind = KINDS[(w * 7 + i) % 3]!;
            meter.count(id, kind);
            const key = `${id}/2026-04-10/${kind}`;
            expected.set(key, (expected.get(key) ?? 0) + 1);
            if (i % 10 === 0) await new Promise((r) => setImmediate(r));
            if (i % 45 === 0) await meter.flush();
          }
        });
        await Promise.all(workers);
        await Promise.all(meters.map((m) => m.stop()));
      } finally {
        await other?.close();
      }
      expect(meters.map((m) => m.pending)).toEqual([0, 0]);
      expect(await stored()).toEqual(expected);
      expect([...expected.values()].reduce((a, b) => a + b, 0)).toBe(40 * 150);
    });

    it('counts by day in Japan: 23:59:59 and 00:00:00 JST fall on two days', async () => {
      const [id] = await verifiers(1);
      let t = Date.parse('2026-04-30T23:59:59+09:00');
      const meter = new UsageMeter(current().db, { now: () => t });
      meter.count(id!, 'ocsp', 2);
      t += 1000;
      meter.count(id!, 'ocsp');
      meter.count(id!, 'crl');
      expect(await meter.flush()).toBe(4);
      expect(await meter.flush()).toBe(0);
      expect(await stored()).toEqual(
        new Map([
          [`${id}/2026-04-30/ocsp`, 2],
          [`${id}/2026-05-01/ocsp`, 1],
          [`${id}/2026-05-01/crl`, 1],
        ]),
      );
    });

    it('keeps the counts when a flush fails, goes on counting, and writes them all later', async () => {
      const [id] = await verifiers(1);
      const errors: unknown[] = [];
      const meter = new UsageMeter(current().db, {
        flushCount: 5,
        flushIntervalMs: 60_000,
        onError: (e) => errors.push(e),
      });
      meter.count(id!, 'ocsp', 3);
      expect(await meter.flush()).toBe(3);

      await renameUsage('verifier_usage', 'verifier_usage_away');
      try {
        meter.count(id!, 'ocsp', 3);
        meter.count(id!, 'verification');
        await expect(meter.flush()).rejects.toThrow(/verifier_usage/);
        expect(meter.pending).toBe(4);
        // Answers go on while the store is away; a failed flush only retries on the timer, so these
        // counts past the threshold do not start a flush each.
        meter.count(id!, 'ocsp');
        for (let i = 0; i < 20; i++) meter.count(id!, 'crl');
        await new Promise((r) => setTimeout(r, 20));
        expect(errors).toHaveLength(0);
        expect(meter.pending).toBe(25);
      } finally {
        await renameUsage('verifier_usage_away', 'verifier_usage');
      }
      expect(await meter.flush()).toBe(25);
      expect(meter.pending).toBe(0);
      const today = [...(await stored()).entries()];
      expect(today.map(([k, n]) => [k.split('/')[2], n]).sort()).toEqual([
        ['crl', 20],
        ['ocsp', 7],
        ['verification', 1],
      ]);
    });

    it('retries on its timer after a failure and writes on stop', async () => {
      const [id] = await verifiers(1);
      const errors: unknown[] = [];
      const meter = new UsageMeter(current().db, { flushIntervalMs: 40, onError: (e) => errors.push(e) });
      meter.start();
      try {
        await renameUsage('verifier_usage', 'verifier_usage_away');
        try {
          meter.count(id!, 'ocsp', 10);
          await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
          expect(meter.pending).toBe(10);
        } finally {
          await renameUsage('verifier_usage_away', 'verifier_usage');
        }
        await expect.poll(() => meter.pending, { timeout: 5000 }).toBe(0);
        meter.count(id!, 'crl', 2);
      } finally {
        await meter.stop();
      }
      const rows = await stored();
      expect([...rows.values()].reduce((a, b) => a + b, 0)).toBe(12);
    });

    it('a flush that fails on a closed store keeps its counts', async () => {
      const [id] = await verifiers(1);
      const other = await openDatabase(current().options);
      const meter = new UsageMeter(other.db);
      meter.count(id!, 'verification', 3);
      await other.close();
      await expect(meter.flush()).rejects.toThrow();
      expect(meter.pending).toBe(3);
      await expect(meter.stop()).rejects.toThrow();
      expect(meter.pending).toBe(3);
    });
  });
});
