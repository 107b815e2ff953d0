// Certification path validation (RFC 5280 section 6.1) with revocation checking (6.3), reported in
// the vocabulary of core/report.ts.
//
// validatePath builds candidate paths from the target to a trust anchor and validates them in turn;
// the first that passes is the answer, otherwise the most telling failure. Validation of one path:
//
//   1. structure, from the trust anchor down (6.1.3-6.1.5): signatures, name chaining, name
//      constraints, certificate policies, basicConstraints and path length, keyUsage keyCertSign,
//      unrecognised critical extensions, the caller's key usage requirements on the target. The first
//      failure ends the path.
//   2. time: every certificate valid at the validation time.
//   3. revocation of every certificate but the trust anchor.
//
// Failures are mapped as EU DSS does: a revoked target is TOTAL_FAILED/REVOKED and a target not yet
// valid TOTAL_FAILED/NOT_YET_VALID; everything else is INDETERMINATE (a revoked CA:
// REVOKED_CA_NO_POE, an expired certificate: OUT_OF_BOUNDS_NO_POE, constraints:
// CHAIN_CONSTRAINTS_FAILURE, bad signatures: CERTIFICATE_CHAIN_GENERAL_FAILURE, no path:
// NO_CERTIFICATE_CHAIN_FOUND, no revocation data: TRY_LATER, only stale data:
// REVOCATION_OUT_OF_BOUNDS).
//
// Pure: no I/O and no clock (the validation time is an input). Parsed objects and signature checks
// are cached (see cache.ts), so validating many certificates under the same CAs and CRLs is cheap.

import { INDICATION_OF, type Indication, type SubIndication } from '../report.ts';
import { PathParseError } from './asn1.ts';
import { type BuildReport, buildPaths, type CertPool, makePool } from './build.ts';
import { defaultCache, type PkiCache } from './cache.ts';
import {
  describeCertificate,
  type KeyUsageName,
  KU,
  type ParsedCertificate,
  parseCertificate,
} from './certificate.ts';
import { type ParsedCrl, parseCrl } from './crl.ts';
import { addNameConstraints, checkNameConstraints, initialNameConstraints } from './name-constraints.ts';
import { type ParsedOcspResponse, parseOcspResponse } from './ocsp.ts';
import { PKIX } from './oids.ts';
import { ANY_POLICY, PolicyGraph } from './policy.ts';
import {
  checkRevocation,
  type RevocationContext,
  type RevocationInfo,
  type SignerKey,
} from './revocation.ts';
import { sha256Hex, spkiWithParameters, verifySignature } from './signature.ts';

export type CertificateInput = Uint8Array | ParsedCertificate;
export type CrlInput = Uint8Array | ParsedCrl;
export type OcspInput = Uint8Array | ParsedOcspResponse;

export interface PathValidationOptions {
  /** Missing revocation data fails the validation (INDETERMINATE/TRY_LATER). Default true. */
  revocationRequired?: boolean;
  /** Check revocation at all. Default true; when false every status is 'skipped'. */
  checkRevocation?: boolean;
  /** user-initial-policy-set; default [anyPolicy]. */
  initialPolicySet?: readonly string[];
  /** initial-explicit-policy; default false. */
  requireExplicitPolicy?: boolean;
  /** initial-policy-mapping-inhibit; default false. */
  inhibitPolicyMapping?: boolean;
  /** initial-any-policy-inhibit; default false. */
  inhibitAnyPolicy?: boolean;
  /** Key usages the target must allow (when it has a keyUsage extension, it must have all of them). */
  keyUsage?: readonly KeyUsageName[];
  /** Key purposes the target must allow (when it has extKeyUsage, each or anyExtendedKeyUsage). */
  extendedKeyUsage?: readonly string[];
  /** Most certificates in a path, trust anchor excluded. Default 10. */
  maxPathLength?: number;
  /** Use delta CRLs found among the CRLs. Default true. */
  useDeltaCrls?: boolean;
  cache?: PkiCache;
}

