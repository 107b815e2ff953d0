// Verifying a signed document: the one code path behind `jpki verify`, POST /verify and, later,
// the application gateway. It answers the three questions of the service (who signed, was it
// changed, can they deny it) in a report shaped like the EU DSS simple report.
//
//   1. The signature itself (CMS/CAdES or XML-DSig/XAdES): format, content hash, signature value.
//   2. Signature time stamps: each token's own signature, its imprint over the signature value,
//      and its TSA certificate's path at the time stamp. The earliest good one is the proof of
//      existence (POE) of the signature.
//   3. The signer's certificate path and revocation at the validation time (default: now).
//   4. Long-term evidence: a certificate revoked or expired after the POE still validates at the
//      POE, and the report says so. Without a POE a revoked certificate never passes.

import { X509Certificate } from 'node:crypto';
import { type BasicFacts, BasicFactsError, decodeBasicFactsSan } from '../core/basic-facts.ts';
import { type CmsVerification, verifyCms } from '../core/cms/index.ts';
import { BytesLru } from '../core/path/cache.ts';
import { certificateFrom, type ParsedCertificate, PathParseError } from '../core/path/index.ts';
import { INDICATION_OF, type Indication, type SubIndication } from '../core/report.ts';
import { serialHex } from '../core/serial.ts';
import { verifyTimeStampToken } from '../core/tsp/index.ts';
import { verifyXml, type XmlVerificationResult } from '../core/xml/index.ts';
import { detectFormat } from '../signing/sign-document.ts';
import { RevocationSource } from './revocation-source.ts';
import { type CertificateValidationReport, validateCertificate } from './validate-certificate.ts';

export interface VerifySignatureInput {
  /** A CMS SignedData (.p7s, DER or PEM) or a signed XML document. */
  signature: Uint8Array;
  /** The content of a detached CMS signature. */
  content?: Uint8Array;
  trust: readonly Uint8Array[];
  untrusted?: readonly Uint8Array[];
  crls?: readonly Uint8Array[];
  ocsp?: readonly Uint8Array[];
  online?: boolean;
  /** Validation time; default now. */
  at?: Date;
  /**
   * A long-lived revocation source (keeps fetched CRLs and OCSP across calls, and whatever was added
   * to it directly). The CRLs and OCSP responses given with one call, or embedded in its signature,
   * are used for that call only: they do not stay in it.
   */
  source?: RevocationSource;
}

export interface SignerSummary {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** sign: a JPKI signature certificate (carries the four basic facts); auth: user authentication. */
  kind: 'sign' | 'auth' | 'other';
  basicFacts?: BasicFacts;
}

export interface TimeStampSummary {
  time: string;
  valid: boolean;
  tsa?: string;
  message: string;
}

export interface ValidationReport {
  indication: Indication;
  subIndication?: SubIndication;
  format: 'CAdES-BES' | 'CAdES-T' | 'XAdES-BES' | 'XAdES-T' | 'CMS' | 'XML-DSig' | 'unknown';
  /** The time the signer claims (signing-time / SigningTime): not proof. */
  signingTime?: string;
  /** The earliest valid signature time stamp: proof the signature existed then. */
  timestampTime?: string;
  validationTime: string;
  /** When the certificate was judged at the time stamp's time rather than the validation time. */
  longTermValidation?: { at: string; reason: 'revoked-after-timestamp' | 'expired-after-timestamp' };
  signer?: SignerSummary;
  certificateChain: string[];
  timestamps: TimeStampSummary[];
  revocation: CertificateValidationReport['revocation'];
  /** One sentence each for the person reading the report. */
  summary: { ja: string; en: string };
  /** Technical details, most important first. */
  messages: string[];
  /** The signed content (CMS attached content, or the part of the XML the signature covers). */
  signedContent?: Buffer;
}

type Crypto = { kind: 'cms'; result: CmsVerification } | { kind: 'xml'; result: XmlVerificationResult };

