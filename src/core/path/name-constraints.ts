// Name constraints (RFC 5280 4.2.1.10, 6.1.3 (b)-(c), 6.1.4 (g)).
//
// Instead of computing intersections of permitted subtrees, every CA's permitted set is kept and a
// name must fall inside each set that constrains its name form; excluded subtrees accumulate. Name
// forms that cannot be evaluated (otherName, x400Address, ediPartyName, registeredID) fail closed
// when a constraint of that form applies.

import type { GeneralSubtree, ParsedCertificate } from './certificate.ts';
import { formatGeneralName, type GeneralName, nameWithin } from './name.ts';
import { PKIX } from './oids.ts';

export interface NameConstraintsState {
  permitted: GeneralSubtree[][];
  excluded: GeneralSubtree[];
}

export const initialNameConstraints = (): NameConstraintsState => ({ permitted: [], excluded: [] });

/** 6.1.4 (g): adds the constraints of a CA certificate. */
export function addNameConstraints(state: NameConstraintsState, cert: ParsedCertificate): void {
  const nc = cert.nameConstraints;
  if (!nc) return;
  if (nc.permitted) state.permitted.push(nc.permitted);
  if (nc.excluded) state.excluded.push(...nc.excluded);
}

/** The names of a certificate that constraints apply to. */
function namesOf(cert: ParsedCertificate): GeneralName[] {
  const out: GeneralName[] = [];
  if (cert.subject.rdns.length) out.push({ type: 'directoryName', name: cert.subject });
  for (const rdn of cert.subject.rdns)
    for (const a of rdn)
      if (a.type === PKIX.emailAddress && a.text) out.push({ type: 'rfc822Name', value: a.text });
  if (cert.subjectAltNames) out.push(...cert.subjectAltNames);
  return out;
}

/** 6.1.3 (b)-(c): undefined if the certificate's names satisfy the constraints, else why not. */
export function checkNameConstraints(
  state: NameConstraintsState,
  cert: ParsedCertificate,
): string | undefined {
  if (state.permitted.length === 0 && state.excluded.length === 0) return undefined;
  for (const name of namesOf(cert)) {
    for (const ex of state.excluded) {
      if (ex.base.type !== name.type) continue;
      const m = matches(name, ex.base);
      if (m !== false)
        return `${formatGeneralName(name)} is within the excluded subtree ${formatGeneralName(ex.base)}`;
    }
    for (const set of state.permitted) {
      const relevant = set.filter((s) => s.base.type === name.type);
      if (relevant.length === 0) continue;
      if (!relevant.some((s) => matches(name, s.base) === true))
        return `${formatGeneralName(name)} is outside the permitted subtrees (${relevant.map((s) => formatGeneralName(s.base)).join(', ')})`;
    }
  }
  return undefined;
}

/** true / false, or 'unknown' for name forms that cannot be compared (treated as a match for exclusion). */
function matches(name: GeneralName, base: GeneralName): boolean | 'unknown' {
  switch (name.type) {
    case 'directoryName':
      return base.type === 'directoryName' && nameWithin(name.name, base.name);
    case 'rfc822Name':
      return base.type === 'rfc822Name' && emailMatches(name.value, base.value);
    case 'dNSName':
      return base.type === 'dNSName' && dnsMatches(name.value, base.value);
    case 'uniformResourceIdentifier': {
      if (base.type !== 'uniformResourceIdentifier') return false;
      const host = uriHost(name.value);
      if (host === undefined) return false;
      const c = base.value.toLowerCase();
      return c.startsWith('.') ? host.endsWith(c) : host === c;
    }
    case 'iPAddress': {
      if (base.type !== 'iPAddress') return false;
      const a = name.bytes;
      const b = base.bytes;
      if (b.length !== a.length * 2) return false;
      for (let i = 0; i < a.length; i++)
        if ((a[i]! & b[a.length + i]!) !== (b[i]! & b[a.length + i]!)) return false;
      return true;
    }
    default:
      return 'unknown';
  }
}

function dnsMatches(name: string, constraint: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const c = constraint.toLowerCase().replace(/\.$/, '');
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

function emailMatches(email: string, constraint: string): boolean {
  const at = email.lastIndexOf('@');
  if (at < 0) return false;
  const host = email.slice(at + 1).toLowerCase();
  const c = constraint.toLowerCase();
  if (c.includes('@'))
    return (
      email.slice(0, at) === constraint.slice(0, constraint.lastIndexOf('@')) &&
      host === c.slice(c.lastIndexOf('@') + 1)
    );
  if (c.startsWith('.')) return host.endsWith(c);
  return host === c;
}

function uriHost(uri: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i.exec(uri);
  if (!m?.[1]) return undefined;
  return m[1].toLowerCase();
}
