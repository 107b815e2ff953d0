import { useState } from 'react';
import { login, type Session } from './api.ts';
import { ErrorAlert, FocusHeading, SubmitButton, TextField } from './components.tsx';
import { useI18n } from './i18n.tsx';

export function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const { t } = useI18n();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  return (
    <section className="card narrow" aria-labelledby="login-title">
      <FocusHeading level={1} id="login-title">
        {t('loginTitle')}
      </FocusHeading>
      <p>{t('loginIntro')}</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            onLogin(await login(username.trim(), password));
          } catch (err) {
            setError(err);
            setPassword('');
          } finally {
            setBusy(false);
          }
        }}
      >
        <TextField
          label={t('username')}
          value={username}
          onChange={setUsername}
          required
          autoComplete="username"
          lang="en"
        />
        <TextField
          label={t('password')}
          value={password}
          onChange={setPassword}
          type="password"
          required
          autoComplete="current-password"
        />
        <ErrorAlert error={error} />
        <SubmitButton busy={busy}>{t('login')}</SubmitButton>
      </form>
    </section>
  );
}