export async function verifySignature(input: VerifySignatureInput): Promise<ValidationReport> {
  const now = input.at ?? new Date();
  const messages: string[] = [];
  // One copy of the signature: everything parsed from it is a view into this buffer.
  const data = Buffer.from(input.signature);
  const given = (input.untrusted ?? []).map(asBuffer);
  const source = input.source
    ? new CallSource(input.source)
    : new RevocationSource({ online: input.online ?? false });

  // 1. The signature itself.
  const crypto: Crypto =
    detectFormat(data) === 'xml'
      ? { kind: 'xml', result: verifyXml(data) }
      : {
          kind: 'cms',
          result: verifyCms(pemToDer(data), {
            detachedContent: input.content ? asBuffer(input.content) : undefined,
            certificates: given,
          }),
        };
  const r = crypto.result;
  const tokens = r.signatureTimeStamps;
  const format = formatOf(crypto, tokens.length > 0);
  const signingTime = r.signingTime?.toISOString();
  const base = {
    format,
    signingTime,
    validationTime: now.toISOString(),
    certificateChain: [] as string[],
    timestamps: [] as TimeStampSummary[],
    revocation: [] as CertificateValidationReport['revocation'],
  };
  if (r.status !== 'valid' || !r.signerCertificate) {
    const sub: SubIndication = r.subIndication ?? 'FORMAT_FAILURE';
    messages.push(r.message);
    return finish({ ...base, indication: INDICATION_OF[sub], subIndication: sub, messages });
  }
  const signerCert = r.signerCertificate;
  const signer = summarise(signerCert);
  const signedContent = crypto.kind === 'cms' ? crypto.result.content : xmlSigned(crypto.result);
  const embedded = r.certificates;
  const untrusted = [...embedded, ...given];
  for (const [i, crl] of (crypto.kind === 'cms' ? crypto.result.crls : []).entries()) {
    try {
      source.addCrl(crl);
    } catch (e) {
      if (!(e instanceof PathParseError)) throw e;
      messages.push(`CRL #${i + 1} embedded in the signature ignored: ${e.message}`);
    }
  }

  // 2. Signature time stamps: the earliest one that holds is the proof of existence.
  let poe: Date | undefined;
  const timestamps: TimeStampSummary[] = [];
  for (const [i, token] of tokens.entries()) {
    const v =
      crypto.kind === 'cms'
        ? crypto.result.timeStamps[i]!
        : verifyTimeStampToken(token, {
            data: crypto.result.signatureTimeStampInputs[i],
            certificates: untrusted,
          });
    if (!v.valid || !v.genTime || !v.tsaCertificate) {
      timestamps.push({ time: v.genTime?.toISOString() ?? '', valid: false, message: v.message });
      continue;
    }
    const tsaPath = await validateCertificate({
      target: v.tsaCertificate,
      untrusted: [...v.certificates, ...untrusted],
      trust: input.trust,
      crls: input.crls,
      ocsp: input.ocsp,
      at: v.genTime,
      source,
    });
    const ok = tsaPath.indication === 'TOTAL_PASSED';
    timestamps.push({
      time: v.genTime.toISOString(),
      valid: ok,
      tsa: certificateFrom(v.tsaCertificate).subject.display,
      message: ok
        ? 'time stamp verified'
        : `the time-stamp authority's certificate did not validate: ${tsaPath.message}`,
    });
    if (ok && (!poe || v.genTime < poe)) poe = v.genTime;
  }
  const timestampTime = poe?.toISOString();

  // 3. The signer's certificate now (or at the requested time).
  const validate = (at: Date) =>
    validateCertificate({
      target: signerCert,
      untrusted,
      trust: input.trust,
      crls: input.crls,
      ocsp: input.ocsp,
      at,
      source,
    });
  let path = await validate(now);
  let longTermValidation: ValidationReport['longTermValidation'];

  // 4. Long-term evidence: judge at the time stamp when revocation or expiry came after it.
  if (path.indication !== 'TOTAL_PASSED' && poe && poe < now) {
    const target = path.revocation.find((x) => x.index === 0);
    const revokedAfterPoe =
      path.subIndication === 'REVOKED' && target?.revokedAt !== undefined && target.revokedAt > poe;
    const expiredAfterPoe =
      (path.subIndication === 'OUT_OF_BOUNDS_NO_POE' || path.subIndication === 'EXPIRED') &&
      new Date(signer.notAfter) > poe;
    if (revokedAfterPoe || expiredAfterPoe) {
      const atPoe = await validate(poe);
      const what = revokedAfterPoe
        ? `was revoked at ${target!.revokedAt!.toISOString()}`
        : `expired at ${signer.notAfter}`;
      if (atPoe.indication === 'TOTAL_PASSED') {
        messages.push(
          `The certificate ${what}, after the time stamp (${poe.toISOString()}); it was valid when the signature was made.`,
        );
        longTermValidation = {
          at: poe.toISOString(),
          reason: revokedAfterPoe ? 'revoked-after-timestamp' : 'expired-after-timestamp',
        };
        // A revocation stays in the report; after an expiry, the statuses at the time stamp are the
        // ones the answer rests on (those at the validation time come from CRLs that no longer
        // cover the certificate).
        path = revokedAfterPoe ? { ...atPoe, revocation: path.revocation } : atPoe;
      } else {
        // The time stamp is the point to judge at, so its answer is the answer (not "no proof of
        // existence", which would contradict the valid time stamp).
        messages.push(
          `The certificate ${what}, after the time stamp (${poe.toISOString()}), so it was judged at the time stamp, and did not pass there.`,
        );
        if (expiredAfterPoe && atPoe.revocation.some((x) => x.index === 0 && x.status === 'unknown'))
          messages.push(
            'CRLs issued after a certificate expired no longer list it: its status at the time stamp needs a CRL issued before the expiry.',
          );
        path = atPoe;
      }
    }
  }

  let indication = path.indication;
  let subIndication = path.subIndication;
  if (subIndication === 'OUT_OF_BOUNDS_NO_POE' && poe && poe > new Date(signer.notAfter)) {
    subIndication = 'EXPIRED'; // the proof of existence comes after the certificate's end
    indication = INDICATION_OF.EXPIRED;
  }
  if (indication !== 'TOTAL_PASSED') messages.push(path.message);
  for (const t of timestamps) if (!t.valid) messages.push(`time stamp ignored: ${t.message}`);
  messages.push(...path.warnings, ...path.fetchErrors);
  if (tokens.length === 0)
    messages.push('no signature time stamp: nothing proves when the signature was made');
  return finish({
    ...base,
    indication,
    subIndication,
    timestampTime,
    longTermValidation,
    signer,
    certificateChain: path.chain.map((der) => certificateFrom(der).subject.display),
    timestamps,
    revocation: path.revocation,
    messages,
    signedContent,
  });
}

