// Certificate policy processing (RFC 5280 6.1.2-6.1.5), with the valid_policy_tree kept as the
// equivalent directed acyclic graph of RFC 9618: at each depth at most one node per policy OID, a
// node holding the set of its parents. The tree form can grow exponentially with crafted chains;
// the graph stays linear in the size of the certificates.

import type { ParsedCertificate } from './certificate.ts';
import { PKIX } from './oids.ts';

export const ANY_POLICY = PKIX.anyPolicy;

interface PolicyNode {
  readonly policy: string;
  expected: Set<string>;
  parents: PolicyNode[];
}

export class PolicyGraph {
  /** levels[d] holds the nodes of depth d, keyed by valid_policy; null once the tree is NULL. */
  private levels: Map<string, PolicyNode>[] | null;

  constructor() {
    this.levels = [
      new Map([[ANY_POLICY, { policy: ANY_POLICY, expected: new Set([ANY_POLICY]), parents: [] }]]),
    ];
  }

  get isNull(): boolean {
    return this.levels === null;
  }

  /**
   * 6.1.3 (d)-(e) for certificate i (1-based depth). `anyPolicyAllowed` is (inhibit_anyPolicy > 0
   * or (i < n and the certificate is self-issued)).
   */
  processCertificate(cert: ParsedCertificate, depth: number, anyPolicyAllowed: boolean): void {
    if (!this.levels) return;
    if (!cert.policies) {
      this.levels = null; // (e)
      return;
    }
    const prev = this.levels[depth - 1]!;
    const level = new Map<string, PolicyNode>();
    const expecting = (p: string) => [...prev.values()].filter((n) => n.expected.has(p));
    let hasAny = false;
    for (const info of cert.policies) {
      if (info.oid === ANY_POLICY) {
        hasAny = true;
        continue;
      }
      // (d)(1)(i) nodes expecting the policy, else (d)(1)(ii) the anyPolicy node
      let parents = expecting(info.oid);
      if (parents.length === 0) {
        const any = prev.get(ANY_POLICY);
        if (any) parents = [any];
      }
      if (parents.length) level.set(info.oid, { policy: info.oid, expected: new Set([info.oid]), parents });
    }
    // (d)(2) anyPolicy asserted: every expected policy not yet matched gets a node
    if (hasAny && anyPolicyAllowed) {
      for (const n of prev.values()) {
        for (const q of n.expected) {
          if (level.has(q)) continue;
          level.set(q, { policy: q, expected: new Set([q]), parents: expecting(q) });
        }
      }
    }
    this.levels[depth] = level;
    this.pruneAbove(depth); // (d)(3)
  }

  /** 6.1.4 (b): policy mappings of certificate i (the caller has refused mappings to/from anyPolicy). */
  applyMappings(cert: ParsedCertificate, depth: number, mappingAllowed: boolean): void {
    if (!this.levels || !cert.policyMappings) return;
    const level = this.levels[depth]!;
    const map = new Map<string, Set<string>>();
    for (const [from, to] of cert.policyMappings) {
      const s = map.get(from);
      if (s) s.add(to);
      else map.set(from, new Set([to]));
    }
    if (mappingAllowed) {
      for (const [from, to] of map) {
        const existing = level.get(from);
        if (existing) existing.expected = new Set(to);
        else {
          const any = level.get(ANY_POLICY);
          if (any) level.set(from, { policy: from, expected: new Set(to), parents: [...any.parents] });
        }
      }
    } else {
      for (const from of map.keys()) level.delete(from);
      this.pruneAbove(depth);
    }
  }

  /**
   * 6.1.5 (g): intersects with the user-initial-policy-set and returns the user-constrained policy
   * set (anyPolicy included when any policy is acceptable), or null if the tree is NULL.
   */
  finish(depth: number, initialPolicySet: readonly string[]): string[] | null {
    if (!this.levels) return null;
    const initial = new Set(initialPolicySet);
    if (!initial.has(ANY_POLICY)) {
      // (iii)(1) nodes whose parent is an anyPolicy node
      const boundary: [number, PolicyNode][] = [];
      for (let d = 1; d <= depth; d++) {
        for (const n of this.levels[d]!.values()) {
          if (n.policy !== ANY_POLICY && n.parents.length === 1 && n.parents[0]!.policy === ANY_POLICY)
            boundary.push([d, n]);
        }
      }
      const boundaryPolicies = new Set(boundary.map(([, n]) => n.policy));
      // (iii)(2) delete boundary nodes outside the initial set, with descendants left parentless
      for (const [d, n] of boundary) if (!initial.has(n.policy)) this.remove(d, n);
      // (iii)(3) a leaf anyPolicy node stands for every initial policy not already present
      const leafAny = this.levels[depth]!.get(ANY_POLICY);
      if (leafAny) {
        const parentAny = this.levels[depth - 1]?.get(ANY_POLICY);
        for (const p of initial) {
          if (boundaryPolicies.has(p) || this.levels[depth]!.has(p)) continue;
          if (parentAny)
            this.levels[depth]!.set(p, { policy: p, expected: new Set([p]), parents: [parentAny] });
        }
        this.levels[depth]!.delete(ANY_POLICY);
      }
      // (iii)(4)
      this.pruneAbove(depth);
      if (!this.levels) return null;
    }
    const leaves = this.levels[depth];
    if (!leaves || leaves.size === 0) {
      this.levels = null;
      return null;
    }
    return [...leaves.keys()];
  }

  /** Removes a node and every descendant that loses its last parent. */
  private remove(depth: number, n: PolicyNode): void {
    if (!this.levels) return;
    const level = this.levels[depth];
    if (!level || level.get(n.policy) !== n) return;
    level.delete(n.policy);
    const below = this.levels[depth + 1];
    if (!below) return;
    for (const child of [...below.values()]) {
      if (!child.parents.includes(n)) continue;
      child.parents = child.parents.filter((p) => p !== n);
      if (child.parents.length === 0) this.remove(depth + 1, child);
    }
  }

  /** Deletes nodes of depth < `depth` without children, bottom up; the tree becomes NULL when empty. */
  private pruneAbove(depth: number): void {
    if (!this.levels) return;
    for (let d = depth - 1; d >= 0; d--) {
      const parents = new Set<PolicyNode>();
      for (const child of this.levels[d + 1]!.values()) for (const p of child.parents) parents.add(p);
      for (const [k, n] of this.levels[d]!) if (!parents.has(n)) this.levels[d]!.delete(k);
    }
    if (this.levels[0]!.size === 0 || this.levels[depth]!.size === 0) this.levels = null;
  }
}
