// One counter case, step by step, as the API moves it (docs/counter.md):
//   issuance / renewal: identity → fee (receipt) → keys on the card (the resident's PINs) → issue → card
//   pin-reset:          identity → new PIN on the card
// The step shown is the one the case's state calls for; each step's heading takes the focus when it
// appears, and a refusal is announced (role=alert) without moving the case.

import { type FormEvent, type ReactNode, useEffect, useState } from 'react';
import {
  type Api,
  type CaseState,
  type CounterCase,
  type CounterConfig,
  IDENTITY_DOCUMENT_TYPES,
  PAYMENT_METHODS,
  type Principal,
  type Receipt,
  saveBlob,
} from './api.ts';
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
import { type MessageKey, useI18n } from './i18n.tsx';

type Step = 'identity' | 'fee' | 'keys' | 'issue' | 'card' | 'pin-reset';

const STEPS: Record<CounterCase['type'], Step[]> = {
  issuance: ['identity', 'fee', 'keys', 'issue', 'card'],
  renewal: ['identity', 'fee', 'keys', 'issue', 'card'],
  'pin-reset': ['identity', 'pin-reset'],
};

function stepOf(c: CounterCase): Step | 'done' {
  const s: Record<CaseState, Step | 'done'> = {
    opened: 'identity',
    'identity-verified': c.type === 'pin-reset' ? 'pin-reset' : 'fee',
    'fee-paid': 'keys',
    'keys-generated': 'issue',
    'partially-issued': 'issue',
    issued: 'card',
    completed: 'done',
  };
  return s[c.state];
}

const SIGN_PIN = /^[A-Z0-9]{6,16}$/;
const AUTH_PIN = /^[0-9]{4}$/;
const LAST4 = /^[0-9A-Z]{4}$/;