/**
 * A per-call view of a long-lived source: CRLs and OCSP responses added during one call (given with
 * it, or embedded in its signature) stay with the call, so they neither pile up in the long-lived
 * source nor answer for other callers; fetching (online) goes through, and is cached by, the
 * long-lived source.
 */
class CallSource extends RevocationSource {
  constructor(private readonly shared: RevocationSource) {
    super({ online: shared.online, cache: shared.cache });
  }
  override crls() {
    return [...this.shared.crls(), ...super.crls()];
  }
  override ocspResponses() {
    return [...this.shared.ocspResponses(), ...super.ocspResponses()];
  }
  override fetchFor(items: readonly { cert: ParsedCertificate; issuer: ParsedCertificate }[]) {
    return this.shared.fetchFor(items);
  }
}

function finish(r: Omit<ValidationReport, 'summary'>): ValidationReport {
  return { ...r, summary: summaryOf(r) };
}

function formatOf(c: Crypto, timestamped: boolean): ValidationReport['format'] {
  if (c.kind === 'cms') {
    if (c.result.status !== 'valid') return 'CMS';
    const cades = c.result.signingCertificateAttribute !== undefined;
    return cades ? (timestamped ? 'CAdES-T' : 'CAdES-BES') : 'CMS';
  }
  if (c.result.status !== 'valid') return 'XML-DSig';
  return c.result.xades ? (timestamped ? 'XAdES-T' : 'XAdES-BES') : 'XML-DSig';
}

