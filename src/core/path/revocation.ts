// Revocation status of one certificate of a path (RFC 5280 6.3 for CRLs, RFC 6960 for OCSP).
//
// CRLs: for each distribution point of the certificate (then for a distribution point named after
// the certificate issuer, which covers CRLs not found through a distribution point) the complete
// CRLs of the right issuer are tried: scope (issuingDistributionPoint against the distribution
// point, onlyContainsUserCerts/CACerts/AttributeCerts), unrecognised critical extensions, validity
// at the validation time, the signer (the issuing CA, or another certificate of the CRL issuer with
// its own validated path to the same trust anchor, cRLSign), a matching delta CRL, then the entry.
// Reason masks accumulate until all reasons are covered (partitioned CRLs, onlySomeReasons).
//
// OCSP: a BasicOCSPResponse signed by the issuing CA or by a responder certificate it issued with
// id-kp-OCSPSigning, matching CertID, fresh at the validation time.

import { createHash } from 'node:crypto';
import type { CertPool } from './build.ts';
import type { PkiCache } from './cache.ts';
import { type DistributionPoint, describeCertificate, KU, type ParsedCertificate } from './certificate.ts';
import type { ParsedCrl } from './crl.ts';
import { appendRdn, type GeneralName, generalNamesMatch } from './name.ts';
import { type BasicResponse, OCSP_HASHES, type ParsedOcspResponse, type SingleResponse } from './ocsp.ts';
import { PKIX } from './oids.ts';
import { verifySignature } from './signature.ts';

export const REASON_NAMES: Readonly<Record<number, string>> = {
  0: 'unspecified',
  1: 'keyCompromise',
  2: 'cACompromise',
  3: 'affiliationChanged',
  4: 'superseded',
  5: 'cessationOfOperation',
  6: 'certificateHold',
  8: 'removeFromCRL',
  9: 'privilegeWithdrawn',
  10: 'aACompromise',
};

/** ReasonFlags bits 1 (keyCompromise) to 8 (aACompromise). */
const ALL_REASONS = 0x1fe;
const REMOVE_FROM_CRL = 8;

export interface RevocationInfo {
  /** Where the status came from. */
  source: 'crl' | 'ocsp' | 'none';
  status: 'good' | 'revoked' | 'unknown' | 'skipped';
  revokedAt?: Date;
  /** CRLReason name, e.g. keyCompromise. */
  reason?: string;
  reasonCode?: number;
  /** cRLNumber of the complete CRL used (decimal). */
  crlNumber?: string;
  /** cRLNumber of the delta CRL used with it. */
  deltaCrlNumber?: string;
  /** thisUpdate/nextUpdate of the CRL or single response used. */
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** producedAt of the OCSP response used. */
  producedAt?: Date;
  /** For status unknown: no data found, only stale data, or data that could not be used. */
  problem?: 'missing' | 'stale' | 'unusable';
  message: string;
}

export interface SignerKey {
  spki: Buffer;
  hash: string;
}

export interface RevocationContext {
  at: Date;
  cache: PkiCache;
  pool: CertPool;
  crlsByIssuer: ReadonlyMap<string, readonly ParsedCrl[]>;
  ocsp: readonly ParsedOcspResponse[];
  useDeltas: boolean;
  /** Whether a missing status is acceptable (then signer paths accept unknown statuses too). */
  revocationRequired: boolean;
  /** The key of a certificate, with DSA parameters inherited along the path where needed. */
  keyOf(c: ParsedCertificate): SignerKey;
  /** Validates a CRL or OCSP signer's own path to the current trust anchor (structure, time, revocation). */
  validateSigner(signer: ParsedCertificate): { ok: true } | { ok: false; reason: string };
  /** Certificates whose status is being determined (breaks cycles through signer paths). */
  inProgress: Set<string>;
  memo: Map<string, RevocationInfo>;
  /** Certificates whose status stayed unknown, with their issuers (for fetching more data). */
  unresolved: Map<string, { cert: ParsedCertificate; issuer: ParsedCertificate }>;
}

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');
const label = (c: ParsedCertificate) => `"${describeCertificate(c)}"`;
// Built for every status a CRL answers: worked out once per (cached, immutable) CRL.
const crlLabels = new WeakMap<ParsedCrl, string>();
const crlLabel = (crl: ParsedCrl) => {
  let l = crlLabels.get(crl);
  if (l === undefined) {
    l = `CRL${crl.crlNumber !== undefined ? ` #${crl.crlNumber}` : ''} of "${crl.issuer.display}" (thisUpdate ${iso(crl.thisUpdate)})`;
    crlLabels.set(crl, l);
  }
  return l;
};

