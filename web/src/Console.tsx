// The verifier console (/verifier/): a verifier's staff log in with the verifier's API key (kept in this
// tab's sessionStorage only) and see their usage (#/), statements (#/statements), keys and certificates
// (#/credentials), and validate a signed document (#/validate).

import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, jstToday } from './api.ts';
import { StatementPanel, UsagePanel } from './Billing.tsx';
import {
  Banner,
  ClientError,
  Data,
  Dl,
  ErrorAlert,
  Fact,
  FocusHeading,
  type NavItem,
  Status,
  SubmitButton,
  TextField,
  useHashRoute,
} from './components.tsx';
import { useI18n } from './i18n.tsx';
import { Validate } from './Validate.tsx';
import { CertificateTable, KeyTable, StatusBadge } from './Verifiers.tsx';
import {
  type ApiKeyInfo,
  type CertificateInfo,
  loadApiKey,
  ownBilling,
  saveApiKey,
  VerifierAccount,
  type VerifierSelf,
} from './verifier-api.ts';

type View = 'usage' | 'statements' | 'credentials' | 'validate';

function viewOf(path: string): View {
  if (path.startsWith('/statements')) return 'statements';
  if (path.startsWith('/credentials')) return 'credentials';
  if (path.startsWith('/validate')) return 'validate';
  return 'usage';
}

export function ConsoleApp() {
  const i = useI18n();
  const { t } = i;
  const [apiKey, setApiKey] = useState<string | null>(loadApiKey);
  const [self, setSelf] = useState<VerifierSelf | null>(null);
  const [notice, setNotice] = useState<'keyLoggedOut' | 'keyEnded' | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [path] = useHashRoute();
  const view = viewOf(path);

  const end = useCallback((why: 'keyLoggedOut' | 'keyEnded') => {
    saveApiKey(null);
    setApiKey(null);
    setSelf(null);
    setNotice(why);
  }, []);
  const api = useMemo(() => (apiKey ? new Api(apiKey, () => end('keyEnded')) : null), [apiKey, end]);
  const account = useMemo(() => (api ? new VerifierAccount(api) : null), [api]);

  // A key kept from before a reload: who it belongs to (a 401 ends the session through the Api).
  useEffect(() => {
    if (account && !self)
      account
        .self()
        .then(setSelf)
        .catch((e) => setLoadError(e));
  }, [account, self]);

  const titles: Record<View, string> = {
    usage: t('navUsage'),
    statements: t('navStatements'),
    credentials: t('navCredentials'),
    validate: t('navValidate'),
  };
  useEffect(() => {
    document.title = `${self ? titles[view] : t('keyLoginTitle')} — ${t('consoleTitle')}`;
  });

  const nav: NavItem[] = (['usage', 'statements', 'credentials', 'validate'] as const).map((v) => ({
    href: v === 'usage' ? '#/' : `#/${v}`,
    label: titles[v],
    current: view === v,
  }));

  return (
    <>
      <Banner
        title={t('consoleTitle')}
        subtitle={t('consoleSubtitle')}
        nav={self ? nav : undefined}
        who={self ? <Data>{self.name}</Data> : undefined}
        onLogout={self ? () => end('keyLoggedOut') : undefined}
      />
      <main id="main" tabIndex={-1}>
        {!api || !account || !self ? (
          <>
            <Status>{notice ? t(notice) : null}</Status>
            <ErrorAlert error={loadError} />
            {apiKey && !loadError ? null : (
              <KeyLogin
                onLogin={(key, who) => {
                  saveApiKey(key);
                  setNotice(null);
                  setLoadError(null);
                  setApiKey(key);
                  setSelf(who);
                }}
              />
            )}
          </>
        ) : (
          <>
            <Standing self={self} />
            {view === 'statements' ? (
              <div className="card">
                <StatementPanel api={api} paths={ownBilling} level={1} />
              </div>
            ) : view === 'credentials' ? (
              <Credentials account={account} self={self} />
            ) : view === 'validate' ? (
              <Validate account={account} />
            ) : (
              <div className="card">
                <UsagePanel api={api} paths={ownBilling} level={1} />
              </div>
            )}
          </>
        )}
      </main>
    </>
  );
}

function KeyLogin({ onLogin }: { onLogin: (key: string, who: VerifierSelf) => void }) {
  const { t } = useI18n();
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <section className="card narrow" aria-labelledby="key-login-title">
      <FocusHeading level={1} id="key-login-title">
        {t('keyLoginTitle')}
      </FocusHeading>
      <p>{t('keyLoginIntro')}</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          const k = key.trim();
          if (!k.startsWith('jpkv_')) return setError(new ClientError(t('apiKeyFormat')));
          setBusy(true);
          try {
            // A refused key must not end a session that has not begun: no callback on 401 here.
            const who = await new VerifierAccount(new Api(k, () => undefined)).self();
            onLogin(k, who);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <TextField
          label={t('apiKey')}
          hint={t('apiKeyHint')}
          type="password"
          value={key}
          onChange={setKey}
          required
          autoComplete="off"
          lang="en"
        />
        <ErrorAlert error={error} />
        <SubmitButton busy={busy}>{t('login')}</SubmitButton>
      </form>
    </section>
  );
}

/** A verifier that may not receive revocation information now is told so on every view. */
function Standing({ self }: { self: VerifierSelf }) {
  const { t } = useI18n();
  const today = jstToday();
  const text =
    self.status === 'suspended'
      ? t('standing_suspended')
      : self.status === 'ended'
        ? t('standing_ended')
        : today < self.contractFrom || today > self.contractTo
          ? t('standing_outside', { from: self.contractFrom, to: self.contractTo })
          : null;
  if (!text) return null;
  return (
    <div className="alert alert-warn standing">
      <p className="alert-title">
        <span aria-hidden="true">⚠ </span>
        {text}
      </p>
    </div>
  );
}

function Credentials({ account, self }: { account: VerifierAccount; self: VerifierSelf }) {
  const i = useI18n();
  const { t } = i;
  const [creds, setCreds] = useState<{ apiKeys: ApiKeyInfo[]; certificates: CertificateInfo[] } | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    account.credentials().then(setCreds).catch(setError);
  }, [account]);
  return (
    <section className="card" aria-labelledby="credentials-title">
      <FocusHeading level={1} id="credentials-title">
        {t('credentialsTitle')}
      </FocusHeading>
      <p>{t('credentialsIntro')}</p>
      <h2>{t('accountTitle')}</h2>
      <Dl>
        <Fact label={t('verifierName')}>
          <Data>{self.name}</Data>
          {` (ID ${self.id})`}
        </Fact>
        <Fact label={t('category')}>{i.tk('category_', self.category)}</Fact>
        <Fact label={t('status')}>
          <StatusBadge status={self.status} />
        </Fact>
        <Fact label={t('contract')}>
          {t('contractRange', { from: i.date(self.contractFrom), to: i.date(self.contractTo) })}
        </Fact>
      </Dl>
      <ErrorAlert error={error} />
      {creds ? (
        <>
          <h2>{t('keysTitle')}</h2>
          {creds.apiKeys.length ? (
            <KeyTable keys={creds.apiKeys} current={self.credential.keyId} actors={false} />
          ) : (
            <p>{t('noKeys')}</p>
          )}
          <h2>{t('certificatesTitle')}</h2>
          {creds.certificates.length ? (
            <CertificateTable certificates={creds.certificates} />
          ) : (
            <p>{t('noClientCertificates')}</p>
          )}
        </>
      ) : null}
    </section>
  );
}