function xmlSigned(r: XmlVerificationResult): Buffer | undefined {
  return r.signedElement !== undefined ? Buffer.from(r.signedElement, 'utf8') : undefined;
}

function pemToDer(data: Buffer): Buffer {
  const head = data.subarray(0, 64).toString('latin1');
  if (!head.includes('-----BEGIN')) return data;
  const m = /-----BEGIN (?:PKCS7|CMS)-----([\s\S]*?)-----END (?:PKCS7|CMS)-----/.exec(
    data.toString('latin1'),
  );
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : data;
}

/** A Buffer over the same memory (no copy). */
const asBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);

// A verifier sees the same signers again and again; the summary of a certificate never changes.
const summaries = new BytesLru<SignerSummary>(4096);

function summarise(der: Buffer): SignerSummary {
  let s = summaries.get(der);
  if (!s) {
    s = summariseUncached(der);
    summaries.set(der, s);
  }
  return { ...s };
}

function summariseUncached(der: Buffer): SignerSummary {
  const x = new X509Certificate(der);
  const parsed = certificateFrom(der);
  const policies = parsed.policies?.map((p) => p.oid) ?? [];
  let basicFacts: BasicFacts | undefined;
  const san = parsed.extensions.get('2.5.29.17');
  if (san) {
    try {
      basicFacts = decodeBasicFactsSan(san.value) ?? undefined;
    } catch (e) {
      if (!(e instanceof BasicFactsError)) throw e;
    }
  }
  const kind =
    basicFacts || policies.includes('1.2.392.200149.8.5.1.1.20')
      ? 'sign'
      : policies.includes('1.2.392.200149.8.5.1.3.30')
        ? 'auth'
        : 'other';
  return {
    subject: x.subject.replace(/\n/g, ', '),
    issuer: x.issuer.replace(/\n/g, ', '),
    serial: serialHex(parsed.serial),
    notBefore: new Date(x.validFrom).toISOString(),
    notAfter: new Date(x.validTo).toISOString(),
    kind,
    basicFacts,
  };
}

