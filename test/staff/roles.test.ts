import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ACTIONS,
  type Action,
  authorize,
  can,
  ForbiddenError,
  PERMISSIONS,
  type Principal,
  STAFF_ROLES,
} from '../../src/staff/roles.ts';

const A = '131016'; // Chiyoda
const B = '011002'; // Sapporo
const clerkA: Principal = { staffId: 1, username: 'clerk-a', role: 'clerk', municipalityCode: A };
const supA: Principal = { staffId: 2, username: 'sup-a', role: 'supervisor', municipalityCode: A };
const operator: Principal = { staffId: 3, username: 'ops', role: 'operator', municipalityCode: null };

const RESIDENT_ACTIONS: Action[] = [
  'resident.read',
  'certificate.issue',
  'certificate.revoke',
  'card.pin-reset',
];

describe('can()', () => {
  it('lets a clerk act on residents of their own municipality only', () => {
    for (const action of RESIDENT_ACTIONS) {
      expect(can(clerkA, action, { municipalityCode: A })).toBe(true);
      expect(can(clerkA, action, { municipalityCode: B })).toBe(false);
      // no municipality given: refused, not a wildcard
      expect(can(clerkA, action)).toBe(false);
      expect(can(clerkA, action, { municipalityCode: null })).toBe(false);
    }
    for (const action of [
      'resident.write',
      'counter.approve',
      'stats.read',
      'staff.manage',
      'audit.read',
    ] as const)
      expect(can(clerkA, action, { municipalityCode: A, targetRole: 'clerk' })).toBe(false);
    expect(can(clerkA, 'authority.operate')).toBe(false);
  });

  it('gives supervisors clerk rights plus approval, corrections, statistics — in their municipality', () => {
    for (const action of [
      ...RESIDENT_ACTIONS,
      'resident.write',
      'counter.approve',
      'stats.read',
      'audit.read',
    ] as const) {
      expect(can(supA, action, { municipalityCode: A })).toBe(true);
      expect(can(supA, action, { municipalityCode: B })).toBe(false);
    }
    expect(can(supA, 'authority.operate')).toBe(false);
    expect(can(supA, 'verifier.manage')).toBe(false);
  });

  it('lets a supervisor manage the clerks of their own municipality, nobody else', () => {
    expect(can(supA, 'staff.manage', { municipalityCode: A, targetRole: 'clerk' })).toBe(true);
    expect(can(supA, 'staff.manage', { municipalityCode: B, targetRole: 'clerk' })).toBe(false);
    expect(can(supA, 'staff.manage', { municipalityCode: A, targetRole: 'supervisor' })).toBe(false);
    expect(can(supA, 'staff.manage', { municipalityCode: null, targetRole: 'operator' })).toBe(false);
    expect(can(supA, 'staff.manage', { municipalityCode: A })).toBe(false);
  });

  it('keeps operators away from residents’ personal data, anywhere', () => {
    for (const action of [...RESIDENT_ACTIONS, 'resident.write', 'counter.approve'] as const) {
      expect(can(operator, action, { municipalityCode: A })).toBe(false);
      expect(can(operator, action)).toBe(false);
    }
    for (const action of ['authority.operate', 'verifier.manage', 'stats.read', 'audit.read'] as const)
      expect(can(operator, action)).toBe(true);
    expect(can(operator, 'staff.manage', { municipalityCode: B, targetRole: 'supervisor' })).toBe(true);
    expect(can(operator, 'staff.manage', { targetRole: 'operator' })).toBe(true);
  });

  it('refuses unknown actions and roles, and a clerk without a municipality', () => {
    expect(can(clerkA, 'resident.delete' as Action, { municipalityCode: A })).toBe(false);
    expect(can(clerkA, 'toString' as Action, { municipalityCode: A })).toBe(false);
    expect(can({ ...clerkA, role: 'admin' as never }, 'resident.read', { municipalityCode: A })).toBe(false);
    expect(can({ ...clerkA, municipalityCode: null }, 'resident.read', { municipalityCode: A })).toBe(false);
  });

  it('authorize throws ForbiddenError', () => {
    expect(() => authorize(clerkA, 'resident.read', { municipalityCode: B })).toThrow(ForbiddenError);
    expect(() => authorize(clerkA, 'resident.read', { municipalityCode: A })).not.toThrow();
  });
});

describe('docs/roles.md', () => {
  it('has the same table as the code', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../docs/roles.md'), 'utf8');
    const lines = doc.split('\n');
    const cellsOf = (line: string) => line.split('|').map((c) => c.trim());
    const start = lines.findIndex(
      (l) => cellsOf(l).slice(1, 5).join(' ') === 'action clerk supervisor operator',
    );
    expect(start).toBeGreaterThan(0);
    const rows: string[] = [];
    for (const l of lines.slice(start + 2)) {
      if (!l.startsWith('|')) break;
      rows.push(l);
    }
    const fromDoc: Record<string, Record<string, string>> = {};
    for (const row of rows) {
      const cells = cellsOf(row);
      const action = cells[1]!.replaceAll('`', '');
      fromDoc[action] = Object.fromEntries(STAFF_ROLES.map((r, i) => [r, cells[2 + i]!]));
    }
    const fromCode = Object.fromEntries(
      ACTIONS.map((a) => [
        a,
        Object.fromEntries(
          STAFF_ROLES.map((r) => {
            const scope = PERMISSIONS[a][r];
            return [r, scope === undefined ? '—' : scope === 'own-clerks' ? 'own clerks' : scope];
          }),
        ),
      ]),
    );
    expect(fromDoc).toEqual(fromCode);
  });
});