/** The revocation status of `cert`, issued by `issuer` (the next certificate of the path). */
export function checkRevocation(
  ctx: RevocationContext,
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
): RevocationInfo {
  const memoKey = `${cert.hash}|${issuer.hash}`;
  const hit = ctx.memo.get(memoKey);
  if (hit) return hit;
  if (ctx.inProgress.has(cert.hash))
    return {
      source: 'none',
      status: 'unknown',
      problem: 'unusable',
      message: `the status of ${label(cert)} depends on itself`,
    };
  ctx.inProgress.add(cert.hash);
  let info: RevocationInfo;
  try {
    const notes: string[] = [];
    const fromOcsp = ocspStatus(ctx, cert, issuer, notes);
    info =
      fromOcsp && fromOcsp.status !== 'unknown'
        ? fromOcsp
        : (crlStatus(ctx, cert, issuer, notes, fromOcsp?.problem) ?? unknownFrom(cert, notes));
  } finally {
    ctx.inProgress.delete(cert.hash);
  }
  if (info.status === 'good' || info.status === 'revoked') ctx.memo.set(memoKey, info);
  else ctx.unresolved.set(cert.hash, { cert, issuer });
  return info;
}

function unknownFrom(cert: ParsedCertificate, notes: string[]): RevocationInfo {
  return {
    source: 'none',
    status: 'unknown',
    problem: 'missing',
    message: notes.length
      ? notes.join('; ')
      : `no CRL or OCSP response for ${label(cert)} (issuer "${cert.issuer.display}") was available`,
  };
}

// ---------------------------------------------------------------------------------------------
// CRLs

interface DpContext {
  dp: DistributionPoint;
  /** The distribution point built from the certificate issuer (CRLs found without a DP). */
  synthetic: boolean;
}

