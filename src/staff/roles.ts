// Who may do what: one table, mirrored in docs/roles.md (a test checks that the two agree).
//
// `can` is a pure function of the principal, the action and what the action is about. Municipal staff
// act only within their own municipality: the caller passes the municipality of the resident, record or
// staff account concerned, and a missing municipality is a refusal, never a wildcard. Operators of the
// authority are not scoped to a municipality and have no access to residents' personal data.

import type { StaffRole } from '../store/staff-schema.ts';

export type { StaffRole } from '../store/staff-schema.ts';

export const STAFF_ROLES: readonly StaffRole[] = ['clerk', 'supervisor', 'operator'];

/** An authenticated staff member, as `StaffService.authenticate` returns it. */
export interface Principal {
  staffId: number;
  username: string;
  role: StaffRole;
  /** Null exactly for operators. */
  municipalityCode: string | null;
}

export const ACTIONS = [
  'resident.read',
  'resident.write',
  'certificate.issue',
  'certificate.revoke',
  'card.pin-reset',
  'counter.approve',
  'stats.read',
  'audit.read',
  'staff.manage',
  'authority.operate',
  'verifier.manage',
] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * How far a grant reaches:
 *  - 'own': the context's municipalityCode must be the principal's;
 *  - 'own-clerks': as 'own', and the target account (context.targetRole) must be a clerk;
 *  - 'any': every municipality, and actions that concern none.
 */
export type Scope = 'own' | 'own-clerks' | 'any';

export const PERMISSIONS: Readonly<Record<Action, Readonly<Partial<Record<StaffRole, Scope>>>>> = {
  /** Look a resident up: the four basic facts, certificates and cards on record. */
  'resident.read': { clerk: 'own', supervisor: 'own' },
  /** Correct a resident's recorded data. */
  'resident.write': { supervisor: 'own' },
  /** Issue a certificate at the counter (identity check, fee, key pair on the card). */
  'certificate.issue': { clerk: 'own', supervisor: 'own' },
  /** Revoke a resident's certificate: the holder's request, a loss or compromise report. */
  'certificate.revoke': { clerk: 'own', supervisor: 'own' },
  /** Reset a locked card PIN after checking the holder's identity. */
  'card.pin-reset': { clerk: 'own', supervisor: 'own' },
  /** Approve or correct a counter record (an issuance, a fee, the identity documents checked). */
  'counter.approve': { supervisor: 'own' },
  /** Issuance statistics (counts only, no personal data). */
  'stats.read': { supervisor: 'own', operator: 'any' },
  /** Read the audit log (ids, not names): a supervisor their municipality's entries. */
  'audit.read': { supervisor: 'own', operator: 'any' },
  /** Create, disable, unlock staff accounts and reset their passwords. */
  'staff.manage': { supervisor: 'own-clerks', operator: 'any' },
  /** CA operations: CRLs, revocation by serial (key or CA compromise), keys, configuration. */
  'authority.operate': { operator: 'any' },
  /** The registry of authorised verifiers. */
  'verifier.manage': { operator: 'any' },
};

export interface AccessContext {
  /** Municipality of the resident, record or staff account the action concerns. */
  municipalityCode?: string | null;
  /** For 'staff.manage': the role of the account being managed (or created). */
  targetRole?: StaffRole;
}

/** Whether the principal may perform the action on what the context describes. */
export function can(principal: Principal, action: Action, context: AccessContext = {}): boolean {
  const grants = Object.hasOwn(PERMISSIONS, action) ? PERMISSIONS[action] : undefined;
  const scope = grants && Object.hasOwn(grants, principal.role) ? grants[principal.role] : undefined;
  switch (scope) {
    case 'any':
      return true;
    case 'own':
    case 'own-clerks': {
      const mine = principal.municipalityCode;
      if (!mine || !context.municipalityCode || context.municipalityCode !== mine) return false;
      return scope === 'own' || context.targetRole === 'clerk';
    }
    default:
      return false;
  }
}

export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
  readonly action: Action;
  constructor(principal: Principal, action: Action, context: AccessContext) {
    const where = context.municipalityCode ? ` in municipality ${context.municipalityCode}` : '';
    super(`${principal.role} ${principal.username} may not ${action}${where}`);
    this.action = action;
  }
}

/** Throws ForbiddenError unless `can(principal, action, context)`. */
export function authorize(principal: Principal, action: Action, context: AccessContext = {}): void {
  if (!can(principal, action, context)) throw new ForbiddenError(principal, action, context);
}
