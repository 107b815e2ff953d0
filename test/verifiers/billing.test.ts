// Monthly statements and the operators' usage overview: sums, the month's edges in Japan, the base fee,
// CSV, and who may read what (a verifier never another's). SQLite, and PostgreSQL when
// JPKI_TEST_POSTGRES_URL is set.

import { describe, expect, it } from 'vitest';
import { ForbiddenError, type Principal } from '../../src/staff/roles.ts';
import { overviewCsv, statementCsv, UsageAccessError, VerifierBilling } from '../../src/verifiers/billing.ts';
import { UsageMeter } from '../../src/verifiers/meter.ts';
import {
  type AuthenticatedVerifier,
  VerifierInputError,
  VerifierRegistry,
} from '../../src/verifiers/registry.ts';
import type { Tariff } from '../../src/verifiers/settings.ts';
import { forEachStore } from '../helpers/db.ts';

const OPERATOR: Principal = { staffId: 1, username: 'ops', role: 'operator', municipalityCode: null };
const CLERK: Principal = { staffId: 2, username: 'clerk', role: 'clerk', municipalityCode: '131016' };
const TARIFF: Tariff = { monthlyBaseFeeYen: 10_000, ocspYen: 2, crlYen: 20, verificationYen: 30 };
const jst = (s: string) => Date.parse(`${s}+09:00`);

