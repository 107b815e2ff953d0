// The counter: find a resident, see their record and certificates, and start a procedure (issuance,
// renewal, PIN reset) or take a loss report.

import { useCallback, useEffect, useState } from 'react';
import type {
  Api,
  CaseType,
  CounterCase,
  CounterConfig,
  Principal,
  Resident,
  ResidentRecord,
} from './api.ts';
import { CaseFlow } from './CaseFlow.tsx';
import {
  ClientError,
  Dl,
  ErrorAlert,
  Fact,
  FocusHeading,
  Status,
  SubmitButton,
  TextField,
} from './components.tsx';
import { useI18n } from './i18n.tsx';

interface SearchState {
  name: string;
  birth: string;
  results: Resident[] | null;
}

export function Counter({ api, principal }: { api: Api; principal: Principal }) {
  const { t } = useI18n();
  const [config, setConfig] = useState<CounterConfig | null>(null);
  const [search, setSearch] = useState<SearchState>({ name: '', birth: '', results: null });
  const [residentId, setResidentId] = useState<string | null>(null);
  const [current, setCurrent] = useState<CounterCase | null>(null);

  useEffect(() => {
    api
      .config()
      .then(setConfig)
      .catch(() => undefined);
  }, [api]);

  if (principal.role === 'operator') return <p>{t('operatorNoResidents')}</p>;
  if (current)
    return (
      <CaseFlow
        api={api}
        principal={principal}
        config={config}
        initial={current}
        onBack={() => setCurrent(null)}
        onNext={() => {
          setCurrent(null);
          setResidentId(null);
          setSearch({ name: '', birth: '', results: null });
        }}
      />
    );
  if (residentId)
    return (
      <ResidentView
        api={api}
        residentId={residentId}
        onBack={() => setResidentId(null)}
        onCase={setCurrent}
      />
    );
  return <ResidentSearch api={api} state={search} setState={setSearch} onSelect={setResidentId} />;
}

