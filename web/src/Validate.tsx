// Validate a signed document in the verifier console: the .p7s (with the signed file when the signature
// is detached) or the signed XML goes to POST /verify with the verifier's API key, and the validation
// report comes back: the indication in words, colour and a symbol, the report's own sentence, the signer
// and the basic four facts, the signing and time-stamp times, the path, revocation and time stamps.

import { useState } from 'react';
import {
  ClientError,
  Data,
  Dl,
  ErrorAlert,
  Fact,
  FileField,
  FocusHeading,
  Status,
  SubmitButton,
  WithData,
} from './components.tsx';
import { useI18n } from './i18n.tsx';
import {
  fileBase64,
  MAX_VERIFY_FILE_BYTES,
  type ValidationReport,
  type VerifierAccount,
} from './verifier-api.ts';

const VERDICT = {
  TOTAL_PASSED: { cls: 'passed', symbol: '✓' },
  TOTAL_FAILED: { cls: 'failed', symbol: '✗' },
  INDETERMINATE: { cls: 'indeterminate', symbol: '?' },
} as const;

export function Validate({ account }: { account: VerifierAccount }) {
  const { t } = useI18n();
  const [signature, setSignature] = useState<File | null>(null);
  const [content, setContent] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<{ n: number; file: string; report: ValidationReport } | null>(null);

  return (
    <>
      <section className="card" aria-labelledby="validate-title">
        <FocusHeading level={1} id="validate-title">
          {t('validateTitle')}
        </FocusHeading>
        <p>{t('validateIntro')}</p>
        <form
          // The page's own checks below say what is missing in an announced sentence.
          noValidate
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            if (!signature) return setError(new ClientError(t('signatureRequired')));
            for (const f of [signature, content])
              if (f && f.size === 0) return setError(new ClientError(t('fileEmpty', { file: f.name })));
            if (signature.size + (content?.size ?? 0) > MAX_VERIFY_FILE_BYTES)
              return setError(
                new ClientError(t('fileTooLarge', { max: Math.floor(MAX_VERIFY_FILE_BYTES / 1024 / 1024) })),
              );
            setBusy(true);
            try {
              const body = {
                signature: await fileBase64(signature),
                ...(content ? { content: await fileBase64(content) } : {}),
              };
              const report = await account.verify(body);
              setResult((r) => ({ n: (r?.n ?? 0) + 1, file: signature.name, report }));
            } catch (err) {
              setError(err);
              setResult(null);
            } finally {
              setBusy(false);
            }
          }}
        >
          <FileField
            label={t('signatureFile')}
            onChange={setSignature}
            required
            accept=".p7s,.p7m,.pem,.der,.xml,application/pkcs7-signature,application/xml,text/xml"
          />
          <FileField label={t('contentFile')} hint={t('contentFileHint')} onChange={setContent} />
          <ErrorAlert error={error} />
          <SubmitButton busy={busy}>{t('validate')}</SubmitButton>
        </form>
        <Status>
          {result ? t('validated', { result: t(`indication_${result.report.indication}`) }) : null}
        </Status>
      </section>
      {result ? <Report key={result.n} file={result.file} report={result.report} /> : null}
    </>
  );
}

