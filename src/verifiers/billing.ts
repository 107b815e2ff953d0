// Usage and monthly statements of the authorised verifiers.
//
// A statement covers one calendar month in Japan: the month's OCSP answers, CRL downloads and
// verifications, each at the tariff's unit price, plus the monthly base fee when the contract overlaps the
// month (and the verifier had not ended before it began). Amounts are whole yen, tax not included. The
// tariff is the one configured when the statement is made; a statement of a month that is not over yet
// is marked provisional.
//
// Who may read: operators (`verifier.manage`), every verifier; a verifier, its own usage and statements
// only. The check is here, in the service, not only in the HTTP layer.

import type { Db } from '../audit/audit-log.ts';
import type { UsageKind } from '../store/verifier-schema.ts';
import { isMonth, jstDayStart, jstMonth, monthDays } from './calendar.ts';
import type { UsageMeter } from './meter.ts';
import {
  type AuthenticatedVerifier,
  type Verifier,
  type VerifierActor,
  VerifierInputError,
  type VerifierRegistry,
} from './registry.ts';
import type { Tariff } from './settings.ts';

export const USAGE_KINDS: readonly UsageKind[] = ['ocsp', 'crl', 'verification'];

export interface UsageCounts {
  ocsp: number;
  crl: number;
  verification: number;
}

export interface DailyUsage extends UsageCounts {
  day: string;
}

export interface VerifierUsage {
  verifierId: number;
  month: string;
  days: DailyUsage[];
  total: UsageCounts;
}

export type StatementItem = 'base-fee' | UsageKind;

export interface StatementLine {
  item: StatementItem;
  description: string;
  quantity: number;
  unitPriceYen: number;
  amountYen: number;
}

export interface Statement {
  verifier: { id: number; name: string; category: string };
  month: string;
  period: { from: string; to: string };
  currency: 'JPY';
  lines: StatementLine[];
  totalYen: number;
  /** False while the month is not over: the counts can still grow. */
  final: boolean;
  generatedAt: number;
  tariff: Tariff;
}

export interface UsageOverviewRow extends UsageCounts {
  verifierId: number;
  name: string;
  category: string;
  status: string;
  amountYen: number;
}

export interface UsageOverview {
  month: string;
  verifiers: UsageOverviewRow[];
  total: UsageCounts & { amountYen: number };
  final: boolean;
}

/** Who reads usage: an operator, or a verifier (which sees only its own). */
export type UsageReader = { operator: VerifierActor } | { verifier: AuthenticatedVerifier };

export class UsageAccessError extends Error {
  override name = 'UsageAccessError';
}

const DESCRIPTIONS: Record<StatementItem, string> = {
  'base-fee': 'Monthly base fee (月額基本料)',
  ocsp: 'OCSP answers (OCSP応答)',
  crl: 'CRL downloads (失効リスト提供)',
  verification: 'Signature verifications (署名検証)',
};

export interface VerifierBillingOptions {
  tariff: Tariff;
  /** Pending counts of this process are written before usage is read, so the answer includes them. */
  meter?: UsageMeter;
  now?: () => number;
}

export class VerifierBilling {
  readonly #db: Db;
  readonly #registry: VerifierRegistry;
  readonly #tariff: Tariff;
  readonly #meter: UsageMeter | undefined;
  readonly #now: () => number;

  constructor(db: Db, registry: VerifierRegistry, opts: VerifierBillingOptions) {
    this.#db = db;
    this.#registry = registry;
    this.#tariff = opts.tariff;
    this.#meter = opts.meter;
    this.#now = opts.now ?? Date.now;
  }

  get tariff(): Tariff {
    return this.#tariff;
  }

  /** Daily usage of one verifier in a month (YYYY-MM). */
  async usage(reader: UsageReader, verifierId: number, month: string): Promise<VerifierUsage> {
    await this.#check(reader, verifierId, month);
    await this.#flush();
    return this.#usage(verifierId, month);
  }

  /** The statement of one verifier for a month. */
  async statement(reader: UsageReader, verifierId: number, month: string): Promise<Statement> {
    const verifier = await this.#check(reader, verifierId, month);
    await this.#flush();
    const usage = await this.#usage(verifierId, month);
    const { first, last } = monthDays(month);
    const t = this.#tariff;
    const baseFee = owesBaseFee(verifier, first, last) ? 1 : 0;
    const lines: StatementLine[] = [
      line('base-fee', baseFee, t.monthlyBaseFeeYen),
      line('ocsp', usage.total.ocsp, t.ocspYen),
      line('crl', usage.total.crl, t.crlYen),
      line('verification', usage.total.verification, t.verificationYen),
    ];
    const now = this.#now();
    return {
      verifier: { id: verifier.id, name: verifier.name, category: verifier.category },
      month,
      period: { from: first, to: last },
      currency: 'JPY',
      lines,
      totalYen: lines.reduce((s, l) => s + l.amountYen, 0),
      final: month < jstMonth(now),
      generatedAt: now,
      tariff: { ...t },
    };
  }

