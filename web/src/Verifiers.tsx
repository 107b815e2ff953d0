// The operators' pages of the verifier registry (staff session of an operator; the API checks the role):
// the list and registration, one verifier (status with confirmation and reason, contract, API keys shown
// once, client certificates, history, usage and statements), and every verifier's usage in a month.

import {
  type MouseEvent,
  type ReactNode,
  useCallback,
  useEffect,
  useId,
  useMemo,
  useRef,
  useState,
} from 'react';
import { type Api, jstThisMonth, jstToday, saveBlob } from './api.ts';
import { StatementPanel, UsagePanel } from './Billing.tsx';
import {
  Badge,
  ClientError,
  Data,
  Dl,
  ErrorAlert,
  Fact,
  FocusHeading,
  SelectField,
  Status,
  SubmitButton,
  TextAreaField,
  TextField,
} from './components.tsx';
import { type I18n, useI18n } from './i18n.tsx';
import {
  type ApiKeyInfo,
  type CertificateInfo,
  type CredentialState,
  type IssuedApiKey,
  operatorBilling,
  overviewPath,
  type UsageOverview,
  VERIFIER_CATEGORIES,
  VERIFIER_STATUSES,
  type Verifier,
  VerifierAdmin,
  type VerifierCategory,
  type VerifierDetails,
  type VerifierStatus,
} from './verifier-api.ts';

export function StatusBadge({ status }: { status: VerifierStatus }) {
  const { t } = useI18n();
  return (
    <Badge tone={status === 'active' ? 'ok' : status === 'suspended' ? 'warn' : 'muted'}>
      {t(`vstatus_${status}`)}
    </Badge>
  );
}

export function CredentialBadge({ state }: { state: CredentialState }) {
  const { t } = useI18n();
  return (
    <Badge tone={state === 'valid' ? 'ok' : state === 'revoked' ? 'bad' : 'muted'}>
      {t(`cert_${state}`)}
    </Badge>
  );
}

const categoryLabel = (i: I18n, c: string) => i.tk('category_', c);

/** Who did something: staff:3, api:operator-token, cli:root — as recorded. */
function Actor({ who }: { who: string }) {
  return <span className="mono">{who}</span>;
}

// ---------------------------------------------------------------------------------------------------
// The list and registration