export interface PathValidationInput {
  target: CertificateInput;
  /** Untrusted certificates that may be intermediates (order does not matter). */
  intermediates?: readonly CertificateInput[];
  trustAnchors: readonly CertificateInput[];
  crls?: readonly CrlInput[];
  ocspResponses?: readonly OcspInput[];
  /** The validation time. */
  at: Date;
  options?: PathValidationOptions;
}

export interface CertificateRevocation extends RevocationInfo {
  /** Index of the certificate in `chain`. */
  index: number;
  subject: string;
}

export interface PathValidationResult {
  indication: Indication;
  subIndication?: SubIndication;
  /** Certificates (DER) from the target to the trust anchor; just the target when no path was found. */
  chain: Buffer[];
  /** Index in `chain` of the certificate that failed. */
  failedAt?: number;
  /** What happened, in English: which certificate, which rule. */
  message: string;
  /** Revocation status of each certificate of the chain except the trust anchor (index-aligned). */
  revocation: CertificateRevocation[];
  validationTime: Date;
  /** The user-constrained policy set (anyPolicy when any is acceptable), when the path passed. */
  policies?: string[];
  /** Inputs that could not be parsed and were ignored. */
  warnings: string[];
  /** Certificates whose revocation status stayed unknown, with their issuers: what to fetch next. */
  unresolved: { cert: ParsedCertificate; issuer: ParsedCertificate }[];
}

// ---------------------------------------------------------------------------------------------
// Parsing with the cache

const isParsed = (x: unknown): x is { hash: string; der: Buffer } =>
  typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && 'hash' in x && 'der' in x;

export function certificateFrom(input: CertificateInput, cache: PkiCache = defaultCache): ParsedCertificate {
  if (isParsed(input)) return input as ParsedCertificate;
  const hit = cache.certificates.get(input) as ParsedCertificate | undefined;
  if (hit) return hit;
  const c = parseCertificate(input);
  cache.certificates.set(input, c, c.der);
  return c;
}

export function crlFrom(input: CrlInput, cache: PkiCache = defaultCache): ParsedCrl {
  if (isParsed(input)) return input as ParsedCrl;
  const hit = cache.crls.get(input) as ParsedCrl | undefined;
  if (hit) return hit;
  const c = parseCrl(input);
  cache.crls.set(input, c, c.der);
  return c;
}

export function ocspFrom(input: OcspInput, cache: PkiCache = defaultCache): ParsedOcspResponse {
  if (isParsed(input)) return input as ParsedOcspResponse;
  const hit = cache.ocsp.get(input) as ParsedOcspResponse | undefined;
  if (hit) return hit;
  const c = parseOcspResponse(input);
  cache.ocsp.set(input, c, c.der);
  return c;
}

// ---------------------------------------------------------------------------------------------

const KNOWN_CRITICAL = new Set<string>([
  PKIX.basicConstraints,
  PKIX.keyUsage,
  PKIX.extKeyUsage,
  PKIX.certificatePolicies,
  PKIX.policyMappings,
  PKIX.policyConstraints,
  PKIX.inhibitAnyPolicy,
  PKIX.nameConstraints,
  PKIX.subjectAltName,
  PKIX.issuerAltName,
  PKIX.subjectKeyIdentifier,
  PKIX.authorityKeyIdentifier,
  PKIX.cRLDistributionPoints,
  PKIX.freshestCRL,
  PKIX.authorityInfoAccess,
  PKIX.ocspNoCheck,
]);

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');

interface Settings {
  initialPolicySet: readonly string[];
  requireExplicitPolicy: boolean;
  inhibitPolicyMapping: boolean;
  inhibitAnyPolicy: boolean;
  keyUsage?: readonly KeyUsageName[];
  extendedKeyUsage?: readonly string[];
}