const SENTENCES: Partial<Record<SubIndication | 'PASSED' | 'PASSED_LTV', { ja: string; en: string }>> = {
  PASSED: {
    ja: '署名は有効です。文書は署名後に改ざんされておらず、署名者の電子証明書は有効でした。',
    en: 'The signature is valid: the document has not been changed since it was signed, and the signer’s certificate was valid.',
  },
  PASSED_LTV: {
    ja: '署名は有効です。電子証明書はその後失効または期限切れとなりましたが、タイムスタンプにより署名が有効な時点で行われたことが証明されています。',
    en: 'The signature is valid: the certificate was revoked or expired later, but a time stamp proves the signature was made while it was valid.',
  },
  HASH_FAILURE: {
    ja: '署名は無効です。文書が署名後に変更されています。',
    en: 'The signature is not valid: the document was changed after it was signed.',
  },
  SIG_CRYPTO_FAILURE: {
    ja: '署名は無効です。署名値が電子証明書の鍵と一致しません。',
    en: 'The signature is not valid: the signature value does not match the certificate’s key.',
  },
  FORMAT_FAILURE: {
    ja: '署名を読み取れません。形式が正しくないか、許可されていない形式です。',
    en: 'The signature cannot be read: it is malformed or uses a form that is not accepted.',
  },
  REVOKED: {
    ja: '署名は無効です。署名者の電子証明書は失効しており、署名がそれより前に行われた証明がありません。',
    en: 'The signature is not valid: the signer’s certificate has been revoked and nothing proves the signature was made before that.',
  },
  REVOKED_NO_POE: {
    ja: '署名を確認できません。電子証明書は失効しており、署名がそれより前に行われたことを示すタイムスタンプがありません。',
    en: 'The signature cannot be confirmed: the certificate is revoked and no time stamp shows the signature came first.',
  },
  REVOKED_CA_NO_POE: {
    ja: '署名を確認できません。発行元の認証局の証明書が失効しています。',
    en: 'The signature cannot be confirmed: a certificate authority in the chain has been revoked.',
  },
  NOT_YET_VALID: {
    ja: '署名は無効です。電子証明書の有効期間がまだ始まっていません。',
    en: 'The signature is not valid: the certificate is not yet valid.',
  },
  EXPIRED: {
    ja: '署名を確認できません。電子証明書は署名を証明できる時点より前に有効期限が切れています。',
    en: 'The signature cannot be confirmed: the certificate expired before any proof of when the signature was made.',
  },
  OUT_OF_BOUNDS_NO_POE: {
    ja: '署名を確認できません。電子証明書の有効期限が切れており、有効期間内に署名されたことを示すタイムスタンプがありません。',
    en: 'The signature cannot be confirmed: the certificate has expired and no time stamp shows it was signed while valid.',
  },
  NO_CERTIFICATE_CHAIN_FOUND: {
    ja: '署名を確認できません。電子証明書が信頼できる認証局につながりません。',
    en: 'The signature cannot be confirmed: the certificate does not lead to a trusted certification authority.',
  },
  NO_SIGNING_CERTIFICATE_FOUND: {
    ja: '署名を確認できません。署名者の電子証明書が見つからないか、署名が示す証明書と一致しません。',
    en: 'The signature cannot be confirmed: the signer’s certificate is missing or does not match the one the signature names.',
  },
  SIGNED_DATA_NOT_FOUND: {
    ja: '署名を確認できません。署名の対象となる文書がありません。',
    en: 'The signature cannot be confirmed: the signed document is missing.',
  },
  TRY_LATER: {
    ja: '署名を確認できません。失効情報を取得できませんでした。しばらくしてから再度確認してください。',
    en: 'The signature cannot be confirmed yet: revocation information could not be obtained; try again later.',
  },
  REVOCATION_OUT_OF_BOUNDS: {
    ja: '署名を確認できません。利用できる失効情報が古すぎます。',
    en: 'The signature cannot be confirmed: the available revocation information is out of date.',
  },
  CHAIN_CONSTRAINTS_FAILURE: {
    ja: '署名を確認できません。証明書の連鎖が制約（用途・基本制約・ポリシー）を満たしません。',
    en: 'The signature cannot be confirmed: the certificate chain breaks a constraint (usage, basic constraints or policy).',
  },
  CRYPTO_CONSTRAINTS_FAILURE: {
    ja: '署名を確認できません。弱い、または許可されていない暗号アルゴリズムが使われています。',
    en: 'The signature cannot be confirmed: it uses a weak or disallowed algorithm.',
  },
};

function summaryOf(r: Omit<ValidationReport, 'summary'>): { ja: string; en: string } {
  if (r.indication === 'TOTAL_PASSED') {
    const s = r.longTermValidation ? SENTENCES.PASSED_LTV! : SENTENCES.PASSED!;
    const who = r.signer?.basicFacts?.name;
    return who ? { ja: `${s.ja}（署名者: ${who}）`, en: `${s.en} (signer: ${who})` } : s;
  }
  return (
    SENTENCES[r.subIndication ?? 'GENERIC'] ?? {
      ja: r.indication === 'TOTAL_FAILED' ? '署名は無効です。' : '署名を確認できません。',
      en:
        r.indication === 'TOTAL_FAILED'
          ? 'The signature is not valid.'
          : 'The signature cannot be confirmed.',
    }
  );
}
