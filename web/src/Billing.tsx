// A verifier's usage by day and kind, and its monthly statement: the same panels in the verifier console
// (its own, with its API key) and on the operators' page of one verifier (with a staff session).

import { type MouseEvent, type ReactNode, useCallback, useEffect, useState } from 'react';
import { type Api, jstThisMonth, saveBlob } from './api.ts';
import { type Bar, BarChart, SERIES_COLOURS } from './Chart.tsx';
import { Data, Dl, ErrorAlert, Fact, FocusHeading, SubmitButton, TextField } from './components.tsx';
import { useI18n } from './i18n.tsx';
import { type BillingPaths, type Statement, USAGE_KINDS, type VerifierUsage } from './verifier-api.ts';

/** Level 1 takes the focus (a view of its own); lower levels are parts of a page. */
export function Heading({ level, id, children }: { level: 1 | 2 | 3; id: string; children: ReactNode }) {
  if (level === 1)
    return (
      <FocusHeading level={1} id={id}>
        {children}
      </FocusHeading>
    );
  const Tag = `h${level}` as const;
  return <Tag id={id}>{children}</Tag>;
}

function daysOfMonth(month: string): string[] {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const n = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return Array.from({ length: n }, (_, k) => `${month}-${String(k + 1).padStart(2, '0')}`);
}

function MonthForm({
  month,
  setMonth,
  busy,
  onShow,
}: {
  month: string;
  setMonth: (m: string) => void;
  busy: boolean;
  onShow: () => void;
}) {
  const { t } = useI18n();
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        onShow();
      }}
    >
      <TextField label={t('month')} type="month" value={month} onChange={setMonth} required />
      <SubmitButton busy={busy}>{t('show')}</SubmitButton>
    </form>
  );
}

/** Loads something for a month (default this month in Japan), again when asked. */
function useMonthly<T>(load: (month: string) => Promise<T>) {
  const [month, setMonth] = useState(jstThisMonth);
  const [data, setData] = useState<T | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const show = useCallback(
    async (m: string) => {
      if (!/^\d{4}-\d{2}$/.test(m)) return;
      setBusy(true);
      setError(null);
      try {
        setData(await load(m));
      } catch (e) {
        setError(e);
        setData(null);
      } finally {
        setBusy(false);
      }
    },
    [load],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: this month once; later months on request
  useEffect(() => {
    void show(month);
  }, [show]);
  return { month, setMonth, data, busy, error, setError, show: () => show(month) };
}

export function UsagePanel({ api, paths, level }: { api: Api; paths: BillingPaths; level: 1 | 2 | 3 }) {
  const i = useI18n();
  const { t } = i;
  const load = useCallback((m: string) => api.call<VerifierUsage>('GET', paths.usage(m)), [api, paths]);
  const { month, setMonth, data: usage, busy, error, show } = useMonthly(load);
  const kinds = USAGE_KINDS.map((k) => t(`usage_${k}`));
  const byDay = new Map(usage?.days.map((d) => [d.day, d]));
  const bars: Bar[] = usage
    ? daysOfMonth(usage.month).map((day) => {
        const d = byDay.get(day);
        return {
          label: day,
          short: String(Number(day.slice(8))),
          values: USAGE_KINDS.map((k) => d?.[k] ?? 0),
        };
      })
    : [];
  const sum = (c: { ocsp: number; crl: number; verification: number }) => c.ocsp + c.crl + c.verification;

  return (
    <section aria-labelledby="usage-title" className="panel">
      <Heading level={level} id="usage-title">
        {t('usageTitle')}
      </Heading>
      <p>{t('usageIntro')}</p>
      <MonthForm month={month} setMonth={setMonth} busy={busy} onShow={show} />
      <ErrorAlert error={error} />
      {usage ? (
        <>
          <Dl>
            {USAGE_KINDS.map((k, n) => (
              <Fact key={k} label={`${kinds[n]} (${i.month(usage.month)})`}>
                {i.number(usage.total[k])}
              </Fact>
            ))}
          </Dl>
          {sum(usage.total) > 0 ? (
            <BarChart
              title={`${t('usageChart')} (${i.month(usage.month)})`}
              desc={t('usageChartDesc', { month: i.month(usage.month), total: i.number(sum(usage.total)) })}
              bars={bars}
              series={kinds.map((label, n) => ({ label, colour: SERIES_COLOURS[n]! }))}
              formatNumber={i.number}
            />
          ) : null}
          {usage.days.length === 0 ? (
            <p>{t('noUsage')}</p>
          ) : (
            <div className="table-scroll">
              <table className="data amounts">
                <caption>{`${t('usageTable')} (${i.month(usage.month)})`}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('day')}</th>
                    {kinds.map((k) => (
                      <th key={k} scope="col">
                        {k}
                      </th>
                    ))}
                    <th scope="col">{t('total')}</th>
                  </tr>
                </thead>
                <tbody>
                  {usage.days.map((d) => (
                    <tr key={d.day}>
                      <th scope="row">{i.date(d.day)}</th>
                      {USAGE_KINDS.map((k) => (
                        <td key={k}>{i.number(d[k])}</td>
                      ))}
                      <td>{i.number(sum(d))}</td>
                    </tr>
                  ))}
                </tbody>
                <tfoot>
                  <tr className="total">
                    <th scope="row">{t('monthTotal')}</th>
                    {USAGE_KINDS.map((k) => (
                      <td key={k}>{i.number(usage.total[k])}</td>
                    ))}
                    <td>{i.number(sum(usage.total))}</td>
                  </tr>
                </tfoot>
              </table>
            </div>
          )}
        </>
      ) : null}
    </section>
  );
}

