// Small pieces shared by the views of both pages (the counter at /counter/, the verifier console at
// /verifier/): the banner, the hash route, announced errors and statuses, labelled fields, headings that
// take the focus when a view or step appears (so keyboard and screen-reader users land on it).

import { type ReactNode, useCallback, useEffect, useId, useRef, useState } from 'react';
import { ApiError } from './api.ts';
import { type I18n, type MessageKey, useI18n } from './i18n.tsx';

/** The sentence for an error: the service's error name picks the message; the server's text is the detail. */
export function errorSentence(i: I18n, e: unknown): { text: string; detail?: string } {
  if (e instanceof ApiError) {
    let key = `err_${e.errorName}` as MessageKey;
    if (e.errorName === 'LoginError' && /locked/.test(e.message)) key = 'err_LoginLocked';
    const known = i.tk('', key) !== key;
    const text = known ? i.t(key) : i.t(e.status >= 500 ? 'err_InternalError' : 'err_Unknown');
    const same = e.errorName === 'LoginError' || e.errorName === 'Network';
    return { text, detail: same ? undefined : e.message };
  }
  if (e instanceof ClientError) return { text: e.text };
  return { text: i.t('err_Unknown'), detail: e instanceof Error ? e.message : String(e) };
}

/** A check made in the page before anything is sent (already translated). */
export class ClientError extends Error {
  constructor(readonly text: string) {
    super(text);
    this.name = 'ClientError';
  }
}

export function ErrorAlert({ error }: { error: unknown }) {
  const i = useI18n();
  if (!error) return null;
  const { text, detail } = errorSentence(i, error);
  return (
    <div role="alert" className="alert alert-error">
      <p className="alert-title">
        <span aria-hidden="true">⚠ </span>
        {text}
      </p>
      {detail ? <p className="alert-detail">{i.t('errorDetail', { detail })}</p> : null}
    </div>
  );
}

/** A polite live region: success and progress messages. Always rendered, so changes are announced. */
export function Status({ children }: { children?: ReactNode }) {
  return (
    <div role="status" aria-live="polite" className={children ? 'alert alert-ok' : 'visually-empty'}>
      {children}
    </div>
  );
}

/** A heading that takes the focus when it first appears. */
export function FocusHeading({
  level = 2,
  children,
  id,
}: {
  level?: 1 | 2 | 3;
  children: ReactNode;
  id?: string;
}) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  const Tag = `h${level}` as const;
  return (
    <Tag ref={ref} tabIndex={-1} id={id} className="focus-heading">
      {children}
    </Tag>
  );
}

export function TextField(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  hint?: string;
  type?: 'text' | 'password' | 'date' | 'month';
  required?: boolean;
  autoComplete?: string;
  inputMode?: 'numeric' | 'text';
  maxLength?: number;
  invalid?: boolean;
  lang?: string;
  className?: string;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  const i = useI18n();
  return (
    <div className={`field ${props.className ?? ''}`}>
      <label htmlFor={id}>
        {props.label}
        {props.required ? <span className="req"> ({i.t('required')})</span> : null}
      </label>
      <input
        id={id}
        type={props.type ?? 'text'}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-describedby={props.hint ? hintId : undefined}
        aria-invalid={props.invalid || undefined}
        required={props.required}
        autoComplete={props.autoComplete ?? 'off'}
        inputMode={props.inputMode}
        maxLength={props.maxLength}
        spellCheck={false}
        lang={props.lang}
      />
      {props.hint ? (
        <p id={hintId} className="hint">
          {props.hint}
        </p>
      ) : null}
    </div>
  );
}

/** A button that shows it is working and cannot be pressed twice. */
export function SubmitButton({ busy, children }: { busy: boolean; children: ReactNode }) {
  const i = useI18n();
  return (
    <button type="submit" className="primary" disabled={busy} aria-disabled={busy}>
      {busy ? i.t('busy') : children}
    </button>
  );
}

export function Dl({ children }: { children: ReactNode }) {
  return <dl className="facts">{children}</dl>;
}

export function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

const JAPANESE = /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/;

/**
 * Text entered by people (a verifier's name, a reason, a signer's name): marked lang="ja" when it is
 * written in Japanese, so a screen reader reads it in Japanese also on the English page.
 */
export function Data({ children, className }: { children: string; className?: string }) {
  return (
    <span lang={JAPANESE.test(children) ? 'ja' : undefined} className={className}>
      {children}
    </span>
  );
}