function crlStatus(
  ctx: RevocationContext,
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
  notes: string[],
  ocspProblem: RevocationInfo['problem'],
): RevocationInfo | undefined {
  const at = ctx.at.getTime();
  let mask = 0;
  let sawStale = ocspProblem === 'stale';
  let sawCandidate = false;
  let revoked: RevocationInfo | undefined;
  let lastUsed: { crl: ParsedCrl; delta?: ParsedCrl } | undefined;
  const tried = new Set<string>();

  const dps: DpContext[] = (cert.crlDistributionPoints ?? []).map((dp) => ({ dp, synthetic: false }));
  dps.push({
    dp: {
      fullName: [{ type: 'directoryName', name: cert.issuer }, ...(cert.issuerAltNames ?? [])],
    },
    synthetic: true,
  });

  for (const { dp, synthetic } of dps) {
    if (revoked || mask === ALL_REASONS) break;
    for (const crl of completeCrlsFor(ctx, dp, cert)) {
      if (revoked || mask === ALL_REASONS) break;
      sawCandidate = true;
      const r = applyCrl(ctx, crl, dp, cert, issuer, mask);
      if (r.kind === 'skip') continue;
      if (r.kind === 'reject') {
        if (r.stale) sawStale = true;
        const key = `${crl.hash}:${r.reason}`;
        if (!tried.has(key)) {
          tried.add(key);
          notes.push(
            `${crlLabel(crl)} cannot be used${synthetic ? '' : ' for this distribution point'}: ${r.reason}`,
          );
        }
        continue;
      }
      mask |= r.interim;
      lastUsed = { crl, ...(r.delta ? { delta: r.delta } : {}) };
      const e = r.entry;
      if (e && e.reasonCode !== REMOVE_FROM_CRL) {
        if (e.revokedAt.getTime() <= at) {
          revoked = {
            source: 'crl',
            status: 'revoked',
            revokedAt: e.revokedAt,
            ...(e.reasonCode !== undefined
              ? { reasonCode: e.reasonCode, reason: REASON_NAMES[e.reasonCode] ?? String(e.reasonCode) }
              : {}),
            ...crlFields(e.from, crl, r.delta),
            message: `${label(cert)} is revoked since ${iso(e.revokedAt)}${
              e.reasonCode !== undefined ? ` (${REASON_NAMES[e.reasonCode] ?? e.reasonCode})` : ''
            } according to ${crlLabel(e.from)}`,
          };
        } else {
          notes.push(
            `${crlLabel(e.from)} lists ${label(cert)} as revoked only from ${iso(e.revokedAt)}, after the validation time`,
          );
        }
      }
    }
  }
  if (revoked) return revoked;
  if (mask === ALL_REASONS && lastUsed) {
    return {
      source: 'crl',
      status: 'good',
      ...crlFields(lastUsed.crl, lastUsed.crl, lastUsed.delta),
      message: `${label(cert)} is not on ${crlLabel(lastUsed.crl)}${
        lastUsed.delta ? ` nor on its delta CRL #${lastUsed.delta.crlNumber}` : ''
      }`,
    };
  }
  if (mask !== 0)
    notes.push(`the usable CRLs for ${label(cert)} do not cover all revocation reasons (onlySomeReasons)`);
  if (!sawCandidate && !ocspProblem) return undefined;
  if (!sawCandidate)
    notes.push(`no CRL of the issuer "${cert.issuer.display}" of ${label(cert)} was available`);
  return {
    source: 'none',
    status: 'unknown',
    problem: sawStale ? 'stale' : mask !== 0 || sawCandidate || ocspProblem ? 'unusable' : 'missing',
    message: notes.join('; '),
  };
}

function crlFields(
  from: ParsedCrl,
  crl: ParsedCrl,
  delta: ParsedCrl | undefined,
): Pick<RevocationInfo, 'crlNumber' | 'deltaCrlNumber' | 'thisUpdate' | 'nextUpdate'> {
  const src = delta && from === delta ? delta : crl;
  return {
    ...(crl.crlNumber !== undefined ? { crlNumber: crl.crlNumber.toString() } : {}),
    ...(delta?.crlNumber !== undefined ? { deltaCrlNumber: delta.crlNumber.toString() } : {}),
    thisUpdate: src.thisUpdate,
    ...(src.nextUpdate ? { nextUpdate: src.nextUpdate } : {}),
  };
}

/** Complete CRLs that may serve a distribution point, newest first. */
function completeCrlsFor(
  ctx: RevocationContext,
  dp: DistributionPoint,
  cert: ParsedCertificate,
): ParsedCrl[] {
  const keys: string[] = [];
  if (dp.crlIssuer) {
    for (const g of dp.crlIssuer) if (g.type === 'directoryName') keys.push(g.name.key);
  } else keys.push(cert.issuer.key);
  const out: ParsedCrl[] = [];
  for (const k of new Set(keys))
    for (const crl of ctx.crlsByIssuer.get(k) ?? []) if (crl.baseCrlNumber === undefined) out.push(crl);
  return out.sort((a, b) => b.thisUpdate.getTime() - a.thisUpdate.getTime());
}

type CrlUse =
  | { kind: 'skip' }
  | { kind: 'reject'; reason: string; stale?: boolean }
  | {
      kind: 'use';
      interim: number;
      delta?: ParsedCrl;
      entry?: { from: ParsedCrl; revokedAt: Date; reasonCode?: number };
    };

function dpNames(dp: DistributionPoint, cert: ParsedCertificate): GeneralName[] | undefined {
  if (dp.fullName) return dp.fullName;
  if (dp.relativeName) {
    const base = dp.crlIssuer?.find((g) => g.type === 'directoryName');
    const baseName = base?.type === 'directoryName' ? base.name : cert.issuer;
    return [{ type: 'directoryName', name: appendRdn(baseName, dp.relativeName) }];
  }
  return undefined;
}

function idpNames(crl: ParsedCrl): GeneralName[] | undefined {
  const idp = crl.idp!;
  if (idp.fullName) return idp.fullName;
  if (idp.relativeName) return [{ type: 'directoryName', name: appendRdn(crl.issuer, idp.relativeName) }];
  return undefined;
}

const anyMatch = (a: readonly GeneralName[], b: readonly GeneralName[]) =>
  a.some((x) => b.some((y) => generalNamesMatch(x, y)));

function applyCrl(
  ctx: RevocationContext,
  crl: ParsedCrl,
  dp: DistributionPoint,
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
  mask: number,
): CrlUse {
  const at = ctx.at.getTime();
  // (b)(1) issuer
  if (dp.crlIssuer) {
    if (!crl.idp?.indirectCRL)
      return {
        kind: 'reject',
        reason: 'the distribution point names a cRLIssuer but the CRL is not indirect',
      };
  } else if (crl.issuer.key !== cert.issuer.key) return { kind: 'skip' };
  // (b)(2) scope
  const idp = crl.idp;
  if (idp) {
    const names = idpNames(crl);
    if (names) {
      const mine = dpNames(dp, cert);
      if (mine) {
        if (!anyMatch(names, mine))
          return {
            kind: 'reject',
            reason: 'its issuingDistributionPoint does not match the distribution point',
          };
      } else if (dp.crlIssuer && !anyMatch(names, dp.crlIssuer))
        return { kind: 'reject', reason: 'its issuingDistributionPoint does not match the cRLIssuer' };
    }
    const isCa = cert.basicConstraints?.ca === true;
    if (idp.onlyContainsUserCerts && isCa)
      return { kind: 'reject', reason: 'it covers only end-entity certificates (onlyContainsUserCerts)' };
    if (idp.onlyContainsCACerts && !isCa)
      return { kind: 'reject', reason: 'it covers only CA certificates (onlyContainsCACerts)' };
    if (idp.onlyContainsAttributeCerts)
      return { kind: 'reject', reason: 'it covers only attribute certificates (onlyContainsAttributeCerts)' };
  }
  if (crl.unknownCriticalExtensions.length)
    return {
      kind: 'reject',
      reason: `it has an unrecognised critical extension ${crl.unknownCriticalExtensions.join(', ')}`,
    };
  if (crl.unknownCriticalEntryExtensions.length)
    return {
      kind: 'reject',
      reason: `it has an unrecognised critical entry extension ${crl.unknownCriticalEntryExtensions.join(', ')}`,
    };
  // (d), (e) reasons
  const interim = ALL_REASONS & (idp?.onlySomeReasons ?? ALL_REASONS) & (dp.reasons ?? ALL_REASONS);
  if ((interim & ~mask) === 0) return { kind: 'skip' };
  // validity at the validation time
  if (crl.nextUpdate && crl.nextUpdate.getTime() < at)
    return {
      kind: 'reject',
      stale: true,
      reason: `it expired: nextUpdate ${iso(crl.nextUpdate)} is before the validation time ${iso(ctx.at)}`,
    };
  if (crl.thisUpdate.getTime() > at && cert.notAfter.getTime() < crl.thisUpdate.getTime())
    return {
      kind: 'reject',
      reason: 'it was issued after the validation time, when the certificate had already expired',
    };
  // (f), (g) signer
  const signer = crlSigner(ctx, crl, cert, issuer);
  if (!signer.ok) return { kind: 'reject', reason: signer.reason };
  // (c), (h) delta
  const delta = ctx.useDeltas ? findDelta(ctx, crl, cert, signer.key) : undefined;
  // (i), (j)
  let entry: { from: ParsedCrl; revokedAt: Date; reasonCode?: number } | undefined;
  for (const from of delta ? [delta, crl] : [crl]) {
    let e: ReturnType<ParsedCrl['find']>;
    try {
      e = from.find(cert.serial, cert.issuer);
    } catch (err) {
      return {
        kind: 'reject',
        reason: `its entry for the certificate is malformed: ${(err as Error).message}`,
      };
    }
    if (e) {
      entry = {
        from,
        revokedAt: e.revocationDate,
        ...(e.reason !== undefined ? { reasonCode: e.reason } : {}),
      };
      break;
    }
  }
  return { kind: 'use', interim, ...(delta ? { delta } : {}), ...(entry ? { entry } : {}) };
}

type SignerResult = { ok: true; key: SignerKey } | { ok: false; reason: string };

function crlSigner(
  ctx: RevocationContext,
  crl: ParsedCrl,
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
): SignerResult {
  const reasons: string[] = [];
  const verifies = (c: ParsedCertificate) => {
    const key = ctx.keyOf(c);
    return {
      key,
      v: verifySignature(
        crl.signatureAlgorithm,
        key.spki,
        key.hash,
        crl.tbs,
        crl.signature,
        crl.hash,
        ctx.cache,
      ),
    };
  };
  if (crl.issuer.key === issuer.subject.key) {
    const { key, v } = verifies(issuer);
    if (v.ok) {
      if (issuer.keyUsage === undefined || issuer.keyUsage & KU.cRLSign) return { ok: true, key };
      reasons.push(`the issuing CA ${label(issuer)} signed it but its keyUsage does not include cRLSign`);
    } else if (v.reason !== 'the signature does not verify') reasons.push(v.reason ?? 'bad signature');
  }
  const candidates = [
    ...(ctx.pool.anchorsBySubject.get(crl.issuer.key) ?? []),
    ...(ctx.pool.bySubject.get(crl.issuer.key) ?? []),
  ].filter((c) => c.hash !== issuer.hash);
  const aki = crl.authorityKeyId;
  candidates.sort(
    (a, b) => Number(!!aki && !!b.subjectKeyId?.equals(aki)) - Number(!!aki && !!a.subjectKeyId?.equals(aki)),
  );
  for (const s of candidates) {
    const { key, v } = verifies(s);
    if (!v.ok) continue;
    if (s.keyUsage !== undefined && !(s.keyUsage & KU.cRLSign)) {
      reasons.push(`its signer ${label(s)} lacks cRLSign in keyUsage`);
      continue;
    }
    if (ctx.inProgress.has(s.hash)) {
      // A CRL that reports on the certificate of its own signer (an indirect CRL issuer listing
      // itself, PKITS 4.14.30): that certificate's path is being validated by the caller.
      if (s.hash === cert.hash) return { ok: true, key };
      reasons.push(`its signer ${label(s)} would need this CRL to check its own status`);
      continue;
    }
    const r = ctx.validateSigner(s);
    if (r.ok) return { ok: true, key };
    reasons.push(`its signer ${label(s)} is not valid: ${r.reason}`);
  }
  if (reasons.length === 0) {
    reasons.push(
      crl.issuer.key === issuer.subject.key
        ? `its signature does not verify with the key of ${label(issuer)} (nor of any other certificate of the CRL issuer)`
        : `no certificate of its issuer "${crl.issuer.display}" verifies its signature`,
    );
  }
  return { ok: false, reason: reasons.join('; ') };
}

/** The newest usable delta CRL for a complete CRL (same issuer, scope and signer; base not newer). */
function findDelta(
  ctx: RevocationContext,
  complete: ParsedCrl,
  cert: ParsedCertificate,
  key: SignerKey,
): ParsedCrl | undefined {
  if (complete.crlNumber === undefined) return undefined;
  const at = ctx.at.getTime();
  let best: ParsedCrl | undefined;
  for (const d of ctx.crlsByIssuer.get(complete.issuer.key) ?? []) {
    if (d.baseCrlNumber === undefined || d.baseCrlNumber > complete.crlNumber) continue;
    if (d.crlNumber !== undefined && d.crlNumber <= complete.crlNumber) continue;
    const sameScope = complete.idp && d.idp ? complete.idp.der.equals(d.idp.der) : !complete.idp && !d.idp;
    if (!sameScope) continue;
    if (complete.authorityKeyId && d.authorityKeyId && !complete.authorityKeyId.equals(d.authorityKeyId))
      continue;
    if (d.unknownCriticalExtensions.some((o) => o !== PKIX.deltaCRLIndicator)) continue;
    if (d.unknownCriticalEntryExtensions.length) continue;
    if (d.nextUpdate && d.nextUpdate.getTime() < at) continue;
    if (d.thisUpdate.getTime() > at && cert.notAfter.getTime() < d.thisUpdate.getTime()) continue;
    if (!verifySignature(d.signatureAlgorithm, key.spki, key.hash, d.tbs, d.signature, d.hash, ctx.cache).ok)
      continue;
    if (!best || (d.crlNumber ?? 0n) > (best.crlNumber ?? 0n)) best = d;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// OCSP

function issuerIdHashes(issuer: ParsedCertificate, alg: string): { name: Buffer; key: Buffer } {
  return {
    name: createHash(alg).update(issuer.subject.der).digest(),
    key: createHash(alg).update(issuer.publicKey).digest(),
  };
}

function ocspStatus(
  ctx: RevocationContext,
  cert: ParsedCertificate,
  issuer: ParsedCertificate,
  notes: string[],
): RevocationInfo | undefined {
  const at = ctx.at.getTime();
  const matches: { b: BasicResponse; s: SingleResponse }[] = [];
  const hashes = new Map<string, { name: Buffer; key: Buffer }>();
  for (const resp of ctx.ocsp) {
    if (!resp.basic) continue;
    for (const s of resp.basic.responses) {
      const alg = OCSP_HASHES.get(s.hashAlgorithm);
      if (!alg || !s.serial.equals(cert.serial)) continue;
      let h = hashes.get(alg);
      if (!h) {
        h = issuerIdHashes(issuer, alg);
        hashes.set(alg, h);
      }
      if (s.issuerNameHash.equals(h.name) && s.issuerKeyHash.equals(h.key))
        matches.push({ b: resp.basic, s });
    }
  }
  if (matches.length === 0) return undefined;
  let best: { b: BasicResponse; s: SingleResponse } | undefined;
  let revoked: { b: BasicResponse; s: SingleResponse } | undefined;
  let stale = false;
  for (const m of matches) {
    const { b, s } = m;
    const what = `the OCSP response produced at ${iso(b.producedAt)}`;
    if (b.unknownCriticalExtensions.length || s.unknownCriticalExtensions.length) {
      notes.push(`${what} has an unrecognised critical extension`);
      continue;
    }
    if (s.nextUpdate && s.nextUpdate.getTime() < at) {
      stale = true;
      notes.push(
        `${what} expired: nextUpdate ${iso(s.nextUpdate)} is before the validation time ${iso(ctx.at)}`,
      );
      continue;
    }
    if (!s.nextUpdate && Math.abs(at - s.thisUpdate.getTime()) > 24 * 3600_000) {
      stale = true;
      notes.push(`${what} has no nextUpdate and its thisUpdate is more than a day from the validation time`);
      continue;
    }
    if (s.thisUpdate.getTime() > at && cert.notAfter.getTime() < s.thisUpdate.getTime()) {
      notes.push(`${what} was produced after the certificate had expired`);
      continue;
    }
    const signer = ocspSigner(ctx, b, issuer);
    if (!signer.ok) {
      notes.push(`${what} cannot be used: ${signer.reason}`);
      continue;
    }
    if (s.status === 'unknown') {
      notes.push(`${what} says the responder does not know ${label(cert)}`);
      continue;
    }
    if (s.status === 'revoked' && s.revokedAt && s.revokedAt.getTime() <= at) {
      if (!revoked) revoked = m;
      continue;
    }
    if (!best || s.thisUpdate > best.s.thisUpdate) best = m;
  }
  const fields = (m: { b: BasicResponse; s: SingleResponse }) => ({
    producedAt: m.b.producedAt,
    thisUpdate: m.s.thisUpdate,
    ...(m.s.nextUpdate ? { nextUpdate: m.s.nextUpdate } : {}),
  });
  if (revoked) {
    const s = revoked.s;
    return {
      source: 'ocsp',
      status: 'revoked',
      revokedAt: s.revokedAt!,
      ...(s.reason !== undefined
        ? { reasonCode: s.reason, reason: REASON_NAMES[s.reason] ?? String(s.reason) }
        : {}),
      ...fields(revoked),
      message: `${label(cert)} is revoked since ${iso(s.revokedAt!)}${
        s.reason !== undefined ? ` (${REASON_NAMES[s.reason] ?? s.reason})` : ''
      } according to the OCSP response produced at ${iso(revoked.b.producedAt)}`,
    };
  }
  if (best)
    return {
      source: 'ocsp',
      status: 'good',
      ...fields(best),
      message: `${label(cert)} is good according to the OCSP response produced at ${iso(best.b.producedAt)}`,
    };
  return {
    source: 'none',
    status: 'unknown',
    problem: stale ? 'stale' : 'unusable',
    message: notes.join('; '),
  };
}

function ocspSigner(
  ctx: RevocationContext,
  b: BasicResponse,
  issuer: ParsedCertificate,
): { ok: true } | { ok: false; reason: string } {
  const rid = b.responderId;
  const keyHash = (c: ParsedCertificate) => createHash('sha1').update(c.publicKey).digest();
  const named = (c: ParsedCertificate) =>
    'byKey' in rid ? rid.byKey.equals(keyHash(c)) : rid.byName.key === c.subject.key;
  const verifyWith = (key: SignerKey) =>
    verifySignature(b.signatureAlgorithm, key.spki, key.hash, b.tbs, b.signature, b.hash, ctx.cache);
  if (named(issuer)) {
    const v = verifyWith(ctx.keyOf(issuer));
    return v.ok ? { ok: true } : { ok: false, reason: `signed by the CA itself but ${v.reason}` };
  }
  // The responder certificate normally travels in the response; else look among those given.
  const candidates = b.certs.filter(named);
  if (candidates.length === 0) {
    const byName = 'byName' in rid ? ctx.pool.bySubject.get(rid.byName.key) : undefined;
    const pool = byName ?? [...ctx.pool.bySubject.values()].flat().slice(0, 256);
    candidates.push(...pool.filter(named).slice(0, 16));
  }
  const reasons: string[] = [];
  const seen = new Set<string>();
  for (const r of candidates) {
    if (seen.has(r.hash) || !named(r)) continue;
    seen.add(r.hash);
    if (r.issuer.key !== issuer.subject.key) {
      reasons.push(`the responder certificate ${label(r)} was not issued by the certificate's CA`);
      continue;
    }
    const ik = ctx.keyOf(issuer);
    if (!verifySignature(r.signatureAlgorithm, ik.spki, ik.hash, r.tbs, r.signature, r.hash, ctx.cache).ok) {
      reasons.push(`the responder certificate ${label(r)} is not signed by the certificate's CA`);
      continue;
    }
    if (!r.extKeyUsage?.includes(PKIX.ocspSigning)) {
      reasons.push(`the responder certificate ${label(r)} lacks id-kp-OCSPSigning`);
      continue;
    }
    const when = b.producedAt.getTime();
    if (r.notBefore.getTime() > when || r.notAfter.getTime() < when) {
      reasons.push(`the responder certificate ${label(r)} was not valid when the response was produced`);
      continue;
    }
    if (!r.ocspNoCheck) {
      const st = checkRevocation(ctx, r, issuer);
      if (st.status === 'revoked' || (st.status !== 'good' && ctx.revocationRequired)) {
        reasons.push(`the responder certificate ${label(r)} has status ${st.status}: ${st.message}`);
        continue;
      }
    }
    const v = verifyWith({ spki: r.spki, hash: r.spkiHash });
    if (v.ok) return { ok: true };
    reasons.push(`its signature does not verify with the responder certificate ${label(r)}`);
  }
  return {
    ok: false,
    reason: reasons.length ? reasons.join('; ') : 'no authorised responder certificate was found for it',
  };
}