/** Runs a step: busy while it runs, the case that comes back replaces the old one, errors are kept. */
function useStep(onCase: (c: CounterCase) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (fn: () => Promise<CounterCase>) => {
    setBusy(true);
    setError(null);
    try {
      onCase(await fn());
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

export function CaseFlow({
  api,
  principal,
  config,
  initial,
  onBack,
  onNext,
}: {
  api: Api;
  principal: Principal;
  config: CounterConfig | null;
  initial: CounterCase;
  onBack: () => void;
  onNext: () => void;
}) {
  const i = useI18n();
  const { t } = i;
  const [c, setCase] = useState(initial);
  const [residentName, setResidentName] = useState('');
  useEffect(() => {
    api
      .resident(initial.residentId)
      .then((r) => setResidentName(r.resident.name))
      .catch(() => undefined);
  }, [api, initial.residentId]);

  const steps = STEPS[c.type];
  const current = stepOf(c);
  const currentIndex = current === 'done' ? steps.length : steps.indexOf(current);
  const props = { api, c, onCase: setCase };

  return (
    <section aria-labelledby="case-title" className="card">
      <p className="no-print">
        <button type="button" className="link-button" onClick={onBack}>
          ← {t('backToResident')}
        </button>
      </p>
      <h1 id="case-title">
        {t(`case_${c.type}` as MessageKey)}
        {residentName ? (
          <>
            {' — '}
            <span lang="ja">{residentName}</span>
          </>
        ) : null}
      </h1>
      <p className="case-number mono">{t('caseNumber', { id: c.id })}</p>

      <nav aria-label={t('progress')} className="no-print">
        <ol className="stepper">
          {steps.map((s, n) => {
            const state = n < currentIndex ? 'done' : n === currentIndex ? 'current' : 'todo';
            return (
              <li
                key={s}
                className={`step step-${state}`}
                aria-current={state === 'current' ? 'step' : undefined}
              >
                <span className="step-no" aria-hidden="true">
                  {state === 'done' ? '✓' : n + 1}
                </span>
                <span>{t(`step_${s}` as MessageKey)}</span>
                {state === 'done' ? <span className="visually-hidden"> ({t('stepDone')})</span> : null}
              </li>
            );
          })}
        </ol>
      </nav>

      {current === 'identity' ? <IdentityStep {...props} principal={principal} /> : null}
      {current === 'fee' ? <FeeStep {...props} config={config} /> : null}
      {current === 'keys' ? <KeysStep {...props} /> : null}
      {current === 'issue' ? <IssueStep {...props} /> : null}
      {current === 'card' ? <CardStep {...props} /> : null}
      {current === 'pin-reset' ? <PinResetStep {...props} /> : null}
      {current === 'done' ? <Completed c={c} onBack={onBack} onNext={onNext} /> : null}

      {c.fee ? <ReceiptPanel api={api} c={c} /> : null}
    </section>
  );
}

interface StepProps {
  api: Api;
  c: CounterCase;
  onCase: (c: CounterCase) => void;
}

function StepForm({
  title,
  intro,
  onSubmit,
  children,
}: {
  title: string;
  intro?: ReactNode;
  onSubmit: (e: FormEvent) => void;
  children: ReactNode;
}) {
  return (
    <section className="step-panel" aria-labelledby="step-title">
      <FocusHeading level={2} id="step-title">
        {title}
      </FocusHeading>
      {intro ? <p>{intro}</p> : null}
      <form onSubmit={onSubmit} noValidate>
        {children}
      </form>
    </section>
  );
}

function IdentityStep({ api, c, onCase, principal }: StepProps & { principal: Principal }) {
  const { t } = useI18n();
  const { busy, error, setError, run } = useStep(onCase);
  const [checked, setChecked] = useState<Record<string, boolean>>({});
  const [last4, setLast4] = useState<Record<string, string>>({});
  return (
    <StepForm
      title={t('step_identity')}
      intro={t('identityIntro')}
      onSubmit={(e) => {
        e.preventDefault();
        const documents: { type: string; last4?: string }[] = IDENTITY_DOCUMENT_TYPES.filter(
          (d) => checked[d],
        ).map((type) => {
          const l = (last4[type] ?? '').trim().toUpperCase();
          return l ? { type, last4: l } : { type };
        });
        if (documents.length === 0) return setError(new ClientError(t('identityNeedsDocument')));
        if (documents.some((d) => d.last4 !== undefined && !LAST4.test(d.last4)))
          return setError(new ClientError(t('identityBadLast4')));
        void run(() => api.step(c.id, 'identity', { documents }));
      }}
    >
      <fieldset>
        <legend>{t('identityDocuments')}</legend>
        {IDENTITY_DOCUMENT_TYPES.map((d) => {
          const docName = t(`doc_${d}` as MessageKey);
          return (
            <div key={d} className="doc-row">
              <label className="choice">
                <input
                  type="checkbox"
                  checked={!!checked[d]}
                  onChange={(e) => setChecked({ ...checked, [d]: e.target.checked })}
                />
                {docName}
              </label>
              {checked[d] ? (
                <TextField
                  className="last4"
                  label={t('last4', { doc: docName })}
                  hint={t('last4Hint')}
                  value={last4[d] ?? ''}
                  onChange={(v) => setLast4({ ...last4, [d]: v })}
                  maxLength={4}
                />
              ) : null}
            </div>
          );
        })}
      </fieldset>
      <p>{t('verifiedBy', { user: principal.username })}</p>
      <ErrorAlert error={error} />
      <SubmitButton busy={busy}>{t('recordIdentity')}</SubmitButton>
    </StepForm>
  );
}

function FeeStep({ api, c, onCase, config }: StepProps & { config: CounterConfig | null }) {
  const i = useI18n();
  const { t } = i;
  const { busy, error, run } = useStep(onCase);
  const [method, setMethod] = useState<(typeof PAYMENT_METHODS)[number]>('cash');
  const amount = method === 'exempt' ? 0 : (config?.feeYen ?? null);
  return (
    <StepForm
      title={t('step_fee')}
      intro={amount === null ? undefined : t('feeIntro', { amount: t('yen', { n: i.number(amount) }) })}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => api.step(c.id, 'fee', { method }));
      }}
    >
      <fieldset>
        <legend>{t('paymentMethod')}</legend>
        {PAYMENT_METHODS.map((m) => (
          <label key={m} className="choice">
            <input
              type="radio"
              name="method"
              value={m}
              checked={method === m}
              onChange={() => setMethod(m)}
            />
            {t(`method_${m}` as MessageKey)}
          </label>
        ))}
      </fieldset>
      <ErrorAlert error={error} />
      <SubmitButton busy={busy}>{t('recordFee')}</SubmitButton>
    </StepForm>
  );
}