/** A sentence that quotes data (a signer's name in the report's English sentence): the quote marked as Data. */
export function WithData({ text, data }: { text: string; data?: string }) {
  if (!data || !text.includes(data)) return <Data>{text}</Data>;
  const at = text.indexOf(data);
  return (
    <>
      {text.slice(0, at)}
      <Data>{data}</Data>
      {text.slice(at + data.length)}
    </>
  );
}

export function SelectField<V extends string>(props: {
  label: string;
  value: V;
  onChange: (v: V) => void;
  options: readonly { value: V; label: string }[];
  hint?: string;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select
        id={id}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value as V)}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
      >
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {props.hint ? (
        <p id={`${id}-hint`} className="hint">
          {props.hint}
        </p>
      ) : null}
    </div>
  );
}

export function TextAreaField(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  hint?: string;
  required?: boolean;
  rows?: number;
  maxLength?: number;
  mono?: boolean;
}) {
  const id = useId();
  const i = useI18n();
  return (
    <div className="field">
      <label htmlFor={id}>
        {props.label}
        {props.required ? <span className="req"> ({i.t('required')})</span> : null}
      </label>
      <textarea
        id={id}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        required={props.required}
        rows={props.rows ?? 3}
        maxLength={props.maxLength}
        spellCheck={false}
        className={props.mono ? 'mono' : undefined}
      />
      {props.hint ? (
        <p id={`${id}-hint`} className="hint">
          {props.hint}
        </p>
      ) : null}
    </div>
  );
}

export function FileField(props: {
  label: string;
  onChange: (f: File | null) => void;
  hint?: string;
  required?: boolean;
  accept?: string;
}) {
  const id = useId();
  const i = useI18n();
  return (
    <div className="field">
      <label htmlFor={id}>
        {props.label}
        <span className="req"> ({i.t(props.required ? 'required' : 'optional')})</span>
      </label>
      <input
        id={id}
        type="file"
        accept={props.accept}
        onChange={(e) => props.onChange(e.target.files?.[0] ?? null)}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        required={props.required}
      />
      {props.hint ? (
        <p id={`${id}-hint`} className="hint">
          {props.hint}
        </p>
      ) : null}
    </div>
  );
}

/** A short status word in colour and words (never colour alone). */
export function Badge({ tone, children }: { tone: 'ok' | 'bad' | 'muted' | 'warn'; children: ReactNode }) {
  const cls = { ok: 'badge-valid', bad: 'badge-revoked', muted: 'badge-expired', warn: 'badge-warn' }[tone];
  return <span className={`badge ${cls}`}>{children}</span>;
}

const hashPath = () => location.hash.replace(/^#/, '') || '/';

/** The path after the hash (#/stats → /stats), and a function to go elsewhere. */
export function useHashRoute(): [string, (path: string) => void] {
  const [path, setPath] = useState<string>(hashPath);
  useEffect(() => {
    const on = () => setPath(hashPath());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const go = useCallback((p: string) => {
    location.hash = `#${p}`;
  }, []);
  return [path, go];
}

export interface NavItem {
  href: string;
  label: string;
  current: boolean;
}

/** The page's banner: title, menu, the language switch, who is logged in and the log-out button. */
export function Banner({
  title,
  subtitle,
  nav,
  who,
  onLogout,
}: {
  title: string;
  subtitle: string;
  nav?: NavItem[];
  who?: ReactNode;
  onLogout?: () => void;
}) {
  const i = useI18n();
  const { t } = i;
  return (
    <>
      <a className="skip-link" href="#main">
        {t('skipToMain')}
      </a>
      <header className="banner">
        <div className="banner-inner">
          <div className="brand">
            <span className="brand-title">{title}</span>
            <span className="brand-sub">{subtitle}</span>
          </div>
          {nav?.length ? (
            <nav aria-label={t('navLabel')} className="menu">
              <ul>
                {nav.map((n) => (
                  <li key={n.href}>
                    <a href={n.href} aria-current={n.current ? 'page' : undefined}>
                      {n.label}
                    </a>
                  </li>
                ))}
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
            {onLogout ? (
              <>
                {who ? <span className="who">{who}</span> : null}
                <button type="button" className="secondary" onClick={onLogout}>
                  {t('logout')}
                </button>
              </>
            ) : null}
          </div>
        </div>
      </header>
    </>
  );
}