forEachStore((current) => {
  function setup(start = jst('2026-03-01T09:00:00')) {
    let t = start;
    const now = () => t;
    const registry = new VerifierRegistry(current().db, { now });
    const meter = new UsageMeter(current().db, { now });
    const billing = new VerifierBilling(current().db, registry, { tariff: TARIFF, meter, now });
    /** Counts `n` uses at instant `at` (JST text). */
    const use = async (id: number, at: string, kind: 'ocsp' | 'crl' | 'verification', n: number) => {
      t = jst(at);
      meter.count(id, kind, n);
      await meter.flush();
    };
    const setNow = (s: string) => {
      t = jst(s);
    };
    return { registry, meter, billing, use, setNow };
  }
  const self = (id: number): AuthenticatedVerifier => ({
    verifierId: id,
    name: 'x',
    category: 'administrative-body',
    kinds: ['sign', 'auth'],
    status: 'active',
    contractFrom: '2026-01-01',
    contractTo: '2026-12-31',
    credential: { type: 'api-key', keyId: '0'.repeat(16) },
  });

  describe('statements', () => {
    it('sums the month in Japan at the tariff, with the base fee, and says whether the month is over', async () => {
      const { registry, billing, use, setNow, meter } = setup();
      const v = await registry.register(
        {
          name: 'Agency, "Tokyo"',
          category: 'administrative-body',
          contractFrom: '2026-03-01',
          contractTo: '2027-03-31',
        },
        OPERATOR,
      );
      await use(v.id, '2026-03-31T23:59:59', 'ocsp', 1000); // March
      await use(v.id, '2026-04-01T00:00:00', 'ocsp', 250);
      await use(v.id, '2026-04-15T12:00:00', 'ocsp', 750);
      await use(v.id, '2026-04-15T13:00:00', 'crl', 3);
      await use(v.id, '2026-04-30T23:59:59', 'verification', 7);
      await use(v.id, '2026-05-01T00:00:00', 'verification', 100); // May
      setNow('2026-04-30T20:00:00');
      // Not yet flushed: the statement writes pending counts first, so they are in it.
      meter.count(v.id, 'crl', 2);

      const s = await billing.statement({ operator: OPERATOR }, v.id, '2026-04');
      expect(s.period).toEqual({ from: '2026-04-01', to: '2026-04-30' });
      expect(s.lines.map((l) => [l.item, l.quantity, l.unitPriceYen, l.amountYen])).toEqual([
        ['base-fee', 1, 10_000, 10_000],
        ['ocsp', 1000, 2, 2000],
        ['crl', 5, 20, 100],
        ['verification', 7, 30, 210],
      ]);
      expect(s.totalYen).toBe(12_310);
      expect(s.final).toBe(false);
      expect(s.currency).toBe('JPY');
      setNow('2026-05-01T00:00:00');
      expect((await billing.statement({ operator: OPERATOR }, v.id, '2026-04')).final).toBe(true);

      const usage = await billing.usage({ operator: OPERATOR }, v.id, '2026-04');
      expect(usage.days).toEqual([
        { day: '2026-04-01', ocsp: 250, crl: 0, verification: 0 },
        { day: '2026-04-15', ocsp: 750, crl: 3, verification: 0 },
        { day: '2026-04-30', ocsp: 0, crl: 2, verification: 7 },
      ]);
      expect(usage.total).toEqual({ ocsp: 1000, crl: 5, verification: 7 });

      const march = await billing.statement({ verifier: self(v.id) }, v.id, '2026-03');
      expect(march.totalYen).toBe(10_000 + 1000 * 2);

      // CSV: RFC 4180 quoting of the name, CRLF, the lines and the total.
      const csv = statementCsv(s);
      expect(csv.endsWith('\r\n')).toBe(true);
      const lines = csv.trimEnd().split('\r\n');
      expect(lines[0]).toBe(
        'month,verifier_id,verifier,category,item,description,quantity,unit_price_yen,amount_yen',
      );
      expect(lines[1]).toBe(
        `2026-04,${v.id},"Agency, ""Tokyo""",administrative-body,base-fee,Monthly base fee (月額基本料),1,10000,10000`,
      );
      expect(lines[5]).toMatch(/,total,Total \(provisional: the month is not over\),,,12310$/);
      expect(lines).toHaveLength(6);
    });

    it('charges the base fee only for months the contract overlaps and not after an earlier end', async () => {
      const { registry, billing, setNow } = setup(jst('2026-03-15T12:00:00'));
      const later = await registry.register(
        {
          name: 'Starts in May',
          category: 'private-certification-business',
          contractFrom: '2026-05-01',
          contractTo: '2026-12-31',
        },
        OPERATOR,
      );
      const ending = await registry.register(
        {
          name: 'Ends in March',
          category: 'private-certification-business',
          contractFrom: '2026-01-01',
          contractTo: '2026-12-31',
        },
        OPERATOR,
      );
      setNow('2026-03-20T12:00:00');
      await registry.end(ending.id, 'terminated', OPERATOR);
      const fee = async (id: number, month: string) =>
        (await billing.statement({ operator: OPERATOR }, id, month)).lines[0]!.quantity;
      expect(await fee(later.id, '2026-04')).toBe(0);
      expect(await fee(later.id, '2026-05')).toBe(1);
      expect(await fee(later.id, '2027-01')).toBe(0);
      expect(await fee(ending.id, '2026-03')).toBe(1); // ended during March
      expect(await fee(ending.id, '2026-04')).toBe(0);
    });

    it('lets a verifier read its own usage and statements only; operators all; clerks none', async () => {
      const { registry, billing, use } = setup();
      const a = await registry.register(
        { name: 'A', category: 'administrative-body', contractFrom: '2026-03-01', contractTo: '2026-12-31' },
        OPERATOR,
      );
      const b = await registry.register(
        { name: 'B', category: 'administrative-body', contractFrom: '2026-03-01', contractTo: '2026-12-31' },
        OPERATOR,
      );
      await use(b.id, '2026-04-02T10:00:00', 'ocsp', 42);
      await expect(billing.usage({ verifier: self(a.id) }, b.id, '2026-04')).rejects.toBeInstanceOf(
        UsageAccessError,
      );
      await expect(billing.statement({ verifier: self(a.id) }, b.id, '2026-04')).rejects.toBeInstanceOf(
        UsageAccessError,
      );
      await expect(billing.usage({ operator: CLERK }, b.id, '2026-04')).rejects.toBeInstanceOf(
        ForbiddenError,
      );
      await expect(billing.overview(CLERK, '2026-04')).rejects.toBeInstanceOf(ForbiddenError);
      expect((await billing.usage({ verifier: self(a.id) }, a.id, '2026-04')).total.ocsp).toBe(0);
      expect((await billing.usage({ verifier: self(b.id) }, b.id, '2026-04')).total.ocsp).toBe(42);
      for (const bad of ['2026-4', '2026-13', 'April', '2026-04-01'])
        await expect(billing.usage({ operator: OPERATOR }, a.id, bad)).rejects.toBeInstanceOf(
          VerifierInputError,
        );
    });
  });

  describe('operators’ overview', () => {
    it('lists every verifier with usage or a base fee in the month, with totals that add up', async () => {
      const { registry, billing, use } = setup();
      const mk = (name: string, contractFrom = '2026-03-01') =>
        registry.register(
          { name, category: 'administrative-body', contractFrom, contractTo: '2026-12-31' },
          OPERATOR,
        );
      const a = await mk('=HYPERLINK("x")');
      const b = await mk('B');
      const c = await mk('C (from June)', '2026-06-01');
      await use(a.id, '2026-04-02T10:00:00', 'ocsp', 10);
      await use(b.id, '2026-04-03T10:00:00', 'crl', 2);
      await use(b.id, '2026-04-04T10:00:00', 'verification', 1);
      await use(a.id, '2026-05-01T10:00:00', 'ocsp', 99);
      const o = await billing.overview(OPERATOR, '2026-04');
      expect(o.verifiers.map((v) => [v.verifierId, v.ocsp, v.crl, v.verification, v.amountYen])).toEqual([
        [a.id, 10, 0, 0, 10_000 + 20],
        [b.id, 0, 2, 1, 10_000 + 40 + 30],
      ]);
      expect(o.verifiers.some((v) => v.verifierId === c.id)).toBe(false);
      expect(o.total).toEqual({ ocsp: 10, crl: 2, verification: 1, amountYen: 20_090 });
      // Sum of the statements = the overview.
      let sum = 0;
      for (const v of [a, b, c])
        sum += (await billing.statement({ operator: OPERATOR }, v.id, '2026-04')).totalYen;
      expect(sum).toBe(o.total.amountYen);

      const csv = overviewCsv(o).trimEnd().split('\r\n');
      expect(csv[0]).toBe('month,verifier_id,verifier,category,status,ocsp,crl,verification,amount_yen');
      // A name a spreadsheet would run as a formula is neutralised.
      expect(csv[1]).toBe(`2026-04,${a.id},"'=HYPERLINK(""x"")",administrative-body,active,10,0,0,10020`);
      expect(csv[3]).toBe('2026-04,,total,,,10,2,1,20090');
    });
  });
});