export function VerifierList({ api, onOpen }: { api: Api; onOpen: (id: number) => void }) {
  const i = useI18n();
  const { t } = i;
  const admin = useMemo(() => new VerifierAdmin(api), [api]);
  const [filter, setFilter] = useState<VerifierStatus | 'all'>('all');
  const [list, setList] = useState<Verifier[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let live = true;
    admin
      .list(filter === 'all' ? undefined : filter)
      .then((r) => live && setList(r.verifiers))
      .catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [admin, filter]);

  return (
    <>
      <section aria-labelledby="verifiers-title" className="card">
        <FocusHeading level={1} id="verifiers-title">
          {t('verifiersTitle')}
        </FocusHeading>
        <p>{t('verifiersIntro')}</p>
        <div className="inline-form">
          <SelectField
            label={t('filterStatus')}
            value={filter}
            onChange={setFilter}
            options={[
              { value: 'all', label: t('allStatuses') },
              ...VERIFIER_STATUSES.map((s) => ({ value: s, label: t(`vstatus_${s}`) })),
            ]}
          />
        </div>
        <ErrorAlert error={error} />
        {list && list.length === 0 ? <p>{t('noVerifiers')}</p> : null}
        {list?.length ? (
          <div className="table-scroll">
            <table className="data">
              <caption>{`${t('verifierList')} (${t('verifierCount', { n: list.length })})`}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('verifierId')}</th>
                  <th scope="col">{t('verifierName')}</th>
                  <th scope="col">{t('category')}</th>
                  <th scope="col">{t('status')}</th>
                  <th scope="col">{t('contract')}</th>
                  <th scope="col">
                    <span className="visually-hidden">{t('openDetails')}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((v) => (
                  <tr key={v.id}>
                    <td className="mono">{v.id}</td>
                    <th scope="row">
                      <Data>{v.name}</Data>
                    </th>
                    <td>{categoryLabel(i, v.category)}</td>
                    <td>
                      <StatusBadge status={v.status} />
                    </td>
                    <td>{t('contractRange', { from: i.date(v.contractFrom), to: i.date(v.contractTo) })}</td>
                    <td>
                      <button
                        type="button"
                        aria-label={t('detailsOf', { name: v.name })}
                        onClick={() => onOpen(v.id)}
                      >
                        {t('openDetails')}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </section>
      <RegisterVerifier admin={admin} onRegistered={(v) => onOpen(v.id)} />
    </>
  );
}

function RegisterVerifier({
  admin,
  onRegistered,
}: {
  admin: VerifierAdmin;
  onRegistered: (v: Verifier) => void;
}) {
  const i = useI18n();
  const { t } = i;
  const today = jstToday();
  const [name, setName] = useState('');
  const [category, setCategory] = useState<VerifierCategory>('administrative-body');
  const [from, setFrom] = useState(today);
  const [to, setTo] = useState(`${Number(today.slice(0, 4)) + 1}-03-31`);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const legendId = useId();

  return (
    <section aria-labelledby="register-title" className="card">
      <h2 id="register-title">{t('registerTitle')}</h2>
      <p>{t('registerIntro')}</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          if (!name.trim()) return setError(new ClientError(t('nameRequired')));
          if (to < from) return setError(new ClientError(t('contractOrder')));
          setBusy(true);
          try {
            const v = await admin.register({
              name: name.trim(),
              category,
              contractFrom: from,
              contractTo: to,
            });
            onRegistered(v);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <TextField label={t('verifierName')} value={name} onChange={setName} required maxLength={200} />
        <fieldset aria-describedby={legendId}>
          <legend id={legendId}>{t('category')}</legend>
          {VERIFIER_CATEGORIES.map((c) => (
            <label key={c} className="choice">
              <input
                type="radio"
                name="category"
                value={c}
                checked={category === c}
                onChange={() => setCategory(c)}
              />
              {categoryLabel(i, c)}
            </label>
          ))}
        </fieldset>
        <div className="row">
          <TextField
            label={t('contractFrom')}
            type="date"
            value={from}
            onChange={setFrom}
            required
            hint={t('contractHint')}
          />
          <TextField
            label={t('contractTo')}
            type="date"
            value={to}
            onChange={setTo}
            required
            invalid={to < from}
          />
        </div>
        <ErrorAlert error={error} />
        <SubmitButton busy={busy}>{t('registerVerifier')}</SubmitButton>
      </form>
    </section>
  );
}

// ---------------------------------------------------------------------------------------------------
// One verifier

export function VerifierDetail({ api, id, onBack }: { api: Api; id: number; onBack: () => void }) {
  const i = useI18n();
  const { t } = i;
  const admin = useMemo(() => new VerifierAdmin(api), [api]);
  const billing = useMemo(() => operatorBilling(id), [id]);
  const [d, setD] = useState<VerifierDetails | null>(null);
  const [error, setError] = useState<unknown>(null);

  const reload = useCallback(async () => {
    try {
      setD(await admin.details(id));
    } catch (e) {
      setError(e);
    }
  }, [admin, id]);
  useEffect(() => {
    void reload();
  }, [reload]);

  const v = d?.verifier;
  return (
    <section aria-labelledby="verifier-title" className="card">
      <p>
        <button type="button" className="link-button" onClick={onBack}>
          ← {t('backToVerifiers')}
        </button>
      </p>
      <FocusHeading level={1} id="verifier-title">
        {t('verifierTitle')}
        {v ? (
          <>
            {': '}
            <Data>{v.name}</Data>
          </>
        ) : null}
      </FocusHeading>
      <ErrorAlert error={error} />
      {d && v ? (
        <>
          <Dl>
            <Fact label={t('verifierId')}>
              <span className="mono">{v.id}</span>
            </Fact>
            <Fact label={t('verifierName')}>
              <Data>{v.name}</Data>
            </Fact>
            <Fact label={t('category')}>{categoryLabel(i, v.category)}</Fact>
            <Fact label={t('status')}>
              <StatusBadge status={v.status} />
            </Fact>
            <Fact label={t('contract')}>
              {t('contractRange', { from: i.date(v.contractFrom), to: i.date(v.contractTo) })}
            </Fact>
            <Fact label={t('registeredBy')}>
              {t('byAt', { at: i.dateTime(v.createdAt), by: v.createdBy })}
            </Fact>
            <Fact label={t('statusSince')}>{i.dateTime(v.statusChangedAt)}</Fact>
          </Dl>
          <StandingSection admin={admin} verifier={v} onChanged={reload} />
          {v.status !== 'ended' ? <ContractSection admin={admin} verifier={v} onChanged={reload} /> : null}
          <KeysSection admin={admin} verifier={v} keys={d.apiKeys} onChanged={reload} />
          <CertificatesSection admin={admin} verifier={v} certificates={d.certificates} onChanged={reload} />
          <section aria-labelledby="history-title">
            <h2 id="history-title">{t('historyTitle')}</h2>
            <div className="table-scroll">
              <table className="data">
                <caption className="visually-hidden">{t('historyTitle')}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('when')}</th>
                    <th scope="col">{t('change')}</th>
                    <th scope="col">{t('reason')}</th>
                    <th scope="col">{t('actor')}</th>
                  </tr>
                </thead>
                <tbody>
                  {d.history.map((h) => (
                    <tr key={`${h.at}|${h.status}`}>
                      <td>{i.dateTime(h.at)}</td>
                      <td>
                        {h.previousStatus
                          ? `${t(`vstatus_${h.previousStatus}`)} → ${t(`vstatus_${h.status}`)}`
                          : `${t('registration')} → ${t(`vstatus_${h.status}`)}`}
                      </td>
                      <td>{h.reason ? <Data>{h.reason}</Data> : ''}</td>
                      <td>
                        <Actor who={h.actor} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
          <section aria-labelledby="billing-title">
            <h2 id="billing-title">{t('billingTitle')}</h2>
            <UsagePanel api={api} paths={billing} level={3} />
            <StatementPanel api={api} paths={billing} level={3} />
          </section>
        </>
      ) : null}
    </section>
  );
}

function StandingSection({
  admin,
  verifier: v,
  onChanged,
}: {
  admin: VerifierAdmin;
  verifier: Verifier;
  onChanged: () => Promise<void>;
}) {
  const { t } = useI18n();
  const [pending, setPending] = useState<VerifierStatus | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<VerifierStatus | null>(null);
  const targets: VerifierStatus[] =
    v.status === 'active' ? ['suspended', 'ended'] : v.status === 'suspended' ? ['active', 'ended'] : [];
  const label = (to: VerifierStatus) =>
    t(to === 'suspended' ? 'suspend' : to === 'active' ? 'reinstate' : 'end');
  const needsReason = pending === 'suspended' || pending === 'ended';

  return (
    <section aria-labelledby="standing-title">
      <h2 id="standing-title">{t('standingTitle')}</h2>
      {targets.length === 0 ? <p>{t('endedNote')}</p> : null}
      <div className="actions">
        {targets.map((to) => (
          <button
            key={to}
            type="button"
            className={to === 'active' ? 'primary' : 'danger'}
            aria-expanded={pending === to}
            aria-controls="standing-confirm"
            onClick={() => {
              setPending(pending === to ? null : to);
              setReason('');
              setError(null);
              setDone(null);
            }}
          >
            {label(to)}
          </button>
        ))}
      </div>
      {pending ? (
        <section id="standing-confirm" aria-labelledby="standing-confirm-title" className="card inset">
          <FocusHeading level={3} id="standing-confirm-title">
            {t(`confirm_${pending}`)}
          </FocusHeading>
          <p>{t(`effect_${pending}`)}</p>
          <form
            // The reason is checked below, with an announced sentence instead of the browser's bubble.
            noValidate
            onSubmit={async (e) => {
              e.preventDefault();
              setError(null);
              if (needsReason && !reason.trim()) return setError(new ClientError(t('reasonRequired')));
              setBusy(true);
              try {
                await admin.setStatus(v.id, pending, reason.trim() || undefined);
                setDone(pending);
                setPending(null);
                await onChanged();
              } catch (err) {
                setError(err);
              } finally {
                setBusy(false);
              }
            }}
          >
            <TextAreaField
              label={t('reason')}
              hint={t('reasonHint')}
              value={reason}
              onChange={setReason}
              required={needsReason}
              maxLength={500}
            />
            <ErrorAlert error={error} />
            <div className="actions">
              <button type="submit" className={pending === 'active' ? 'primary' : 'danger'} disabled={busy}>
                {busy ? t('busy') : t(`do_${pending}`)}
              </button>
              <button type="button" onClick={() => setPending(null)}>
                {t('cancel')}
              </button>
            </div>
          </form>
        </section>
      ) : null}
      <Status>{done ? t(`changed_${done}`) : null}</Status>
    </section>
  );
}

function ContractSection({
  admin,
  verifier: v,
  onChanged,
}: {
  admin: VerifierAdmin;
  verifier: Verifier;
  onChanged: () => Promise<void>;
}) {
  const { t } = useI18n();
  const [from, setFrom] = useState(v.contractFrom);
  const [to, setTo] = useState(v.contractTo);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  return (
    <section aria-labelledby="contract-title">
      <h2 id="contract-title">{t('contractTitle')}</h2>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          setDone(false);
          if (to < from) return setError(new ClientError(t('contractOrder')));
          setBusy(true);
          try {
            await admin.setContract(v.id, from, to);
            setDone(true);
            await onChanged();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <div className="row">
          <TextField
            label={t('contractFrom')}
            type="date"
            value={from}
            onChange={setFrom}
            required
            hint={t('contractHint')}
          />
          <TextField
            label={t('contractTo')}
            type="date"
            value={to}
            onChange={setTo}
            required
            invalid={to < from}
          />
        </div>
        <ErrorAlert error={error} />
        <SubmitButton busy={busy}>{t('changeContract')}</SubmitButton>
      </form>
      <Status>{done ? t('contractChanged') : null}</Status>
    </section>
  );
}

/** "Are you sure?" for revoking one credential, with the effect spelled out. */
function ConfirmRevoke({
  title,
  text,
  onConfirm,
  onCancel,
}: {
  title: string;
  text: string;
  onConfirm: () => Promise<void>;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <section aria-label={title} className="card inset">
      <FocusHeading level={3}>{title}</FocusHeading>
      <p>{text}</p>
      <ErrorAlert error={error} />
      <div className="actions">
        <button
          type="button"
          className="danger solid"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              await onConfirm();
            } catch (e) {
              setError(e);
              setBusy(false);
            }
          }}
        >
          {busy ? t('busy') : t('doRevoke')}
        </button>
        <button type="button" onClick={onCancel}>
          {t('cancel')}
        </button>
      </div>
    </section>
  );
}

function KeysSection({
  admin,
  verifier: v,
  keys,
  onChanged,
}: {
  admin: VerifierAdmin;
  verifier: Verifier;
  keys: ApiKeyInfo[];
  onChanged: () => Promise<void>;
}) {
  const i = useI18n();
  const { t } = i;
  const [label, setLabel] = useState('');
  const [expires, setExpires] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [issued, setIssued] = useState<IssuedApiKey | null>(null);
  const [revoking, setRevoking] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">{t('keysTitle')}</h2>
      {keys.length === 0 ? (
        <p>{t('noKeys')}</p>
      ) : (
        <KeyTable
          keys={keys}
          action={(k) =>
            k.state === 'valid' ? (
              <button
                type="button"
                className="danger"
                aria-label={t('revokeKeyOf', { id: k.keyId })}
                onClick={() => {
                  setRevoking(k.keyId);
                  setNotice(null);
                }}
              >
                {t('revoke')}
              </button>
            ) : null
          }
        />
      )}
      {revoking ? (
        <ConfirmRevoke
          title={t('revokeKeyOf', { id: revoking })}
          text={t('confirmRevokeKey', { id: revoking })}
          onCancel={() => setRevoking(null)}
          onConfirm={async () => {
            await admin.revokeKey(v.id, revoking);
            setNotice(t('keyRevoked', { id: revoking }));
            setRevoking(null);
            await onChanged();
          }}
        />
      ) : null}
      <Status>{notice}</Status>
      {issued ? <NewKey issued={issued} onDone={() => setIssued(null)} /> : null}
      {v.status !== 'ended' && !issued ? (
        <form
          className="subform"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            setNotice(null);
            if (expires && expires <= jstToday()) return setError(new ClientError(t('keyExpiryPast')));
            setBusy(true);
            try {
              // A key given an expiry day works to the end of that day in Japan.
              const expiresAt = expires ? new Date(`${expires}T23:59:59.999+09:00`).toISOString() : undefined;
              setIssued(await admin.issueKey(v.id, { label: label.trim() || undefined, expiresAt }));
              setLabel('');
              setExpires('');
              await onChanged();
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <h3>{t('issueKey')}</h3>
          <div className="row">
            <TextField
              label={t('keyLabel')}
              hint={t('keyLabelHint')}
              value={label}
              onChange={setLabel}
              maxLength={100}
            />
            <TextField
              label={t('keyExpires')}
              hint={t('keyExpiresHint')}
              type="date"
              value={expires}
              onChange={setExpires}
            />
          </div>
          <ErrorAlert error={error} />
          <SubmitButton busy={busy}>{t('issueKey')}</SubmitButton>
        </form>
      ) : null}
    </section>
  );
}

export function KeyTable({
  keys,
  action,
  current,
  actors = true,
}: {
  keys: ApiKeyInfo[];
  action?: (k: ApiKeyInfo) => ReactNode;
  /** The key this console uses. */
  current?: string;
  /** Who issued the key (staff ids are for operators, not for verifiers). */
  actors?: boolean;
}) {
  const i = useI18n();
  const { t } = i;
  return (
    <div className="table-scroll">
      <table className="data">
        <caption className="visually-hidden">{t('keysTitle')}</caption>
        <thead>
          <tr>
            <th scope="col">{t('keyId')}</th>
            <th scope="col">{t('keyLabel')}</th>
            <th scope="col">{t('issuedAt')}</th>
            <th scope="col">{t('keyExpires')}</th>
            <th scope="col">{t('status')}</th>
            {action ? (
              <th scope="col">
                <span className="visually-hidden">{t('revoke')}</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.keyId}>
              <th scope="row" className="mono">
                {k.keyId}
                {current === k.keyId ? <span className="note"> ({t('thisKey')})</span> : null}
              </th>
              <td>{k.label ? <Data>{k.label}</Data> : ''}</td>
              <td>
                {actors
                  ? t('byAt', { at: i.dateTime(k.createdAt), by: k.createdBy })
                  : i.dateTime(k.createdAt)}
              </td>
              <td>{k.expiresAt ? i.dateTime(k.expiresAt) : t('untilContractEnd')}</td>
              <td>
                <CredentialBadge state={k.state} />
                {k.revokedAt ? ` ${i.dateTime(k.revokedAt)}` : ''}
              </td>
              {action ? <td>{action(k)}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The key, this once: a warning, the key in a read-only field, a copy button. */
function NewKey({ issued, onDone }: { issued: IssuedApiKey; onDone: () => void }) {
  const i = useI18n();
  const { t } = i;
  const input = useRef<HTMLInputElement>(null);
  const [copy, setCopy] = useState<'copied' | 'copyFailed' | null>(null);
  const fieldId = useId();
  return (
    <section aria-labelledby="new-key-title" className="card new-key">
      <FocusHeading level={3} id="new-key-title">
        {t('newKeyTitle')}
      </FocusHeading>
      <div className="alert alert-warn">
        <p className="alert-title">
          <span aria-hidden="true">⚠ </span>
          {t('newKeyWarning')}
        </p>
      </div>
      <div className="field">
        <label htmlFor={fieldId}>{t('apiKey')}</label>
        <div className="copy-row">
          <input
            id={fieldId}
            ref={input}
            type="text"
            readOnly
            value={issued.apiKey}
            className="mono copy-field"
            spellCheck={false}
            onFocus={(e) => e.target.select()}
          />
          <button
            type="button"
            className="primary"
            onClick={async () => {
              try {
                await navigator.clipboard.writeText(issued.apiKey);
                setCopy('copied');
              } catch {
                input.current?.select();
                setCopy('copyFailed');
              }
            }}
          >
            {t('copyKey')}
          </button>
        </div>
      </div>
      <Dl>
        <Fact label={t('keyId')}>
          <span className="mono">{issued.keyId}</span>
        </Fact>
        {/* validUntil is the first instant it no longer works: show the last minute it does. */}
        <Fact label={t('validUntil')}>
          {i.dateTime(new Date(Date.parse(issued.validUntil) - 1).toISOString())}
        </Fact>
      </Dl>
      <Status>{copy ? t(copy) : null}</Status>
      <button type="button" onClick={onDone}>
        {t('newKeyDone')}
      </button>
    </section>
  );
}

function CertificatesSection({
  admin,
  verifier: v,
  certificates,
  onChanged,
}: {
  admin: VerifierAdmin;
  verifier: Verifier;
  certificates: CertificateInfo[];
  onChanged: () => Promise<void>;
}) {
  const { t } = useI18n();
  const [pem, setPem] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [revoking, setRevoking] = useState<CertificateInfo | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  return (
    <section aria-labelledby="certs-title">
      <h2 id="certs-title">{t('certificatesTitle')}</h2>
      {certificates.length === 0 ? (
        <p>{t('noClientCertificates')}</p>
      ) : (
        <CertificateTable
          certificates={certificates}
          action={(c) =>
            c.state === 'valid' ? (
              <button
                type="button"
                className="danger"
                aria-label={t('revokeCertOf', { serial: c.serial })}
                onClick={() => {
                  setRevoking(c);
                  setNotice(null);
                }}
              >
                {t('revoke')}
              </button>
            ) : null
          }
        />
      )}
      {revoking ? (
        <ConfirmRevoke
          title={t('revokeCertOf', { serial: revoking.serial })}
          text={t('confirmRevokeCert', { serial: revoking.serial })}
          onCancel={() => setRevoking(null)}
          onConfirm={async () => {
            await admin.revokeCertificate(v.id, revoking.fingerprintSha256);
            setNotice(t('certRevoked', { serial: revoking.serial }));
            setRevoking(null);
            await onChanged();
          }}
        />
      ) : null}
      {v.status !== 'ended' ? (
        <form
          className="subform"
          noValidate
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            setNotice(null);
            if (!pem.includes('-----BEGIN CERTIFICATE-----'))
              return setError(new ClientError(t('pemRequired')));
            setBusy(true);
            try {
              const c = await admin.registerCertificate(v.id, pem.trim());
              setNotice(t('certificateRegistered', { serial: c.serial }));
              setPem('');
              await onChanged();
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <h3>{t('registerCertificate')}</h3>
          <TextAreaField
            label={t('certificatePem')}
            hint={t('certificatePemHint')}
            value={pem}
            onChange={setPem}
            required
            rows={8}
            maxLength={16384}
            mono
          />
          <ErrorAlert error={error} />
          <SubmitButton busy={busy}>{t('registerCertificate')}</SubmitButton>
        </form>
      ) : null}
      <Status>{notice}</Status>
    </section>
  );
}

export function CertificateTable({
  certificates,
  action,
}: {
  certificates: CertificateInfo[];
  action?: (c: CertificateInfo) => ReactNode;
}) {
  const i = useI18n();
  const { t } = i;
  return (
    <div className="table-scroll">
      <table className="data">
        <caption className="visually-hidden">{t('certificatesTitle')}</caption>
        <thead>
          <tr>
            <th scope="col">{t('serial')}</th>
            <th scope="col">{t('subject')}</th>
            <th scope="col">{t('validity')}</th>
            <th scope="col">{t('fingerprint')}</th>
            <th scope="col">{t('status')}</th>
            {action ? (
              <th scope="col">
                <span className="visually-hidden">{t('revoke')}</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {certificates.map((c) => (
            <tr key={c.fingerprintSha256}>
              <th scope="row" className="mono serial">
                {c.serial}
              </th>
              <td>
                <Data>{c.subject}</Data>
              </td>
              <td>{t('contractRange', { from: i.date(c.notBefore), to: i.date(c.notAfter) })}</td>
              <td className="mono serial fingerprint">{c.fingerprintSha256}</td>
              <td>
                <CredentialBadge state={c.state} />
                {c.revokedAt ? ` ${i.dateTime(c.revokedAt)}` : ''}
              </td>
              {action ? <td>{action(c)}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---------------------------------------------------------------------------------------------------
// Every verifier's usage in a month

export function VerifierUsageOverview({ api, onOpen }: { api: Api; onOpen: (id: number) => void }) {
  const i = useI18n();
  const { t } = i;
  const admin = useMemo(() => new VerifierAdmin(api), [api]);
  const [month, setMonth] = useState(jstThisMonth);
  const [o, setO] = useState<UsageOverview | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(
    async (m: string) => {
      setBusy(true);
      setError(null);
      try {
        setO(await admin.overview(m));
      } catch (e) {
        setO(null);
        setError(e);
      } finally {
        setBusy(false);
      }
    },
    [admin],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: this month once; others on request
  useEffect(() => {
    void load(month);
  }, [load]);

  const download = (format: 'json' | 'csv') => async (e: MouseEvent<HTMLAnchorElement>) => {
    e.preventDefault();
    if (!o) return;
    try {
      const blob = await api.text(
        overviewPath(o.month, format),
        format === 'csv' ? 'text/csv' : 'application/json',
      );
      saveBlob(blob, `verifier-usage-${o.month}.${format}`);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section aria-labelledby="overview-title" className="card">
      <FocusHeading level={1} id="overview-title">
        {t('overviewTitle')}
      </FocusHeading>
      <p>{t('overviewIntro')}</p>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void load(month);
        }}
      >
        <TextField label={t('month')} type="month" value={month} onChange={setMonth} required />
        <SubmitButton busy={busy}>{t('show')}</SubmitButton>
      </form>
      <ErrorAlert error={error} />
      {o ? (
        <>
          <p>
            {i.month(o.month)}: {o.final ? t('final') : t('provisional')}
          </p>
          {o.verifiers.length === 0 ? (
            <p>{t('noOverview')}</p>
          ) : (
            <div className="table-scroll">
              <table className="data amounts">
                <caption>{t('overviewTable', { month: i.month(o.month) })}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('verifierName')}</th>
                    <th scope="col" className="text">
                      {t('category')}
                    </th>
                    <th scope="col" className="text">
                      {t('status')}
                    </th>
                    <th scope="col">{t('usage_ocsp')}</th>
                    <th scope="col">{t('usage_crl')}</th>
                    <th scope="col">{t('usage_verification')}</th>
                    <th scope="col">{t('amount')}</th>
                  </tr>
                </thead>
                <tbody>
                  {o.verifiers.map((r) => (
                    <tr key={r.verifierId}>
                      <th scope="row">
                        <a
                          href={`#/verifiers/${r.verifierId}`}
                          onClick={(e) => {
                            e.preventDefault();
                            onOpen(r.verifierId);
                          }}
                        >
                          <Data>{r.name}</Data>
                        </a>
                      </th>
                      <td className="text">{categoryLabel(i, r.category)}</td>
                      <td className="text">
                        <StatusBadge status={r.status} />
                      </td>
                      <td>{i.number(r.ocsp)}</td>
                      <td>{i.number(r.crl)}</td>
                      <td>{i.number(r.verification)}</td>
                      <td>{i.yen(r.amountYen)}</td>
                    </tr>
                  ))}
                </tbody>
                <tfoot>
                  <tr className="total">
                    <th scope="row">{t('total')}</th>
                    <td />
                    <td />
                    <td>{i.number(o.total.ocsp)}</td>
                    <td>{i.number(o.total.crl)}</td>
                    <td>{i.number(o.total.verification)}</td>
                    <td>{i.yen(o.total.amountYen)}</td>
                  </tr>
                </tfoot>
              </table>
            </div>
          )}
          <h2>{t('downloads')}</h2>
          <ul className="downloads">
            <li>
              <a href={overviewPath(o.month, 'json')} onClick={download('json')}>
                {t('downloadJson')}
              </a>
            </li>
            <li>
              <a href={overviewPath(o.month, 'csv')} onClick={download('csv')}>
                {t('downloadCsv')}
              </a>
            </li>
          </ul>
        </>
      ) : null}
    </section>
  );
}