  /** Every verifier's usage and amount for a month: operators only. */
  async overview(actor: VerifierActor, month: string): Promise<UsageOverview> {
    checkMonth(month);
    const verifiers = await this.#registry.list({ actor });
    await this.#flush();
    const { first, last } = monthDays(month);
    const rows = await this.#db
      .selectFrom('verifier_usage')
      .select(['verifier_id', 'kind'])
      .select((eb) => eb.fn.sum<number | string>('count').as('n'))
      .where('day', '>=', first)
      .where('day', '<=', last)
      .groupBy(['verifier_id', 'kind'])
      .execute();
    const counts = new Map<number, UsageCounts>();
    for (const r of rows) {
      const c = counts.get(r.verifier_id) ?? { ocsp: 0, crl: 0, verification: 0 };
      c[r.kind] += Number(r.n);
      counts.set(r.verifier_id, c);
    }
    const t = this.#tariff;
    const total = { ocsp: 0, crl: 0, verification: 0, amountYen: 0 };
    const out: UsageOverviewRow[] = [];
    for (const v of verifiers) {
      const c = counts.get(v.id) ?? { ocsp: 0, crl: 0, verification: 0 };
      const base = owesBaseFee(v, first, last);
      if (!base && c.ocsp + c.crl + c.verification === 0) continue;
      const amountYen =
        (base ? t.monthlyBaseFeeYen : 0) +
        c.ocsp * t.ocspYen +
        c.crl * t.crlYen +
        c.verification * t.verificationYen;
      out.push({ verifierId: v.id, name: v.name, category: v.category, status: v.status, ...c, amountYen });
      total.ocsp += c.ocsp;
      total.crl += c.crl;
      total.verification += c.verification;
      total.amountYen += amountYen;
    }
    return { month, verifiers: out, total, final: month < jstMonth(this.#now()) };
  }

  async #check(reader: UsageReader, verifierId: number, month: string): Promise<Verifier> {
    checkMonth(month);
    if ('verifier' in reader) {
      if (reader.verifier.verifierId !== verifierId)
        throw new UsageAccessError('a verifier may read its own usage and statements only');
      return this.#registry.get(verifierId);
    }
    return this.#registry.get(verifierId, reader.operator);
  }

  async #flush(): Promise<void> {
    // A store that is down fails the read below anyway; a failed flush keeps its counts.
    await this.#meter?.flush().catch(() => undefined);
  }

  async #usage(verifierId: number, month: string): Promise<VerifierUsage> {
    const { first, last } = monthDays(month);
    const rows = await this.#db
      .selectFrom('verifier_usage')
      .select(['day', 'kind', 'count'])
      .where('verifier_id', '=', verifierId)
      .where('day', '>=', first)
      .where('day', '<=', last)
      .orderBy('day')
      .execute();
    const byDay = new Map<string, DailyUsage>();
    const total: UsageCounts = { ocsp: 0, crl: 0, verification: 0 };
    for (const r of rows) {
      let d = byDay.get(r.day);
      if (!d) {
        d = { day: r.day, ocsp: 0, crl: 0, verification: 0 };
        byDay.set(r.day, d);
      }
      d[r.kind] += Number(r.count);
      total[r.kind] += Number(r.count);
    }
    return { verifierId, month, days: [...byDay.values()], total };
  }
}

function line(item: StatementItem, quantity: number, unitPriceYen: number): StatementLine {
  return {
    item,
    description: DESCRIPTIONS[item],
    quantity,
    unitPriceYen,
    amountYen: quantity * unitPriceYen,
  };
}

/** The base fee is owed for a month the contract overlaps, unless the verifier had ended before it began. */
function owesBaseFee(v: Verifier, first: string, last: string): boolean {
  if (v.contractFrom > last || v.contractTo < first) return false;
  return !(v.status === 'ended' && v.statusChangedAt < jstDayStart(first));
}

function checkMonth(month: string): void {
  if (typeof month !== 'string' || !isMonth(month))
    throw new VerifierInputError('a month is written YYYY-MM');
}

// ---- CSV (RFC 4180, CRLF) ----

/** A CSV field: quoted when needed; a leading =, +, - or @ is neutralised so spreadsheets do not run it. */
function field(v: string | number): string {
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csv = (rows: (string | number)[][]): string =>
  `${rows.map((r) => r.map(field).join(',')).join('\r\n')}\r\n`;

/** Columns: month,verifier_id,verifier,category,item,description,quantity,unit_price_yen,amount_yen; then a total line. */
export function statementCsv(s: Statement): string {
  const head = [s.month, s.verifier.id, s.verifier.name, s.verifier.category];
  return csv([
    [
      'month',
      'verifier_id',
      'verifier',
      'category',
      'item',
      'description',
      'quantity',
      'unit_price_yen',
      'amount_yen',
    ],
    ...s.lines.map((l) => [...head, l.item, l.description, l.quantity, l.unitPriceYen, l.amountYen]),
    [...head, 'total', s.final ? 'Total' : 'Total (provisional: the month is not over)', '', '', s.totalYen],
  ]);
}

/** Columns: month,verifier_id,verifier,category,status,ocsp,crl,verification,amount_yen; then a total line. */
export function overviewCsv(o: UsageOverview): string {
  return csv([
    ['month', 'verifier_id', 'verifier', 'category', 'status', 'ocsp', 'crl', 'verification', 'amount_yen'],
    ...o.verifiers.map((v) => [
      o.month,
      v.verifierId,
      v.name,
      v.category,
      v.status,
      v.ocsp,
      v.crl,
      v.verification,
      v.amountYen,
    ]),
    [o.month, '', 'total', '', '', o.total.ocsp, o.total.crl, o.total.verification, o.total.amountYen],
  ]);
}
