// Issuance statistics (supervisors: their municipality; operators: any or all): per day and month, per
// municipality and in total, against the design capacity; charts with data tables, JSON and CSV.

import { type MouseEvent, useCallback, useEffect, useState } from 'react';
import {
  type Api,
  ApiError,
  type IssuanceRow,
  type IssuanceStats,
  jstToday,
  type Principal,
  saveBlob,
  statsPath,
} from './api.ts';
import { AUTH_COLOUR, type Bar, BarChart, CapacityGauge, SIGN_COLOUR } from './Chart.tsx';
import { ClientError, Dl, ErrorAlert, Fact, FocusHeading, SubmitButton, TextField } from './components.tsx';
import { useI18n } from './i18n.tsx';

const DAY_MS = 86_400_000;

function daysOf(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += DAY_MS)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

function monthsOf(from: string, to: string): string[] {
  const out: string[] = [];
  let [y, mo] = from.slice(0, 7).split('-').map(Number) as [number, number];
  const end = to.slice(0, 7);
  for (;;) {
    const m = `${y}-${String(mo).padStart(2, '0')}`;
    if (m > end) break;
    out.push(m);
    mo++;
    if (mo > 12) {
      mo = 1;
      y++;
    }
  }
  return out;
}

function barsOf(rows: IssuanceRow[], periods: string[], short: (p: string) => string): Bar[] {
  const total = new Map(rows.filter((r) => r.municipalityCode === 'total').map((r) => [r.period, r]));
  return periods.map((p) => ({
    label: p,
    short: short(p),
    values: [total.get(p)?.sign ?? 0, total.get(p)?.auth ?? 0],
  }));
}