function ResidentSearch({
  api,
  state,
  setState,
  onSelect,
}: {
  api: Api;
  state: SearchState;
  setState: (s: SearchState) => void;
  onSelect: (id: string) => void;
}) {
  const i = useI18n();
  const { t } = i;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  return (
    <section aria-labelledby="search-title" className="card">
      <FocusHeading level={1} id="search-title">
        {t('searchTitle')}
      </FocusHeading>
      <p>{t('searchIntro')}</p>
      <form
        className="search-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          const name = state.name.trim();
          if (!name && !state.birth) {
            setError(new ClientError(t('searchNeedsInput')));
            return;
          }
          setBusy(true);
          try {
            const r = await api.searchResidents({ name: name || undefined, birth: state.birth || undefined });
            setState({ ...state, results: r.residents });
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <div className="row">
          <TextField
            label={t('name')}
            hint={t('nameHint')}
            value={state.name}
            onChange={(name) => setState({ ...state, name })}
            maxLength={100}
          />
          <TextField
            label={t('dateOfBirth')}
            type="date"
            value={state.birth}
            onChange={(birth) => setState({ ...state, birth })}
          />
        </div>
        <ErrorAlert error={error} />
        <SubmitButton busy={busy}>{t('search')}</SubmitButton>
      </form>
      <Status>
        {state.results
          ? state.results.length
            ? t('resultsCount', { n: state.results.length })
            : t('noResults')
          : null}
      </Status>
      {state.results?.length ? (
        <table className="data">
          <caption>{t('results')}</caption>
          <thead>
            <tr>
              <th scope="col">{t('name')}</th>
              <th scope="col">{t('nameKana')}</th>
              <th scope="col">{t('dateOfBirth')}</th>
              <th scope="col">{t('address')}</th>
              <th scope="col">{t('residentId')}</th>
              <th scope="col">
                <span className="visually-hidden">{t('select')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {state.results.map((r) => (
              <tr key={r.residentId}>
                <th scope="row" lang="ja">
                  {r.name}
                </th>
                <td lang="ja">{r.nameKana ?? ''}</td>
                <td>{r.dateOfBirth ? i.date(r.dateOfBirth) : ''}</td>
                <td lang="ja">{r.address}</td>
                <td className="mono">{r.residentId}</td>
                <td>
                  <button
                    type="button"
                    aria-label={t('selectResident', { name: r.name })}
                    onClick={() => onSelect(r.residentId)}
                  >
                    {t('select')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function ResidentView({
  api,
  residentId,
  onBack,
  onCase,
}: {
  api: Api;
  residentId: string;
  onBack: () => void;
  onCase: (c: CounterCase) => void;
}) {
  const i = useI18n();
  const { t, tk } = i;
  const [record, setRecord] = useState<ResidentRecord | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<CaseType | null>(null);
  const [loss, setLoss] = useState(false);
  const [lossResult, setLossResult] = useState<string[] | null>(null);

  const reload = useCallback(async () => {
    try {
      setRecord(await api.resident(residentId));
    } catch (e) {
      setError(e);
    }
  }, [api, residentId]);
  useEffect(() => {
    void reload();
  }, [reload]);

  const start = async (type: CaseType) => {
    setBusy(type);
    setError(null);
    setLossResult(null);
    try {
      onCase(await api.openCase(residentId, type));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  const r = record?.resident;
  return (
    <section aria-labelledby="resident-title" className="card">
      <p>
        <button type="button" className="link-button" onClick={onBack}>
          ← {t('backToSearch')}
        </button>
      </p>
      <FocusHeading level={1} id="resident-title">
        {t('residentTitle')}
        {r ? (
          <>
            {': '}
            <span lang="ja">{r.name}</span>
          </>
        ) : null}
      </FocusHeading>
      {r ? (
        <Dl>
          <Fact label={t('name')}>
            <span lang="ja">{r.name}</span>
          </Fact>
          <Fact label={t('nameKana')}>
            <span lang="ja">{r.nameKana ?? ''}</span>
          </Fact>
          <Fact label={t('dateOfBirth')}>{r.dateOfBirth ? i.date(r.dateOfBirth) : ''}</Fact>
          <Fact label={t('sex')}>{tk('sex_', r.sex)}</Fact>
          <Fact label={t('address')}>
            <span lang="ja">{r.address}</span>
          </Fact>
          <Fact label={t('residentId')}>
            <span className="mono">{r.residentId}</span>
          </Fact>
          <Fact label={t('municipalityCode')}>
            <span className="mono">{r.municipalityCode}</span>
          </Fact>
          <Fact label={t('status')}>{tk('status_', r.status)}</Fact>
          <Fact label={t('cardId')}>
            <span className="mono">{record?.cardId ?? t('none')}</span>
          </Fact>
        </Dl>
      ) : null}

      {record ? (
        <section aria-labelledby="certs-title">
          <h2 id="certs-title">{t('certificates')}</h2>
          {record.certificates.length === 0 ? (
            <p>{t('noCertificates')}</p>
          ) : (
            <div className="table-scroll">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">{t('kind')}</th>
                    <th scope="col">{t('serial')}</th>
                    <th scope="col">{t('certStatus')}</th>
                    <th scope="col">{t('notAfter')}</th>
                    <th scope="col">{t('note')}</th>
                  </tr>
                </thead>
                <tbody>
                  {record.certificates.map((c) => (
                    <tr key={c.serial}>
                      <th scope="row">{tk('kind_', c.kind)}</th>
                      <td className="mono serial">{c.serial}</td>
                      <td>
                        <span className={`badge badge-${c.status}`}>{tk('cert_', c.status)}</span>
                      </td>
                      <td>{i.date(c.notAfter)}</td>
                      <td>{c.message ? c.message[i.lang] : ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      ) : null}

      <section aria-labelledby="actions-title">
        <h2 id="actions-title">{t('actions')}</h2>
        <div className="actions">
          {(['issuance', 'renewal', 'pin-reset'] as const).map((type) => (
            <button
              key={type}
              type="button"
              className={type === 'issuance' ? 'primary' : ''}
              disabled={busy !== null}
              onClick={() => start(type)}
            >
              {busy === type
                ? t('busy')
                : t(
                    type === 'issuance'
                      ? 'startIssuance'
                      : type === 'renewal'
                        ? 'startRenewal'
                        : 'startPinReset',
                  )}
            </button>
          ))}
          <button
            type="button"
            className="danger"
            aria-expanded={loss}
            aria-controls="loss-report"
            onClick={() => {
              setLoss(!loss);
              setLossResult(null);
            }}
          >
            {t('startLossReport')}
          </button>
        </div>
        <ErrorAlert error={error} />
      </section>

      {loss ? (
        <LossReport
          api={api}
          residentId={residentId}
          onDone={async (revoked) => {
            setLoss(false);
            setLossResult(revoked);
            await reload();
          }}
        />
      ) : null}
      <Status>
        {lossResult ? (
          lossResult.length ? (
            <>
              <p>{t('lossDone', { n: lossResult.length })}</p>
              <p>
                {t('revokedSerials')}:{' '}
                {lossResult.map((s) => (
                  <span key={s} className="mono serial">
                    {s}{' '}
                  </span>
                ))}
              </p>
            </>
          ) : (
            t('lossNothing')
          )
        ) : null}
      </Status>
    </section>
  );
}

function LossReport({
  api,
  residentId,
  onDone,
}: {
  api: Api;
  residentId: string;
  onDone: (revoked: string[]) => void;
}) {
  const { t } = useI18n();
  const [channel, setChannel] = useState<'phone' | 'counter'>('phone');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <section id="loss-report" aria-labelledby="loss-title" className="card inset danger-zone">
      <FocusHeading level={2} id="loss-title">
        {t('lossTitle')}
      </FocusHeading>
      <p>{t('lossIntro')}</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            onDone((await api.reportLoss(residentId, channel)).revoked);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <fieldset>
          <legend>{t('channel')}</legend>
          {(['phone', 'counter'] as const).map((c) => (
            <label key={c} className="choice">
              <input
                type="radio"
                name="channel"
                value={c}
                checked={channel === c}
                onChange={() => setChannel(c)}
              />
              {t(c === 'phone' ? 'channel_phone' : 'channel_counter')}
            </label>
          ))}
        </fieldset>
        <ErrorAlert error={error} />
        <button type="submit" className="danger" disabled={busy}>
          {busy ? t('busy') : t('confirmLoss')}
        </button>
      </form>
    </section>
  );
}