function Report({ file, report: r }: { file: string; report: ValidationReport }) {
  const i = useI18n();
  const { t } = i;
  const verdict = VERDICT[r.indication];
  const facts = r.signer?.basicFacts;
  const time = (iso?: string) => (iso ? i.dateTime(iso) : null);

  return (
    <section className="card report" aria-labelledby="report-title">
      <FocusHeading level={2} id="report-title">
        {t('reportTitle')}
      </FocusHeading>
      <p className="report-file">{t('reportOf', { file })}</p>
      <div className={`verdict verdict-${verdict.cls}`}>
        <p className="verdict-word">
          <span aria-hidden="true" className="verdict-symbol">
            {verdict.symbol}
          </span>
          {t(`indication_${r.indication}`)} <span className="mono">({r.indication})</span>
        </p>
        <p className="verdict-sentence">
          <WithData text={r.summary[i.lang]} data={facts?.name} />
        </p>
        {r.subIndication ? (
          <p>
            {t('subIndication')}: <span className="mono">{r.subIndication}</span>
          </p>
        ) : null}
      </div>

      <Dl>
        <Fact label={t('format')}>
          <span className="mono">{r.format}</span>
        </Fact>
        <Fact label={t('signingTime')}>
          {r.signingTime ? (
            <>
              {time(r.signingTime)} <span className="note">{t('signingTimeNote')}</span>
            </>
          ) : (
            t('notGiven')
          )}
        </Fact>
        <Fact label={t('timestampTime')}>
          {r.timestampTime ? (
            <>
              {time(r.timestampTime)} <span className="note">{t('timestampTimeNote')}</span>
            </>
          ) : (
            t('noTimestamp')
          )}
        </Fact>
        <Fact label={t('validationTime')}>{i.dateTime(r.validationTime)}</Fact>
      </Dl>
      {r.longTermValidation ? (
        <p>{t(`ltv_${r.longTermValidation.reason}`, { at: i.dateTime(r.longTermValidation.at) })}</p>
      ) : null}

      {r.signer ? (
        <section aria-labelledby="signer-title">
          <h3 id="signer-title">{t('signer')}</h3>
          <Dl>
            <Fact label={t('kind')}>{i.tk('kind_', r.signer.kind)}</Fact>
            <Fact label={t('subject')}>
              <Data>{r.signer.subject}</Data>
            </Fact>
            <Fact label={t('issuer')}>
              <Data>{r.signer.issuer}</Data>
            </Fact>
            <Fact label={t('serial')}>
              <span className="mono serial">{r.signer.serial}</span>
            </Fact>
            <Fact label={t('validity')}>
              {t('contractRange', {
                from: i.dateTime(r.signer.notBefore),
                to: i.dateTime(r.signer.notAfter),
              })}
            </Fact>
          </Dl>
        </section>
      ) : null}

      {facts ? (
        <section aria-labelledby="facts-title">
          <h3 id="facts-title">{t('basicFacts')}</h3>
          <Dl>
            <Fact label={t('name')}>
              <Data>{facts.name}</Data>
            </Fact>
            <Fact label={t('dateOfBirth')}>
              {facts.dateOfBirth ? i.date(facts.dateOfBirth) : t('notGiven')}
            </Fact>
            <Fact label={t('sex')}>{i.tk('sex_', facts.sex)}</Fact>
            <Fact label={t('address')}>
              <Data>{facts.address}</Data>
            </Fact>
            {facts.nameSubstitutes ? (
              <Fact label={t('nameSubstitutes')}>
                <Data>{facts.nameSubstitutes}</Data>
              </Fact>
            ) : null}
            {facts.addressSubstitutes ? (
              <Fact label={t('addressSubstitutes')}>
                <Data>{facts.addressSubstitutes}</Data>
              </Fact>
            ) : null}
          </Dl>
        </section>
      ) : null}

      {r.certificateChain.length ? (
        <section aria-labelledby="chain-title">
          <h3 id="chain-title">{t('chainTitle')}</h3>
          <ol className="chain">
            {r.certificateChain.map((c, n) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: the path is in order and does not change
              <li key={n}>
                <Data>{c}</Data>
              </li>
            ))}
          </ol>
        </section>
      ) : null}

      {r.revocation.length ? (
        <section aria-labelledby="revocation-title">
          <h3 id="revocation-title">{t('revocationTitle')}</h3>
          <div className="table-scroll">
            <table className="data">
              <caption className="visually-hidden">{t('revocationTitle')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('certificate')}</th>
                  <th scope="col">{t('revSource')}</th>
                  <th scope="col">{t('status')}</th>
                  <th scope="col">{t('note')}</th>
                </tr>
              </thead>
              <tbody>
                {r.revocation.map((x) => (
                  <tr key={x.index}>
                    <th scope="row">
                      <Data>{x.subject}</Data>
                    </th>
                    <td>{i.tk('revSource_', x.source)}</td>
                    <td>
                      <span
                        className={`badge ${x.status === 'good' ? 'badge-valid' : x.status === 'revoked' ? 'badge-revoked' : 'badge-expired'}`}
                      >
                        {i.tk('revStatus_', x.status)}
                      </span>
                    </td>
                    <td>
                      {[
                        x.crlNumber ? t('crlNumber', { n: x.crlNumber }) : null,
                        x.revokedAt
                          ? t('revokedAtReason', { at: i.dateTime(x.revokedAt), reason: x.reason ?? '' })
                          : null,
                        x.problem ? i.tk('problem_', x.problem) : null,
                      ]
                        .filter(Boolean)
                        .join(' · ')}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : null}

      {r.timestamps.length ? (
        <section aria-labelledby="timestamps-title">
          <h3 id="timestamps-title">{t('timestampsTitle')}</h3>
          <ul className="plain">
            {r.timestamps.map((ts) => (
              <li key={`${ts.time}|${ts.tsa ?? ''}`}>
                {i.dateTime(ts.time)} —{' '}
                <span className={`badge ${ts.valid ? 'badge-valid' : 'badge-revoked'}`}>
                  {ts.valid ? t('tsValid') : t('tsInvalid')}
                </span>
                {ts.tsa ? (
                  <>
                    {' '}
                    <Data>{ts.tsa}</Data>
                  </>
                ) : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}

      {r.messages.length ? (
        <details className="technical">
          <summary>{t('technicalDetails')}</summary>
          <ul lang="en">
            {r.messages.map((m) => (
              <li key={m}>{m}</li>
            ))}
          </ul>
        </details>
      ) : null}
    </section>
  );
}