export function Stats({ api, principal }: { api: Api; principal: Principal }) {
  const i = useI18n();
  const { t } = i;
  const today = jstToday();
  const [from, setFrom] = useState(`${today.slice(0, 8)}01`);
  const [to, setTo] = useState(today);
  const [municipality, setMunicipality] = useState('');
  const [stats, setStats] = useState<IssuanceStats | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const operator = principal.role === 'operator';
  const query = { from, to, municipality: operator ? municipality.trim() || undefined : undefined };

  const load = useCallback(
    async (q: { from: string; to: string; municipality?: string }) => {
      setBusy(true);
      setError(null);
      try {
        setStats(await api.stats(q));
      } catch (e) {
        setError(e instanceof ApiError && e.status === 403 ? new ClientError(t('statsForbidden')) : e);
        setStats(null);
      } finally {
        setBusy(false);
      }
    },
    [api, t],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: load the default period once
  useEffect(() => {
    void load(query);
  }, [load]);

  const download = (format: 'json' | 'csv') => async (e: MouseEvent<HTMLAnchorElement>) => {
    e.preventDefault();
    if (!stats) return;
    try {
      const q = { from: stats.from, to: stats.to, municipality: stats.municipalityCode ?? undefined };
      const blob = await api.text(statsPath(q, format), format === 'csv' ? 'text/csv' : 'application/json');
      saveBlob(blob, `issuance-${stats.from}-${stats.to}.${format}`);
    } catch (err) {
      setError(err);
    }
  };

  const percent = (r: number) =>
    new Intl.NumberFormat(i.lang === 'ja' ? 'ja-JP' : 'en-GB', {
      style: 'percent',
      maximumSignificantDigits: 3,
    }).format(r);

  const days = stats ? daysOf(stats.from, stats.to) : [];
  const months = stats ? monthsOf(stats.from, stats.to) : [];
  const muniLabel = (code: string) => (code === 'total' ? t('allMunicipalities') : code);

  return (
    <section aria-labelledby="stats-title" className="card">
      <FocusHeading level={1} id="stats-title">
        {t('statsTitle')}
      </FocusHeading>
      <p>{t('statsIntro')}</p>
      <form
        className="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          void load(query);
        }}
      >
        <div className="row">
          <TextField label={t('from')} type="date" value={from} onChange={setFrom} required />
          <TextField label={t('to')} type="date" value={to} onChange={setTo} required />
          {operator ? (
            <TextField
              label={t('municipalityCode')}
              hint={t('municipalityAll')}
              value={municipality}
              onChange={setMunicipality}
              inputMode="numeric"
              maxLength={6}
            />
          ) : null}
        </div>
        <SubmitButton busy={busy}>{t('show')}</SubmitButton>
      </form>
      <ErrorAlert error={error} />

      {stats ? (
        <>
          <section aria-labelledby="summary-title">
            <h2 id="summary-title">
              {t('summary')}
              {': '}
              {stats.municipalityCode
                ? t('municipality', { code: stats.municipalityCode })
                : t('allMunicipalities')}
              {` (${stats.from} – ${stats.to})`}
            </h2>
            <Dl>
              <Fact
                label={t('periodTotal')}
              >{`${i.number(stats.total.total)} (${t('legendSign')} ${i.number(stats.total.sign)} / ${t('legendAuth')} ${i.number(stats.total.auth)}; ${t('ofWhichRenewals', { n: i.number(stats.total.renewals) })})`}</Fact>
              <Fact label={t('cumulative')}>{i.number(stats.cumulative)}</Fact>
              <Fact label={t('capacity')}>{i.number(stats.capacity)}</Fact>
              <Fact label={t('utilisation')}>{percent(stats.cumulative / stats.capacity)}</Fact>
            </Dl>
            <CapacityGauge
              title={t('capacityChart')}
              desc={t('capacityDesc', {
                cumulative: i.number(stats.cumulative),
                capacity: i.number(stats.capacity),
                percent: percent(stats.cumulative / stats.capacity),
              })}
              ratio={stats.cumulative / stats.capacity}
            />
          </section>

          {days.length <= 62 ? (
            <section aria-labelledby="daily-title">
              <h2 id="daily-title">{t('dailyChart')}</h2>
              <BarChart
                title={t('dailyChart')}
                desc={t('chartDesc', {
                  from: stats.from,
                  to: stats.to,
                  unit: t('unitDay'),
                  total: i.number(stats.total.total),
                })}
                bars={barsOf(stats.daily, days, (d) => String(Number(d.slice(8))))}
                series={[
                  { label: t('legendSign'), colour: SIGN_COLOUR },
                  { label: t('legendAuth'), colour: AUTH_COLOUR },
                ]}
                formatNumber={i.number}
              />
            </section>
          ) : null}
          {months.length > 1 ? (
            <section aria-labelledby="monthly-title">
              <h2 id="monthly-title">{t('monthlyChart')}</h2>
              <BarChart
                title={t('monthlyChart')}
                desc={t('chartDesc', {
                  from: stats.from,
                  to: stats.to,
                  unit: t('unitMonth'),
                  total: i.number(stats.total.total),
                })}
                bars={barsOf(stats.monthly, months, (m) => m)}
                series={[
                  { label: t('legendSign'), colour: SIGN_COLOUR },
                  { label: t('legendAuth'), colour: AUTH_COLOUR },
                ]}
                formatNumber={i.number}
              />
            </section>
          ) : null}

          <section aria-labelledby="tables-title">
            <h2 id="tables-title">{t('dataTable')}</h2>
            {stats.total.total === 0 ? <p>{t('noIssuance')}</p> : null}
            <StatsTable caption={t('dailyTable')} rows={stats.daily} muniLabel={muniLabel} />
            <StatsTable caption={t('monthlyTable')} rows={stats.monthly} muniLabel={muniLabel} />
            <StatsTable
              caption={t('byMunicipalityTable')}
              rows={stats.byMunicipality}
              muniLabel={muniLabel}
            />
          </section>

          <section aria-labelledby="downloads-title">
            <h2 id="downloads-title">{t('downloads')}</h2>
            <ul className="downloads">
              <li>
                <a href={statsPath(query, 'json')} onClick={download('json')}>
                  {t('downloadJson')}
                </a>
              </li>
              <li>
                <a href={statsPath(query, 'csv')} onClick={download('csv')}>
                  {t('downloadCsv')}
                </a>
              </li>
            </ul>
          </section>
        </>
      ) : null}
    </section>
  );
}

function StatsTable({
  caption,
  rows,
  muniLabel,
}: {
  caption: string;
  rows: IssuanceRow[];
  muniLabel: (code: string) => string;
}) {
  const i = useI18n();
  const { t } = i;
  if (rows.length === 0) return null;
  return (
    <div className="table-scroll">
      <table className="data numbers">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{t('period')}</th>
            <th scope="col">{t('municipalityCode')}</th>
            <th scope="col">{t('legendSign')}</th>
            <th scope="col">{t('legendAuth')}</th>
            <th scope="col">{t('total')}</th>
            <th scope="col">{t('renewals')}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr
              key={`${r.period}|${r.municipalityCode}`}
              className={r.municipalityCode === 'total' ? 'total' : ''}
            >
              <th scope="row">{r.period}</th>
              <td>{muniLabel(r.municipalityCode)}</td>
              <td>{i.number(r.sign)}</td>
              <td>{i.number(r.auth)}</td>
              <td>{i.number(r.total)}</td>
              <td>{i.number(r.renewals)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
