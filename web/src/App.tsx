// The counter page's frame: skip link, banner with the menu, the language switch and the staff member,
// and the main region with the view of the hash route (#/ counter, #/stats statistics; for operators also
// #/verifiers, #/verifiers/<id> and #/verifier-usage). No session: log-in.

import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, loadSession, type Session, saveSession } from './api.ts';
import { Counter } from './Counter.tsx';
import { Banner, type NavItem, Status, useHashRoute } from './components.tsx';
import { useI18n } from './i18n.tsx';
import { Login } from './Login.tsx';
import { Stats } from './Stats.tsx';
import { VerifierDetail, VerifierList, VerifierUsageOverview } from './Verifiers.tsx';

type View =
  | { name: 'counter' }
  | { name: 'stats' }
  | { name: 'verifiers' }
  | { name: 'verifier'; id: number }
  | { name: 'verifier-usage' };

function viewOf(path: string, role: Session['principal']['role'] | undefined): View {
  const operator = role === 'operator';
  // A clerk who opens #/stats is told that the statistics are not theirs (the API refuses them too).
  if (path.startsWith('/stats')) return { name: 'stats' };
  if (operator) {
    const m = /^\/verifiers\/(\d{1,9})$/.exec(path);
    if (m) return { name: 'verifier', id: Number(m[1]) };
    if (path.startsWith('/verifiers')) return { name: 'verifiers' };
    if (path.startsWith('/verifier-usage')) return { name: 'verifier-usage' };
    return { name: 'stats' };
  }
  return { name: 'counter' };
}

export function App() {
  const i = useI18n();
  const { t } = i;
  const [session, setSession] = useState<Session | null>(loadSession);
  const [notice, setNotice] = useState<'loggedOut' | 'sessionEnded' | null>(null);
  const [path, go] = useHashRoute();

  const end = useCallback((why: 'loggedOut' | 'sessionEnded') => {
    saveSession(null);
    setSession(null);
    setNotice(why);
  }, []);
  const api = useMemo(
    () => (session ? new Api(session.token, () => end('sessionEnded')) : null),
    [session, end],
  );

  const role = session?.principal.role;
  const view = viewOf(path, role);

  const nav: NavItem[] = [];
  if (role && role !== 'operator')
    nav.push({ href: '#/', label: t('navCounter'), current: view.name === 'counter' });
  if (role === 'supervisor' || role === 'operator')
    nav.push({ href: '#/stats', label: t('navStats'), current: view.name === 'stats' });
  if (role === 'operator')
    nav.push(
      {
        href: '#/verifiers',
        label: t('navVerifiers'),
        current: view.name === 'verifiers' || view.name === 'verifier',
      },
      { href: '#/verifier-usage', label: t('navVerifierUsage'), current: view.name === 'verifier-usage' },
    );
  const pageTitle = !session
    ? t('loginTitle')
    : view.name === 'stats'
      ? t('navStats')
      : view.name === 'verifiers' || view.name === 'verifier'
        ? t('navVerifiers')
        : view.name === 'verifier-usage'
          ? t('navVerifierUsage')
          : t('navCounter');

  useEffect(() => {
    document.title = `${pageTitle} — ${t('appTitle')}`;
  }, [pageTitle, t]);

  return (
    <>
      <Banner
        title={t('appTitle')}
        subtitle={t('appSubtitle')}
        nav={session ? nav : undefined}
        who={
          session ? (
            <>
              {t('loggedInAs', {
                user: session.principal.username,
                role: t(
                  role === 'clerk' ? 'roleClerk' : role === 'supervisor' ? 'roleSupervisor' : 'roleOperator',
                ),
              })}
              {session.principal.municipalityCode
                ? ` · ${t('municipality', { code: session.principal.municipalityCode })}`
                : ''}
            </>
          ) : undefined
        }
        onLogout={
          session
            ? async () => {
                await api?.logout().catch(() => undefined);
                end('loggedOut');
              }
            : undefined
        }
      />
      <main id="main" tabIndex={-1}>
        {!session || !api ? (
          <>
            <Status>{notice ? t(notice) : null}</Status>
            <Login
              onLogin={(s) => {
                saveSession(s);
                setNotice(null);
                setSession(s);
                go(s.principal.role === 'operator' ? '/stats' : '/');
              }}
            />
          </>
        ) : view.name === 'stats' ? (
          <Stats api={api} principal={session.principal} />
        ) : view.name === 'verifiers' ? (
          <VerifierList api={api} onOpen={(id) => go(`/verifiers/${id}`)} />
        ) : view.name === 'verifier' ? (
          <VerifierDetail key={view.id} api={api} id={view.id} onBack={() => go('/verifiers')} />
        ) : view.name === 'verifier-usage' ? (
          <VerifierUsageOverview api={api} onOpen={(id) => go(`/verifiers/${id}`)} />
        ) : (
          <Counter api={api} principal={session.principal} />
        )}
      </main>
    </>
  );
}