const DEFAULT_SETTINGS: Settings = {
  initialPolicySet: [ANY_POLICY],
  requireExplicitPolicy: false,
  inhibitPolicyMapping: false,
  inhibitAnyPolicy: false,
};

type Failure = { index: number; sub: SubIndication; message: string };

/** Position words for messages: index 0 is the target. */
function who(path: readonly ParsedCertificate[], index: number): string {
  const c = path[index]!;
  const role =
    index === 0
      ? 'the certificate'
      : index === path.length - 1
        ? 'the trust anchor'
        : `CA certificate #${index}`;
  return `${role} "${describeCertificate(c)}"`;
}

/** The working keys of a path (DSA parameters inherited, 6.1.4 (e)-(f)), by certificate hash. */
type KeyMap = Map<string, SignerKey>;

/** 6.1.2-6.1.5 without time and revocation. */
function checkStructure(
  path: readonly ParsedCertificate[],
  settings: Settings,
  cache: PkiCache,
  keys: KeyMap,
): { ok: true; policies: string[] | null } | ({ ok: false } & Failure) {
  const n = path.length - 1;
  const anchor = path[n]!;
  let workingKey: SignerKey = { spki: anchor.spki, hash: anchor.spkiHash };
  let workingParams = anchor.spkiAlgorithm.params;
  keys.set(anchor.hash, workingKey);
  let workingIssuer = anchor.subject;
  let maxPathLength = n;
  let explicitPolicy = settings.requireExplicitPolicy ? 0 : n + 1;
  let inhibitAny = settings.inhibitAnyPolicy ? 0 : n + 1;
  let policyMapping = settings.inhibitPolicyMapping ? 0 : n + 1;
  const graph = new PolicyGraph();
  const nc = initialNameConstraints();
  const fail = (index: number, sub: SubIndication, message: string) => ({
    ok: false as const,
    index,
    sub,
    message,
  });

  for (let i = 1; i <= n; i++) {
    const idx = n - i;
    const cert = path[idx]!;
    const isTarget = i === n;
    const me = who(path, idx);
    // (a)(1) signature
    const v = verifySignature(
      cert.signatureAlgorithm,
      workingKey.spki,
      workingKey.hash,
      cert.tbs,
      cert.signature,
      cert.hash,
      cache,
    );
    if (!v.ok)
      return fail(
        idx,
        'CERTIFICATE_CHAIN_GENERAL_FAILURE',
        `The signature of ${me} does not verify with the key of ${who(path, idx + 1)}: ${v.reason}.`,
      );
    // (a)(4) name chaining
    if (cert.issuer.key !== workingIssuer.key)
      return fail(
        idx,
        'NO_CERTIFICATE_CHAIN_FOUND',
        `The issuer of ${me} ("${cert.issuer.display}") is not the subject of ${who(path, idx + 1)}.`,
      );
    // (b), (c) name constraints
    if (!cert.selfIssued || isTarget) {
      const bad = checkNameConstraints(nc, cert);
      if (bad)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} violates the name constraints of its CAs: ${bad}.`,
        );
    }
    // (d)-(f) policies
    graph.processCertificate(cert, i, inhibitAny > 0 || (!isTarget && cert.selfIssued));
    if (explicitPolicy === 0 && graph.isNull)
      return fail(
        idx,
        'CHAIN_CONSTRAINTS_FAILURE',
        `No certificate policy is valid for the path at ${me}, and an explicit policy is required.`,
      );

    if (!isTarget) {
      // 6.1.4 (a), (b) policy mappings
      if (cert.policyMappings?.some(([a, b]) => a === ANY_POLICY || b === ANY_POLICY))
        return fail(idx, 'CHAIN_CONSTRAINTS_FAILURE', `${cap(me)} maps a policy to or from anyPolicy.`);
      graph.applyMappings(cert, i, policyMapping > 0);
      // (c)-(f) working issuer and key
      workingIssuer = cert.subject;
      workingKey = workingKeyOf(cert, workingParams);
      if (cert.spkiAlgorithm.params || cert.spkiAlgorithm.oid !== PKIX.dsa)
        workingParams = cert.spkiAlgorithm.params;
      keys.set(cert.hash, workingKey);
      // (g) name constraints
      addNameConstraints(nc, cert);
      // (h)-(j) policy counters
      if (!cert.selfIssued) {
        if (explicitPolicy > 0) explicitPolicy--;
        if (policyMapping > 0) policyMapping--;
        if (inhibitAny > 0) inhibitAny--;
      }
      const pc = cert.policyConstraints;
      if (pc?.requireExplicitPolicy !== undefined && pc.requireExplicitPolicy < explicitPolicy)
        explicitPolicy = pc.requireExplicitPolicy;
      if (pc?.inhibitPolicyMapping !== undefined && pc.inhibitPolicyMapping < policyMapping)
        policyMapping = pc.inhibitPolicyMapping;
      if (cert.inhibitAnyPolicy !== undefined && cert.inhibitAnyPolicy < inhibitAny)
        inhibitAny = cert.inhibitAnyPolicy;
      // (k) a CA
      if (cert.version < 3)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} is a version ${cert.version} certificate and cannot be accepted as a CA.`,
        );
      if (!cert.basicConstraints?.ca)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} is not a CA certificate (basicConstraints ${cert.basicConstraints ? 'has cA false' : 'is missing'}).`,
        );
      // (l), (m) path length
      if (!cert.selfIssued) {
        if (maxPathLength <= 0)
          return fail(
            idx,
            'CHAIN_CONSTRAINTS_FAILURE',
            `${cap(me)} exceeds the path length constraint of the CAs above it.`,
          );
        maxPathLength--;
      }
      const pl = cert.basicConstraints.pathLen;
      if (pl !== undefined && pl < maxPathLength) maxPathLength = pl;
      // (n) keyCertSign
      if (cert.keyUsage !== undefined && !(cert.keyUsage & KU.keyCertSign))
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} may not sign certificates (keyUsage lacks keyCertSign).`,
        );
      // (o) critical extensions
      const unknown = [...cert.critical].filter((o) => !KNOWN_CRITICAL.has(o));
      if (unknown.length)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} has an unrecognised critical extension ${unknown.join(', ')}.`,
        );
    } else {
      // 6.1.5
      if (explicitPolicy !== 0) explicitPolicy--;
      if (cert.policyConstraints?.requireExplicitPolicy === 0) explicitPolicy = 0;
      keys.set(cert.hash, workingKeyOf(cert, workingParams));
      const unknown = [...cert.critical].filter((o) => !KNOWN_CRITICAL.has(o));
      if (unknown.length)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} has an unrecognised critical extension ${unknown.join(', ')}.`,
        );
      const missingUsage = (settings.keyUsage ?? []).filter(
        (u) => cert.keyUsage !== undefined && !(cert.keyUsage & KU[u]),
      );
      if (missingUsage.length)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} does not allow the key usage ${missingUsage.join(', ')}.`,
        );
      const eku = cert.extKeyUsage;
      const missingPurpose = (settings.extendedKeyUsage ?? []).filter(
        (p) => eku !== undefined && !eku.includes(p) && !eku.includes(PKIX.anyExtendedKeyUsage),
      );
      if (missingPurpose.length)
        return fail(
          idx,
          'CHAIN_CONSTRAINTS_FAILURE',
          `${cap(me)} does not allow the extended key usage ${missingPurpose.join(', ')}.`,
        );
    }
  }
  // 6.1.5 (g) and 6.1.6
  const policies = n === 0 ? [ANY_POLICY] : graph.finish(n, settings.initialPolicySet);
  if (explicitPolicy === 0 && policies === null)
    return fail(
      0,
      'CHAIN_CONSTRAINTS_FAILURE',
      'No certificate policy acceptable to the relying party is valid for the path, and an explicit policy is required.',
    );
  return { ok: true, policies };
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function workingKeyOf(cert: ParsedCertificate, inheritedParams: Buffer | undefined): SignerKey {
  if (cert.spkiAlgorithm.oid === PKIX.dsa && !cert.spkiAlgorithm.params && inheritedParams) {
    const spki = spkiWithParameters(cert.spki, inheritedParams);
    return { spki, hash: sha256Hex(spki) };
  }
  return { spki: cert.spki, hash: cert.spkiHash };
}

// ---------------------------------------------------------------------------------------------

interface Shared {
  at: Date;
  cache: PkiCache;
  pool: CertPool;
  crlsByIssuer: Map<string, ParsedCrl[]>;
  ocsp: ParsedOcspResponse[];
  settings: Settings;
  maxPathLength: number;
  revocationRequired: boolean;
  checkRevocation: boolean;
  useDeltas: boolean;
  verifies(child: ParsedCertificate, issuer: ParsedCertificate): boolean;
}

interface PathOutcome {
  result: Omit<PathValidationResult, 'validationTime' | 'warnings' | 'unresolved'>;
  /** 3: passed; 2: failed on time/revocation only; 1: structural failure; 0: bad signature. */
  rank: number;
  unresolved: RevocationContext['unresolved'];
}

const MAX_SIGNER_DEPTH = 4;

function evaluatePath(path: ParsedCertificate[], shared: Shared): PathOutcome {
  const chain = path.map((c) => c.der);
  const n = path.length - 1;
  const anchor = path[n]!;
  const keys: KeyMap = new Map();
  const structure = checkStructure(path, shared.settings, shared.cache, keys);
  const unresolved: RevocationContext['unresolved'] = new Map();
  if (!structure.ok) {
    return {
      rank: structure.sub === 'CERTIFICATE_CHAIN_GENERAL_FAILURE' ? 0 : 1,
      unresolved,
      result: {
        indication: 'INDETERMINATE',
        subIndication: structure.sub,
        chain,
        failedAt: structure.index,
        message: structure.message,
        revocation: [],
      },
    };
  }

  const at = shared.at.getTime();
  const timeFindings: Failure[] = [];
  for (let idx = 0; idx < n; idx++) {
    const c = path[idx]!;
    if (c.notBefore.getTime() > at)
      timeFindings.push({
        index: idx,
        sub: idx === 0 ? 'NOT_YET_VALID' : 'OUT_OF_BOUNDS_NO_POE',
        message: `${cap(who(path, idx))} is not valid before ${iso(c.notBefore)} (validation time ${iso(shared.at)}).`,
      });
    else if (c.notAfter.getTime() < at)
      timeFindings.push({
        index: idx,
        sub: 'OUT_OF_BOUNDS_NO_POE',
        message: `${cap(who(path, idx))} expired on ${iso(c.notAfter)} (validation time ${iso(shared.at)}).`,
      });
  }

  // Revocation
  const revocation: CertificateRevocation[] = [];
  let depth = 0;
  const signerMemo = new Map<string, { ok: true } | { ok: false; reason: string }>();
  const ctx: RevocationContext = {
    at: shared.at,
    cache: shared.cache,
    pool: shared.pool,
    crlsByIssuer: shared.crlsByIssuer,
    ocsp: shared.ocsp,
    useDeltas: shared.useDeltas,
    revocationRequired: shared.revocationRequired,
    keyOf: (c) => keys.get(c.hash) ?? { spki: c.spki, hash: c.spkiHash },
    inProgress: new Set(),
    memo: new Map(),
    unresolved,
    validateSigner: (signer) => {
      const hit = signerMemo.get(signer.hash);
      if (hit) return hit;
      if (depth >= MAX_SIGNER_DEPTH) return { ok: false, reason: 'signer paths nested too deeply' };
      depth++;
      try {
        const r = validateSignerPath(signer, anchor, shared, ctx, keys);
        if (r.ok || !ctx.inProgress.size) signerMemo.set(signer.hash, r);
        return r;
      } finally {
        depth--;
      }
    },
  };
  if (shared.checkRevocation) {
    for (let idx = 0; idx < n; idx++) {
      const info = checkRevocation(ctx, path[idx]!, path[idx + 1]!);
      revocation.push({ index: idx, subject: describeCertificate(path[idx]!), ...info });
    }
  } else {
    for (let idx = 0; idx < n; idx++)
      revocation.push({
        index: idx,
        subject: describeCertificate(path[idx]!),
        source: 'none',
        status: 'skipped',
        message: 'revocation checking was disabled',
      });
  }

  // Decide, most serious first.
  const pick = (f: Failure): PathOutcome => ({
    rank: 2,
    unresolved,
    result: {
      indication: INDICATION_OF[f.sub],
      subIndication: f.sub,
      chain,
      failedAt: f.index,
      message: f.message,
      revocation,
    },
  });
  const revokedTarget = revocation.find((r) => r.index === 0 && r.status === 'revoked');
  if (revokedTarget) return pick({ index: 0, sub: 'REVOKED', message: `${sentence(revokedTarget.message)}` });
  const notYet = timeFindings.find((f) => f.sub === 'NOT_YET_VALID');
  if (notYet) return pick(notYet);
  const revokedCa = revocation.find((r) => r.status === 'revoked');
  if (revokedCa)
    return pick({
      index: revokedCa.index,
      sub: 'REVOKED_CA_NO_POE',
      message: `${sentence(revokedCa.message)}`,
    });
  if (timeFindings.length) return pick(timeFindings[0]!);
  if (shared.revocationRequired) {
    const stale = revocation.find((r) => r.status === 'unknown' && r.problem === 'stale');
    const unknown = revocation.find((r) => r.status === 'unknown');
    if (unknown) {
      const f = stale ?? unknown;
      return pick({
        index: f.index,
        sub: stale ? 'REVOCATION_OUT_OF_BOUNDS' : 'TRY_LATER',
        message: `The revocation status of ${who(path, f.index)} could not be determined: ${f.message}.`,
      });
    }
  }
  const checked = revocation.filter((r) => r.status === 'good').length;
  const policies = structure.policies ?? undefined;
  return {
    rank: 3,
    unresolved,
    result: {
      indication: 'TOTAL_PASSED',
      chain,
      message: `${cap(who(path, 0))} is valid at ${iso(shared.at)}: it chains to the trust anchor "${describeCertificate(anchor)}" through ${n - 1} CA certificate${n - 1 === 1 ? '' : 's'}; ${
        shared.checkRevocation
          ? `${checked} of ${n} revocation status${n === 1 ? '' : 'es'} checked good`
          : 'revocation checking was skipped'
      }.`,
      revocation,
      ...(policies ? { policies } : {}),
    },
  };
}

const sentence = (s: string) => `${cap(s)}${s.endsWith('.') ? '' : '.'}`;

/**
 * 6.3.3 (f): the path of a CRL (or OCSP) signer must end at the same trust anchor and be valid at the
 * validation time, including the revocation status of its certificates.
 */
function validateSignerPath(
  signer: ParsedCertificate,
  anchor: ParsedCertificate,
  shared: Shared,
  ctx: RevocationContext,
  keys: KeyMap,
): { ok: true } | { ok: false; reason: string } {
  if (
    signer.hash === anchor.hash ||
    (signer.subject.key === anchor.subject.key && signer.spkiHash === anchor.spkiHash)
  )
    return { ok: true };
  if (shared.pool.isAnchor(signer)) return { ok: false, reason: 'it is a different trust anchor' };
  const reasons: string[] = [];
  const report: BuildReport = { noIssuer: [], loops: 0, tooLong: 0, steps: 0 };
  for (const p of buildPaths(
    signer,
    shared.pool,
    {
      maxLength: shared.maxPathLength,
      maxPaths: 8,
      at: shared.at,
      verifies: shared.verifies,
      anchorFilter: (a) =>
        a.hash === anchor.hash || (a.subject.key === anchor.subject.key && a.spkiHash === anchor.spkiHash),
    },
    report,
  )) {
    const s = checkStructure(p, DEFAULT_SETTINGS, shared.cache, keys);
    if (!s.ok) {
      reasons.push(s.message);
      continue;
    }
    const at = shared.at.getTime();
    const expired = p.slice(0, -1).find((c) => c.notBefore.getTime() > at || c.notAfter.getTime() < at);
    if (expired) {
      reasons.push(`"${describeCertificate(expired)}" is not valid at the validation time`);
      continue;
    }
    let bad: string | undefined;
    if (shared.checkRevocation) {
      for (let i = 0; i < p.length - 1 && !bad; i++) {
        const st = checkRevocation(ctx, p[i]!, p[i + 1]!);
        if (st.status === 'revoked' || (st.status !== 'good' && shared.revocationRequired)) bad = st.message;
      }
    }
    if (!bad) return { ok: true };
    reasons.push(bad);
  }
  return { ok: false, reason: reasons.length ? reasons.join('; ') : 'no path to the trust anchor' };
}

// ---------------------------------------------------------------------------------------------

/** Validates a certificate at a given time: builds paths to the trust anchors and validates them. */
export function validatePath(input: PathValidationInput): PathValidationResult {
  const o = input.options ?? {};
  const cache = o.cache ?? defaultCache;
  const at = input.at;
  const warnings: string[] = [];
  const base = { validationTime: at, warnings, revocation: [] as CertificateRevocation[], unresolved: [] };
  if (!(at instanceof Date) || Number.isNaN(at.getTime()))
    return {
      ...base,
      indication: 'INDETERMINATE',
      subIndication: 'GENERIC',
      chain: [],
      message: 'The validation time is not a valid date.',
    };

  let target: ParsedCertificate;
  try {
    target = certificateFrom(input.target, cache);
  } catch (e) {
    if (!(e instanceof PathParseError)) throw e;
    return {
      ...base,
      indication: 'TOTAL_FAILED',
      subIndication: 'FORMAT_FAILURE',
      chain: input.target instanceof Uint8Array ? [Buffer.from(input.target)] : [],
      failedAt: 0,
      message: `The certificate cannot be parsed: ${e.message}.`,
    };
  }
  const parseAll = <I, T>(items: readonly I[] | undefined, what: string, fn: (x: I) => T): T[] => {
    const out: T[] = [];
    (items ?? []).forEach((x, i) => {
      try {
        out.push(fn(x));
      } catch (e) {
        if (!(e instanceof PathParseError)) throw e;
        warnings.push(`${what} #${i + 1} ignored: ${e.message}`);
      }
    });
    return out;
  };
  const anchors = parseAll(input.trustAnchors, 'trust anchor', (x) => certificateFrom(x, cache));
  const intermediates = parseAll(input.intermediates, 'certificate', (x) => certificateFrom(x, cache));
  const crls = parseAll(input.crls, 'CRL', (x) => crlFrom(x, cache));
  const ocsp = parseAll(input.ocspResponses, 'OCSP response', (x) => ocspFrom(x, cache));

  const crlsByIssuer = new Map<string, ParsedCrl[]>();
  const seenCrl = new Set<string>();
  for (const crl of crls) {
    if (seenCrl.has(crl.hash)) continue;
    seenCrl.add(crl.hash);
    const list = crlsByIssuer.get(crl.issuer.key);
    if (list) list.push(crl);
    else crlsByIssuer.set(crl.issuer.key, [crl]);
  }
  const ocspCerts = ocsp.flatMap((r) => r.basic?.certs ?? []);
  const pool = makePool([...intermediates, ...ocspCerts], anchors);
  const maxPathLength = o.maxPathLength ?? 10;
  const shared: Shared = {
    at,
    cache,
    pool,
    crlsByIssuer,
    ocsp,
    settings: {
      initialPolicySet: o.initialPolicySet?.length ? o.initialPolicySet : [ANY_POLICY],
      requireExplicitPolicy: o.requireExplicitPolicy ?? false,
      inhibitPolicyMapping: o.inhibitPolicyMapping ?? false,
      inhibitAnyPolicy: o.inhibitAnyPolicy ?? false,
      ...(o.keyUsage ? { keyUsage: o.keyUsage } : {}),
      ...(o.extendedKeyUsage ? { extendedKeyUsage: o.extendedKeyUsage } : {}),
    },
    maxPathLength,
    revocationRequired: o.revocationRequired ?? true,
    checkRevocation: o.checkRevocation ?? true,
    useDeltas: o.useDeltaCrls ?? true,
    verifies: (child, issuer) =>
      verifySignature(
        child.signatureAlgorithm,
        issuer.spki,
        issuer.spkiHash,
        child.tbs,
        child.signature,
        child.hash,
        cache,
      ).ok,
  };

  if (anchors.length === 0)
    return {
      ...base,
      indication: 'INDETERMINATE',
      subIndication: 'NO_CERTIFICATE_CHAIN_FOUND',
      chain: [target.der],
      failedAt: 0,
      message: 'No usable trust anchor was given.',
    };

  const report: BuildReport = { noIssuer: [], loops: 0, tooLong: 0, steps: 0 };
  let best: PathOutcome | undefined;
  for (const path of buildPaths(
    target,
    pool,
    { maxLength: maxPathLength, maxPaths: 16, at, verifies: shared.verifies },
    report,
  )) {
    let outcome: PathOutcome;
    try {
      outcome = evaluatePath(path, shared);
    } catch (e) {
      // Everything is parsed up front; this is a safety net, not an expected path.
      if (!(e instanceof PathParseError)) throw e;
      outcome = {
        rank: 0,
        unresolved: new Map(),
        result: {
          indication: 'INDETERMINATE',
          subIndication: 'GENERIC',
          chain: path.map((c) => c.der),
          message: `Malformed input met while validating: ${e.message}.`,
          revocation: [],
        },
      };
    }
    if (outcome.rank === 3) return finish(outcome);
    if (!best || outcome.rank > best.rank) best = outcome;
  }
  if (best) return finish(best);

  // No path at all.
  const reasons: string[] = [];
  const stuck = report.noIssuer[report.noIssuer.length - 1];
  if (stuck)
    reasons.push(
      stuck === target
        ? `no certificate of its issuer "${target.issuer.display}" and no matching trust anchor was given`
        : `the chain stops at "${describeCertificate(stuck)}": no certificate of its issuer "${stuck.issuer.display}" was given`,
    );
  if (report.tooLong) reasons.push(`every candidate path is longer than ${maxPathLength} certificates`);
  if (report.loops && !stuck) reasons.push('the certificates only chain in a loop');
  return {
    ...base,
    indication: 'INDETERMINATE',
    subIndication: 'NO_CERTIFICATE_CHAIN_FOUND',
    chain: [target.der],
    failedAt: 0,
    message: `No certification path from "${describeCertificate(target)}" to a trust anchor was found: ${
      reasons.join('; ') || 'no candidate issuer'
    }.`,
  };

  function finish(outcome: PathOutcome): PathValidationResult {
    return {
      ...outcome.result,
      validationTime: at,
      warnings,
      unresolved: [...outcome.unresolved.values()],
    };
  }
}
