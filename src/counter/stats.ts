// Issuance statistics for the counters (窓口の発行統計): certificates issued at municipal counters per day
// and per month (calendar dates in Japan), per municipality and in total, against the design capacity
// (the seed's 5,000,000 certificates, configurable). Counts only: no personal data.
//
// The source is counter_issuances: one row per certificate issued through the counter workflow, written
// in the transaction that records the issuance on its case, with the case's municipality and the JST day.
// `cumulative` counts every counter issuance up to the end of the period (all municipalities in the
// scope), and utilisation = cumulative / capacity.

import type { Store } from '../store/db.ts';

export interface IssuanceCount {
  /** Signature certificates. */
  sign: number;
  /** User-authentication certificates. */
  auth: number;
  /** sign + auth. */
  total: number;
  /** Of total: renewals (a valid certificate was replaced). */
  renewals: number;
}

export interface IssuanceRow extends IssuanceCount {
  /** YYYY-MM-DD (daily) or YYYY-MM (monthly). */
  period: string;
  /** Six-digit municipality code, or 'total' for all municipalities in the scope. */
  municipalityCode: string;
}

export interface IssuanceStats {
  from: string;
  to: string;
  /** null: every municipality; otherwise the one municipality counted. */
  municipalityCode: string | null;
  daily: IssuanceRow[];
  monthly: IssuanceRow[];
  /** Per municipality over the whole period. */
  byMunicipality: IssuanceRow[];
  total: IssuanceCount;
  capacity: number;
  /** Counter issuances from the start up to `to` (inclusive). */
  cumulative: number;
  /** cumulative / capacity, 0..1 (6 decimals). */
  utilisation: number;
}

export class StatsInputError extends Error {
  override name = 'StatsInputError';
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

const zero = (): IssuanceCount => ({ sign: 0, auth: 0, total: 0, renewals: 0 });

function add(c: IssuanceCount, kind: string, renewal: number, n: number): void {
  if (kind === 'sign') c.sign += n;
  else c.auth += n;
  c.total += n;
  if (renewal) c.renewals += n;
}

/** Counts for `from`..`to` (inclusive JST dates), optionally for one municipality. At most 366 days. */
export async function issuanceStats(
  store: Store,
  opts: { from: string; to: string; municipalityCode?: string | null; capacity: number },
): Promise<IssuanceStats> {
  const { from, to } = opts;
  if (!DATE.test(from) || !DATE.test(to) || Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to)))
    throw new StatsInputError('from and to must be dates YYYY-MM-DD');
  if (from > to) throw new StatsInputError('from must not be after to');
  if (Date.parse(to) - Date.parse(from) > 366 * 86_400_000)
    throw new StatsInputError('at most 366 days at a time');
  const muni = opts.municipalityCode ?? null;

  let q = store.db
    .selectFrom('counter_issuances')
    .select((eb) => [
      'day',
      'municipality_code',
      'kind',
      'renewal',
      eb.fn.countAll<number | string>().as('n'),
    ])
    .where('day', '>=', from)
    .where('day', '<=', to)
    .groupBy(['day', 'municipality_code', 'kind', 'renewal'])
    .orderBy('day')
    .orderBy('municipality_code');
  if (muni) q = q.where('municipality_code', '=', muni);
  const rows = await q.execute();

  let c = store.db
    .selectFrom('counter_issuances')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('day', '<=', to);
  if (muni) c = c.where('municipality_code', '=', muni);
  const cumulative = Number((await c.executeTakeFirstOrThrow()).n);

  const daily = new Map<string, IssuanceRow>();
  const monthly = new Map<string, IssuanceRow>();
  const byMuni = new Map<string, IssuanceRow>();
  const total = zero();
  const bump = (
    map: Map<string, IssuanceRow>,
    period: string,
    code: string,
    kind: string,
    renewal: number,
    n: number,
  ) => {
    const key = `${period}|${code}`;
    let row = map.get(key);
    if (!row) {
      row = { period, municipalityCode: code, ...zero() };
      map.set(key, row);
    }
    add(row, kind, renewal, n);
  };
  for (const r of rows) {
    const n = Number(r.n);
    const month = r.day.slice(0, 7);
    for (const code of [r.municipality_code, 'total']) {
      bump(daily, r.day, code, r.kind, r.renewal, n);
      bump(monthly, month, code, r.kind, r.renewal, n);
    }
    bump(byMuni, `${from}..${to}`, r.municipality_code, r.kind, r.renewal, n);
    add(total, r.kind, r.renewal, n);
  }
  const sorted = (m: Map<string, IssuanceRow>) =>
    [...m.values()].sort(
      (a, b) =>
        a.period.localeCompare(b.period) ||
        (a.municipalityCode === 'total' ? 1 : b.municipalityCode === 'total' ? -1 : 0) ||
        a.municipalityCode.localeCompare(b.municipalityCode),
    );
  return {
    from,
    to,
    municipalityCode: muni,
    daily: sorted(daily),
    monthly: sorted(monthly),
    byMunicipality: sorted(byMuni),
    total,
    capacity: opts.capacity,
    cumulative,
    utilisation: Math.round((cumulative / opts.capacity) * 1e6) / 1e6,
  };
}

/**
 * CSV (RFC 4180, CRLF): one line per daily and monthly row, per municipality and 'total', then a summary
 * line with the capacity. Columns: granularity,period,municipality_code,sign,auth,total,renewals.
 */
export function issuanceStatsCsv(s: IssuanceStats): string {
  const lines = ['granularity,period,municipality_code,sign,auth,total,renewals'];
  for (const [g, rows] of [
    ['day', s.daily],
    ['month', s.monthly],
  ] as const)
    for (const r of rows)
      lines.push([g, r.period, r.municipalityCode, r.sign, r.auth, r.total, r.renewals].join(','));
  lines.push(
    [
      'period',
      `${s.from}..${s.to}`,
      'total',
      s.total.sign,
      s.total.auth,
      s.total.total,
      s.total.renewals,
    ].join(','),
  );
  lines.push('');
  lines.push('capacity,cumulative,utilisation');
  lines.push([s.capacity, s.cumulative, s.utilisation].join(','));
  return `${lines.join('\r\n')}\r\n`;
}