export function StatementPanel({ api, paths, level }: { api: Api; paths: BillingPaths; level: 1 | 2 | 3 }) {
  const i = useI18n();
  const { t } = i;
  const load = useCallback((m: string) => api.call<Statement>('GET', paths.statement(m)), [api, paths]);
  const { month, setMonth, data: s, busy, error, setError, show } = useMonthly(load);

  const download = (format: 'json' | 'csv') => async (e: MouseEvent<HTMLAnchorElement>) => {
    e.preventDefault();
    if (!s) return;
    try {
      const blob = await api.text(
        paths.statement(s.month, format),
        format === 'csv' ? 'text/csv' : 'application/json',
      );
      saveBlob(blob, `statement-${s.verifier.id}-${s.month}.${format}`);
    } catch (err) {
      setError(err);
    }
  };
  const sub = level === 1 ? 2 : 4;
  const SubHeading = `h${sub}` as 'h2' | 'h4';

  return (
    <section aria-labelledby="statement-title" className="panel">
      <Heading level={level} id="statement-title">
        {t('statementTitle')}
      </Heading>
      <p>{t('statementIntro')}</p>
      <MonthForm month={month} setMonth={setMonth} busy={busy} onShow={show} />
      <ErrorAlert error={error} />
      {s ? (
        <section aria-labelledby="statement-month" className="statement">
          <SubHeading id="statement-month">{t('statementFor', { month: i.month(s.month) })}</SubHeading>
          <Dl>
            <Fact label={t('verifierName')}>
              <Data>{s.verifier.name}</Data>
              {` (ID ${s.verifier.id})`}
            </Fact>
            <Fact label={t('billingPeriod')}>
              {t('contractRange', { from: i.date(s.period.from), to: i.date(s.period.to) })}
            </Fact>
            <Fact label={t('statementState')}>{s.final ? t('final') : t('provisional')}</Fact>
            <Fact label={t('generatedAt')}>{i.dateTime(s.generatedAt)}</Fact>
          </Dl>
          <div className="table-scroll">
            <table className="data amounts statement-lines">
              <caption className="visually-hidden">{t('statementFor', { month: i.month(s.month) })}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('item')}</th>
                  <th scope="col">{t('quantity')}</th>
                  <th scope="col">{t('unitPrice')}</th>
                  <th scope="col">{t('amount')}</th>
                </tr>
              </thead>
              <tbody>
                {s.lines.map((l) => (
                  <tr key={l.item}>
                    <th scope="row">{l.item === 'base-fee' ? t('baseFee') : t(`usage_${l.item}`)}</th>
                    <td>{i.number(l.quantity)}</td>
                    <td>{i.yen(l.unitPriceYen)}</td>
                    <td>{i.yen(l.amountYen)}</td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr className="total">
                  <th scope="row">{t('totalAmount')}</th>
                  <td />
                  <td />
                  <td>{i.yen(s.totalYen)}</td>
                </tr>
              </tfoot>
            </table>
          </div>
          <SubHeading>{t('downloads')}</SubHeading>
          <ul className="downloads">
            <li>
              <a href={paths.statement(s.month, 'json')} onClick={download('json')}>
                {t('downloadJson')}
              </a>
            </li>
            <li>
              <a href={paths.statement(s.month, 'csv')} onClick={download('csv')}>
                {t('downloadCsv')}
              </a>
            </li>
          </ul>
        </section>
      ) : null}
    </section>
  );
}
