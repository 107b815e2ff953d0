// Path building: from a certificate through candidate issuers to a trust anchor.
//
// Issuers are found by name (RFC 5280 7.1 comparison); among several candidates, those whose key
// verifies the child's signature come first, then those whose subjectKeyIdentifier matches the
// child's authorityKeyIdentifier, then those valid at the validation time. Paths are produced
// lazily, depth first, so the common case (one candidate per level) costs one path. A certificate
// never appears twice in a path (loops), paths are capped in length and the search in steps.

import type { ParsedCertificate } from './certificate.ts';

export interface CertPool {
  /** Untrusted certificates by subject name key. */
  readonly bySubject: ReadonlyMap<string, readonly ParsedCertificate[]>;
  /** Trust anchors by subject name key. */
  readonly anchorsBySubject: ReadonlyMap<string, readonly ParsedCertificate[]>;
  readonly anchors: readonly ParsedCertificate[];
  /** Whether a certificate is a trust anchor (same DER, or same subject and key as one). */
  isAnchor(c: ParsedCertificate): boolean;
}

export function makePool(
  untrusted: readonly ParsedCertificate[],
  anchors: readonly ParsedCertificate[],
): CertPool {
  const bySubject = new Map<string, ParsedCertificate[]>();
  const anchorsBySubject = new Map<string, ParsedCertificate[]>();
  const seen = new Set<string>();
  const anchorHashes = new Set<string>();
  const anchorKeys = new Set<string>();
  const uniqueAnchors: ParsedCertificate[] = [];
  for (const a of anchors) {
    if (anchorHashes.has(a.hash)) continue;
    anchorHashes.add(a.hash);
    anchorKeys.add(`${a.subject.key}|${a.spkiHash}`);
    uniqueAnchors.push(a);
    push(anchorsBySubject, a.subject.key, a);
  }
  for (const c of untrusted) {
    if (seen.has(c.hash) || anchorHashes.has(c.hash)) continue;
    seen.add(c.hash);
    push(bySubject, c.subject.key, c);
  }
  return {
    bySubject,
    anchorsBySubject,
    anchors: uniqueAnchors,
    isAnchor: (c) => anchorHashes.has(c.hash) || anchorKeys.has(`${c.subject.key}|${c.spkiHash}`),
  };
}

function push(m: Map<string, ParsedCertificate[]>, k: string, v: ParsedCertificate): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

export interface BuildOptions {
  /** Most certificates in a path, trust anchor excluded. */
  maxLength: number;
  /** Most paths produced. */
  maxPaths: number;
  at: Date;
  /** Whether `issuer`'s key verifies `child`'s signature (cached by the caller). */
  verifies(child: ParsedCertificate, issuer: ParsedCertificate): boolean;
  /** Restrict the anchors a path may end at. */
  anchorFilter?: (a: ParsedCertificate) => boolean;
}

/** Why building stopped short, for the message when no path was found. */
export interface BuildReport {
  /** Certificates for which no issuer candidate at all was found (deepest first). */
  noIssuer: ParsedCertificate[];
  loops: number;
  tooLong: number;
  steps: number;
}

const MAX_STEPS = 5_000;
/** Most certificates of one subject name considered as issuers. */
const MAX_CANDIDATES = 32;

/** Paths [target, …, anchor] in order of preference. */
export function* buildPaths(
  target: ParsedCertificate,
  pool: CertPool,
  opts: BuildOptions,
  report: BuildReport = { noIssuer: [], loops: 0, tooLong: 0, steps: 0 },
): Generator<ParsedCertificate[]> {
  let produced = 0;
  const inPath = new Set<string>();
  const keysInPath = new Set<string>();
  const at = opts.at.getTime();
  const anchorOk = (a: ParsedCertificate) => !opts.anchorFilter || opts.anchorFilter(a);

  function* extend(path: ParsedCertificate[]): Generator<ParsedCertificate[]> {
    if (produced >= opts.maxPaths || report.steps++ > MAX_STEPS) return;
    const cur = path[path.length - 1]!;
    if (pool.isAnchor(cur)) {
      const anchor = pool.anchors.find((a) => a.hash === cur.hash) ?? cur;
      if (anchorOk(anchor)) {
        produced++;
        yield path;
      }
      return;
    }
    const seen = new Set<string>();
    const candidates: { c: ParsedCertificate; score: number }[] = [];
    const consider = (c: ParsedCertificate, anchor: boolean) => {
      if (seen.has(c.hash)) return;
      seen.add(c.hash);
      if (anchor && !anchorOk(c)) return;
      if (inPath.has(c.hash) || keysInPath.has(`${c.subject.key}|${c.spkiHash}`)) {
        report.loops++;
        return;
      }
      let score = 0;
      if (opts.verifies(cur, c)) score += 8;
      const aki = cur.authorityKeyId?.keyId;
      if (aki && c.subjectKeyId) score += aki.equals(c.subjectKeyId) ? 4 : 0;
      else score += 2;
      if (anchor) score += 2;
      if (c.notBefore.getTime() <= at && at <= c.notAfter.getTime()) score += 1;
      candidates.push({ c, score });
    };
    for (const a of pool.anchorsBySubject.get(cur.issuer.key) ?? []) consider(a, true);
    // Untrusted input may hold any number of certificates with one name: look at a bounded few.
    for (const c of (pool.bySubject.get(cur.issuer.key) ?? []).slice(0, MAX_CANDIDATES))
      consider(c, pool.isAnchor(c));
    if (candidates.length === 0) {
      if (seen.size === 0) report.noIssuer.push(cur);
      return;
    }
    candidates.sort((x, y) => y.score - x.score);
    for (const { c } of candidates) {
      if (path.length >= opts.maxLength && !pool.isAnchor(c)) {
        report.tooLong++;
        continue;
      }
      inPath.add(c.hash);
      keysInPath.add(`${c.subject.key}|${c.spkiHash}`);
      yield* extend([...path, c]);
      inPath.delete(c.hash);
      keysInPath.delete(`${c.subject.key}|${c.spkiHash}`);
      if (produced >= opts.maxPaths) return;
    }
  }

  inPath.add(target.hash);
  keysInPath.add(`${target.subject.key}|${target.spkiHash}`);
  yield* extend([target]);
}