function ReceiptPanel({ api, c }: { api: Api; c: CounterCase }) {
  const i = useI18n();
  const { t } = i;
  const [receipt, setReceipt] = useState<Receipt | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api.receipt(c.id).then(setReceipt, setError);
  }, [api, c.id]);
  return (
    <section className="receipt" aria-labelledby="receipt-title">
      <h2 id="receipt-title">{t('receipt')}</h2>
      <ErrorAlert error={error} />
      {receipt ? (
        <>
          <Dl>
            <Fact label={t('receiptNumber')}>
              <span className="mono">{receipt.receiptNumber}</span>
            </Fact>
            <Fact label={t('item')}>{receipt.item[i.lang]}</Fact>
            <Fact label={t('amount')}>{t('yen', { n: i.number(receipt.amountYen) })}</Fact>
            <Fact label={t('paymentMethod')}>{i.tk('method_', receipt.method)}</Fact>
            <Fact label={t('paidAt')}>{i.dateTime(receipt.paidAt)}</Fact>
            <Fact label={t('receivedBy')}>
              <span className="mono">{receipt.receivedBy}</span>
            </Fact>
            <Fact label={t('municipalityCode')}>
              <span className="mono">{receipt.municipalityCode}</span>
            </Fact>
          </Dl>
          <div className="actions no-print">
            <button type="button" onClick={() => window.print()}>
              {t('printReceipt')}
            </button>
            <button
              type="button"
              onClick={async () => {
                try {
                  const blob = await api.text(
                    `/api/v1/counter/cases/${c.id}/receipt?format=text`,
                    'text/plain',
                  );
                  saveBlob(blob, `receipt-${receipt.receiptNumber}.txt`);
                } catch (e) {
                  setError(e);
                }
              }}
            >
              {t('downloadReceipt')}
            </button>
          </div>
        </>
      ) : null}
    </section>
  );
}

function KeysStep({ api, c, onCase }: StepProps) {
  const { t } = useI18n();
  const { busy, error, setError, run } = useStep(onCase);
  const [cardId, setCardId] = useState('');
  const [signPin, setSignPin] = useState('');
  const [signPin2, setSignPin2] = useState('');
  const [authPin, setAuthPin] = useState('');
  const [authPin2, setAuthPin2] = useState('');
  const [invalid, setInvalid] = useState<string[]>([]);
  return (
    <StepForm
      title={t('step_keys')}
      intro={t('keysIntro')}
      onSubmit={(e) => {
        e.preventDefault();
        const bad: [string, MessageKey | null][] = [
          ['sign', SIGN_PIN.test(signPin) ? null : 'signPinFormat'],
          ['sign2', SIGN_PIN.test(signPin) && signPin !== signPin2 ? 'pinMismatch' : null],
          ['auth', AUTH_PIN.test(authPin) ? null : 'authPinFormat'],
          ['auth2', AUTH_PIN.test(authPin) && authPin !== authPin2 ? 'pinMismatch' : null],
        ];
        const first = bad.find(([, m]) => m);
        setInvalid(bad.filter(([, m]) => m).map(([f]) => f));
        if (first) {
          const what = first[0] === 'sign2' ? t('signPin') : t('authPin');
          return setError(new ClientError(t(first[1]!, { what })));
        }
        void run(() =>
          api.step(c.id, 'keys', { ...(cardId.trim() ? { cardId: cardId.trim() } : {}), signPin, authPin }),
        );
      }}
    >
      <TextField
        label={t('cardIdLabel')}
        hint={t('cardIdHint')}
        value={cardId}
        onChange={setCardId}
        maxLength={64}
        lang="en"
      />
      <div className="row">
        <TextField
          label={t('signPin')}
          hint={t('signPinHint')}
          type="password"
          value={signPin}
          onChange={setSignPin}
          required
          autoComplete="new-password"
          maxLength={16}
          invalid={invalid.includes('sign')}
        />
        <TextField
          label={t('signPinConfirm')}
          type="password"
          value={signPin2}
          onChange={setSignPin2}
          required
          autoComplete="new-password"
          maxLength={16}
          invalid={invalid.includes('sign2')}
        />
      </div>
      <div className="row">
        <TextField
          label={t('authPin')}
          hint={t('authPinHint')}
          type="password"
          value={authPin}
          onChange={setAuthPin}
          required
          autoComplete="new-password"
          inputMode="numeric"
          maxLength={4}
          invalid={invalid.includes('auth')}
        />
        <TextField
          label={t('authPinConfirm')}
          type="password"
          value={authPin2}
          onChange={setAuthPin2}
          required
          autoComplete="new-password"
          inputMode="numeric"
          maxLength={4}
          invalid={invalid.includes('auth2')}
        />
      </div>
      <ErrorAlert error={error} />
      <Status>{busy ? t('generatingKeys') : null}</Status>
      <SubmitButton busy={busy}>{t('generateKeys')}</SubmitButton>
    </StepForm>
  );
}

function IssueStep({ api, c, onCase }: StepProps) {
  const { t } = useI18n();
  const { busy, error, run } = useStep(onCase);
  const partial = c.state === 'partially-issued';
  return (
    <StepForm
      title={t('step_issue')}
      intro={partial ? t('issueRetryIntro') : t('issueIntro')}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => api.step(c.id, 'issue'));
      }}
    >
      {partial ? <SerialList c={c} /> : null}
      <ErrorAlert error={error} />
      <SubmitButton busy={busy}>{partial ? t('issueRetry') : t('issue')}</SubmitButton>
    </StepForm>
  );
}

