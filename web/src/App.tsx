// The page's frame: skip link, banner with the menu, the language switch and the staff member, and the
// main region with the view of the hash route (#/ counter, #/stats statistics). No session: log-in.

import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, loadSession, type Session, saveSession } from './api.ts';
import { Counter } from './Counter.tsx';
import { Status } from './components.tsx';
import { useI18n } from './i18n.tsx';
import { Login } from './Login.tsx';
import { Stats } from './Stats.tsx';

type Route = 'counter' | 'stats';

function routeOf(hash: string): Route {
  return hash.startsWith('#/stats') ? 'stats' : 'counter';
}

function useRoute(): [Route, (r: Route) => void] {
  const [route, setRoute] = useState<Route>(() => routeOf(location.hash));
  useEffect(() => {
    const on = () => setRoute(routeOf(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const go = useCallback((r: Route) => {
    location.hash = r === 'stats' ? '#/stats' : '#/';
  }, []);
  return [route, go];
}

export function App() {
  const i = useI18n();
  const { t } = i;
  const [session, setSession] = useState<Session | null>(loadSession);
  const [notice, setNotice] = useState<'loggedOut' | 'sessionEnded' | null>(null);
  const [route, go] = useRoute();

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
  const canStats = role === 'supervisor' || role === 'operator';
  const view: Route = role === 'operator' ? 'stats' : route;

  useEffect(() => {
    const page = !session ? t('loginTitle') : view === 'stats' ? t('navStats') : t('navCounter');
    document.title = `${page} — ${t('appTitle')}`;
  }, [session, view, t]);

  return (
    <>
      <a className="skip-link" href="#main">
        {t('skipToMain')}
      </a>
      <header className="banner">
        <div className="banner-inner">
          <div className="brand">
            <span className="brand-title">{t('appTitle')}</span>
            <span className="brand-sub">{t('appSubtitle')}</span>
          </div>
          {session ? (
            <nav aria-label={t('navLabel')} className="menu">
              <ul>
                {role !== 'operator' ? (
                  <li>
                    <a href="#/" aria-current={view === 'counter' ? 'page' : undefined}>
                      {t('navCounter')}
                    </a>
                  </li>
                ) : null}
                {canStats ? (
                  <li>
                    <a href="#/stats" aria-current={view === 'stats' ? 'page' : undefined}>
                      {t('navStats')}
                    </a>
                  </li>
                ) : null}
              </ul>
            </nav>
          ) : null}
          <div className="banner-tools">
            <button
              type="button"
              className="link-button"
              lang={i.lang === 'ja' ? 'en' : 'ja'}
              onClick={() => i.setLang(i.lang === 'ja' ? 'en' : 'ja')}
            >
              {t('switchLanguage')}
            </button>
            {session ? (
              <>
                <span className="who">
                  {t('loggedInAs', {
                    user: session.principal.username,
                    role: t(
                      role === 'clerk'
                        ? 'roleClerk'
                        : role === 'supervisor'
                          ? 'roleSupervisor'
                          : 'roleOperator',
                    ),
                  })}
                  {session.principal.municipalityCode
                    ? ` · ${t('municipality', { code: session.principal.municipalityCode })}`
                    : ''}
                </span>
                <button
                  type="button"
                  className="secondary"
                  onClick={async () => {
                    await api?.logout().catch(() => undefined);
                    end('loggedOut');
                  }}
                >
                  {t('logout')}
                </button>
              </>
            ) : null}
          </div>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {!session || !api ? (
          <>
            <Status>{notice ? t(notice) : null}</Status>
            <Login
              onLogin={(s) => {
                saveSession(s);
                setNotice(null);
                setSession(s);
                go(s.principal.role === 'operator' ? 'stats' : 'counter');
              }}
            />
          </>
        ) : view === 'stats' ? (
          <Stats api={api} principal={session.principal} />
        ) : (
          <Counter api={api} principal={session.principal} />
        )}
      </main>
    </>
  );
}
