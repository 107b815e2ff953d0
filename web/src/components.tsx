// Small pieces shared by the views: announced errors and statuses, labelled fields, headings that take
// the focus when a view or step appears (so keyboard and screen-reader users land on it).

import { type ReactNode, useEffect, useId, useRef } from 'react';
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
  type?: 'text' | 'password' | 'date';
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
