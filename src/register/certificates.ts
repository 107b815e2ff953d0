// A resident's certificates as the resident and the counter see them: status, and for a revoked one
// why (the CRLReason, the register event that caused it) and what to do next, in Japanese and English.

import { type RevocationReason, reasonName } from '../authority/reasons.ts';
import type { Store } from '../store/db.ts';
import type { RegisterEventType, ResidentStatus } from './facts.ts';
import { getResident } from './register.ts';
import type { CertificateKind } from './slots.ts';

export interface Sentence {
  ja: string;
  en: string;
}

export interface ResidentCertificate {
  serial: string;
  kind: CertificateKind;
  issuedAt: Date;
  notBefore: Date;
  notAfter: Date;
  status: 'valid' | 'revoked' | 'expired';
  /** Holds the resident's Art. 6 slot of its kind (the current certificate). */
  current: boolean;
  revocation?: {
    reason: RevocationReason;
    revokedAt: Date;
    /** 'register-event' | 'superseded' | 'loss-report' | … when recorded. */
    cause?: string;
    /** The register event that caused the revocation. */
    event?: { id: number; type: RegisterEventType; effectiveDate: string };
  };
  /** What happened and what the resident can do, for a revoked or expired certificate. */
  message?: Sentence;
}

/** The resident's certificates, newest first. */
export async function residentCertificates(
  store: Store,
  residentId: string,
  now: Date = new Date(),
): Promise<ResidentCertificate[]> {
  const resident = await getResident(store, residentId);
  const rows = await store.db
    .selectFrom('certificates as c')
    .leftJoin('revocations as r', 'r.serial', 'c.serial')
    .leftJoin('revocation_causes as rc', 'rc.serial', 'c.serial')
    .leftJoin('register_events as e', 'e.id', 'rc.event_id')
    .leftJoin('certificate_slots as s', (j) =>
      j
        .onRef('s.resident_id', '=', 'c.resident_ref')
        .onRef('s.kind', '=', 'c.ca')
        .onRef('s.serial', '=', 'c.serial'),
    )
    .select([
      'c.serial',
      'c.ca',
      'c.issued_at',
      'c.not_before',
      'c.not_after',
      'r.reason',
      'r.revoked_at',
      'rc.cause',
      'e.id as event_id',
      'e.type as event_type',
      'e.effective_date as event_date',
      's.serial as slot_serial',
    ])
    .where('c.resident_ref', '=', residentId)
    .orderBy('c.issued_at', 'desc')
    .orderBy('c.serial')
    .execute();
  return rows.map((r) => {
    const kind = r.ca as CertificateKind;
    const cert: ResidentCertificate = {
      serial: r.serial,
      kind,
      issuedAt: new Date(r.issued_at),
      notBefore: new Date(r.not_before),
      notAfter: new Date(r.not_after),
      status: r.reason !== null ? 'revoked' : r.not_after <= now.getTime() ? 'expired' : 'valid',
      current: r.slot_serial !== null,
    };
    if (r.reason !== null && r.revoked_at !== null) {
      const reason = reasonName(r.reason);
      cert.revocation = { reason, revokedAt: new Date(r.revoked_at) };
      if (r.cause !== null) cert.revocation.cause = r.cause;
      if (r.event_id !== null && r.event_type !== null && r.event_date !== null)
        cert.revocation.event = { id: r.event_id, type: r.event_type, effectiveDate: r.event_date };
      cert.message = revocationSentence(
        kind,
        reason,
        cert.revocation.cause,
        r.event_type ?? undefined,
        resident?.status,
      );
    } else if (cert.status === 'expired') cert.message = expirySentence(kind, resident?.status);
    return cert;
  });
}

const KIND_JA: Record<CertificateKind, string> = { sign: '署名用電子証明書', auth: '利用者証明用電子証明書' };
const KIND_EN: Record<CertificateKind, string> = {
  sign: 'signature certificate',
  auth: 'user-authentication certificate',
};

const EVENT_CAUSE: Partial<Record<RegisterEventType, Sentence>> = {
  'moved-within': { ja: '転居により', en: 'because you moved' },
  'moved-in': { ja: '転入により', en: 'because you moved to another municipality' },
  'moved-out': { ja: '転出により', en: 'because you moved out' },
  'name-changed': { ja: '氏名の変更により', en: 'because your name changed' },
  'address-corrected': {
    ja: '住所の記載の修正により',
    en: 'because your address in the register was corrected',
  },
  'facts-corrected': {
    ja: '住民票の記載の修正により',
    en: 'because your entry in the resident register was corrected',
  },
  died: { ja: '死亡により', en: 'because the holder died' },
};

const REASON_JA: Partial<Record<RevocationReason, string>> = {
  keyCompromise: '紛失・盗難の届出により',
  superseded: '新しい証明書の発行により',
  unspecified: '本人の申請により',
  affiliationChanged: '住民票の記載事項の変更により',
  cessationOfOperation: '利用の終了により',
};

const REASON_EN: Partial<Record<RevocationReason, string>> = {
  keyCompromise: 'because it was reported lost or stolen',
  superseded: 'because a new certificate was issued',
  unspecified: 'at your request',
  affiliationChanged: 'because your entry in the resident register changed',
  cessationOfOperation: 'because its use ended',
};

/** What the resident can do next, by their register status. */
function nextStep(status: ResidentStatus | undefined): Sentence {
  if (status === 'resident')
    return {
      ja: '市区町村窓口で新しい証明書の発行を受けられます。',
      en: 'You can get a new one at your municipal counter.',
    };
  if (status === 'moved-out')
    return {
      ja: '転入の届出の後、市区町村窓口で新しい証明書の発行を受けられます。',
      en: 'After you register your move-in, you can get a new one at the municipal counter.',
    };
  return { ja: '', en: '' };
}

export function revocationSentence(
  kind: CertificateKind,
  reason: RevocationReason,
  cause: string | undefined,
  eventType: RegisterEventType | undefined,
  status: ResidentStatus | undefined,
): Sentence {
  const byEvent = eventType ? EVENT_CAUSE[eventType] : undefined;
  const why: Sentence = byEvent ?? {
    ja: REASON_JA[reason] ?? `失効の理由（${reason}）により`,
    en: REASON_EN[reason] ?? `(reason: ${reason})`,
  };
  const first: Sentence = {
    ja: `${why.ja}${KIND_JA[kind]}は失効しました。`,
    en: `Your ${KIND_EN[kind]} was revoked ${why.en}.`,
  };
  // After a death, or when a newer certificate replaced this one, there is nothing to apply for.
  const next =
    eventType === 'died' || reason === 'superseded' || cause === 'superseded' ? undefined : nextStep(status);
  return {
    ja: next?.ja ? `${first.ja}${next.ja}` : first.ja,
    en: next?.en ? `${first.en} ${next.en}` : first.en,
  };
}

function expirySentence(kind: CertificateKind, status: ResidentStatus | undefined): Sentence {
  const next = nextStep(status);
  return {
    ja: `${KIND_JA[kind]}の有効期間が満了しました。${next.ja}`,
    en: `Your ${KIND_EN[kind]} has expired.${next.en ? ` ${next.en}` : ''}`,
  };
}