function CardStep({ api, c, onCase }: StepProps) {
  const { t } = useI18n();
  const { busy, error, run } = useStep(onCase);
  return (
    <StepForm
      title={t('step_card')}
      intro={t('cardIntro')}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => api.step(c.id, 'card'));
      }}
    >
      <SerialList c={c} />
      <ErrorAlert error={error} />
      <SubmitButton busy={busy}>{t('writeCard')}</SubmitButton>
    </StepForm>
  );
}

function PinResetStep({ api, c, onCase }: StepProps) {
  const { t } = useI18n();
  const { busy, error, setError, run } = useStep(onCase);
  const [cardId, setCardId] = useState('');
  const [slot, setSlot] = useState<'sign' | 'auth'>('sign');
  const [pin, setPin] = useState('');
  const [pin2, setPin2] = useState('');
  useEffect(() => {
    api
      .resident(c.residentId)
      .then((r) => setCardId((v) => v || r.cardId || ''))
      .catch(() => undefined);
  }, [api, c.residentId]);
  return (
    <StepForm
      title={t('step_pin-reset')}
      intro={t('pinResetIntro')}
      onSubmit={(e) => {
        e.preventDefault();
        const ok = slot === 'sign' ? SIGN_PIN.test(pin) : AUTH_PIN.test(pin);
        if (!ok) return setError(new ClientError(t(slot === 'sign' ? 'signPinFormat' : 'authPinFormat')));
        if (pin !== pin2) return setError(new ClientError(t('pinMismatch', { what: t('newPin') })));
        void run(() => api.step(c.id, 'pin-reset', { cardId: cardId.trim(), slot, newPin: pin }));
      }}
    >
      <TextField
        label={t('cardIdLabel')}
        value={cardId}
        onChange={setCardId}
        required
        maxLength={64}
        lang="en"
      />
      <fieldset>
        <legend>{t('pinSlot')}</legend>
        {(['sign', 'auth'] as const).map((s) => (
          <label key={s} className="choice">
            <input type="radio" name="slot" value={s} checked={slot === s} onChange={() => setSlot(s)} />
            {t(s === 'sign' ? 'slot_sign' : 'slot_auth')}
          </label>
        ))}
      </fieldset>
      <div className="row">
        <TextField
          label={t('newPin')}
          hint={t(slot === 'sign' ? 'signPinHint' : 'authPinHint')}
          type="password"
          value={pin}
          onChange={setPin}
          required
          autoComplete="new-password"
          inputMode={slot === 'auth' ? 'numeric' : undefined}
          maxLength={16}
        />
        <TextField
          label={t('newPinConfirm')}
          type="password"
          value={pin2}
          onChange={setPin2}
          required
          autoComplete="new-password"
          inputMode={slot === 'auth' ? 'numeric' : undefined}
          maxLength={16}
        />
      </div>
      <ErrorAlert error={error} />
      <SubmitButton busy={busy}>{t('resetPin')}</SubmitButton>
    </StepForm>
  );
}

function SerialList({ c }: { c: CounterCase }) {
  const { t } = useI18n();
  if (!c.signSerial && !c.authSerial) return null;
  return (
    <Dl>
      {c.signSerial ? (
        <Fact label={t('signSerial')}>
          <span className="mono serial">{c.signSerial}</span>
        </Fact>
      ) : null}
      {c.authSerial ? (
        <Fact label={t('authSerial')}>
          <span className="mono serial">{c.authSerial}</span>
        </Fact>
      ) : null}
    </Dl>
  );
}

function Completed({ c, onBack, onNext }: { c: CounterCase; onBack: () => void; onNext: () => void }) {
  const { t } = useI18n();
  return (
    <section className="step-panel completed" aria-labelledby="done-title">
      <FocusHeading level={2} id="done-title">
        <span aria-hidden="true">✓ </span>
        {t('completedTitle')}
      </FocusHeading>
      <p>{c.type === 'pin-reset' ? t('pinResetDone') : t('completedIntro')}</p>
      {c.type !== 'pin-reset' ? (
        <Dl>
          <Fact label={t('signSerial')}>
            <span className="mono serial">{c.signSerial}</span>
          </Fact>
          <Fact label={t('authSerial')}>
            <span className="mono serial">{c.authSerial}</span>
          </Fact>
          <Fact label={t('cardId')}>
            <span className="mono">{c.cardId}</span>
          </Fact>
          <Fact label={t('receiptNumber')}>
            <span className="mono">{c.fee?.receiptNumber}</span>
          </Fact>
        </Dl>
      ) : null}
      <div className="actions no-print">
        <button type="button" onClick={onBack}>
          {t('backToResident')}
        </button>
        <button type="button" className="primary" onClick={onNext}>
          {t('nextResident')}
        </button>
      </div>
    </section>
  );
}
