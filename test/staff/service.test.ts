// Staff accounts, logins, lock-out, sessions, and their audit entries, on every backend.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect, it } from 'vitest';
import { tailAudit, verifyAuditChain } from '../../src/audit/audit-log.ts';
import { PasswordPolicyError } from '../../src/staff/password.ts';
import { ForbiddenError, type Principal } from '../../src/staff/roles.ts';
import {
  hashToken,
  LoginError,
  SessionError,
  StaffExistsError,
  StaffInputError,
  StaffService,
} from '../../src/staff/service.ts';
import { openDatabase } from '../../src/store/db.ts';
import { forEachStore, type TestStore } from '../helpers/db.ts';

const MIN = 60_000;
const A = '131016';
const B = '011002';
const PW = 'counter-password-2024';
/** Cheap scrypt for tests about logins and sessions; password.test.ts checks the real parameters. */
const FAST = { ln: 10, r: 8, p: 1 };

function clock(start = Date.UTC(2025, 3, 1, 0, 0, 0)) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

async function loginError(p: Promise<unknown>): Promise<LoginError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LoginError);
  return err as LoginError;
}

async function sessionError(p: Promise<unknown>): Promise<SessionError['code']> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SessionError);
  return (err as SessionError).code;
}

/** Every row of the staff and audit tables as text. */
async function dump(store: TestStore): Promise<string> {
  const parts = await Promise.all(
    (['staff', 'staff_sessions', 'audit_log', 'audit_head'] as const).map((t) =>
      store.db.selectFrom(t).selectAll().execute(),
    ),
  );
  return JSON.stringify(parts);
}

forEachStore((current) => {
  it('creates accounts, validating username, role, municipality and password', async () => {
    const { db } = current();
    const staff = new StaffService(db, { scrypt: FAST });
    const clerk = await staff.createStaff(
      { username: '  Tanaka.H ', password: PW, role: 'clerk', municipalityCode: A },
      'cli:test',
    );
    expect(clerk).toMatchObject({
      username: 'tanaka.h',
      role: 'clerk',
      municipalityCode: A,
      disabledAt: null,
    });
    const ops = await staff.createStaff({ username: 'ops1', password: PW, role: 'operator' }, 'cli:test');
    expect(ops.municipalityCode).toBeNull();

    await expect(
      staff.createStaff(
        { username: 'tanaka.h', password: PW, role: 'clerk', municipalityCode: B },
        'cli:test',
      ),
    ).rejects.toThrow(StaffExistsError);
    for (const bad of [
      { username: 'x', password: PW, role: 'clerk' as const, municipalityCode: A },
      { username: 'bad name', password: PW, role: 'clerk' as const, municipalityCode: A },
      { username: 'nomuni', password: PW, role: 'clerk' as const },
      { username: 'shortmuni', password: PW, role: 'supervisor' as const, municipalityCode: '13101' },
      { username: 'opsmuni', password: PW, role: 'operator' as const, municipalityCode: A },
      { username: 'root', password: PW, role: 'admin' as never, municipalityCode: A },
    ])
      await expect(staff.createStaff(bad, 'cli:test')).rejects.toThrow(StaffInputError);
    await expect(
      staff.createStaff(
        { username: 'suzuki', password: 'short', role: 'clerk', municipalityCode: A },
        'cli:test',
      ),
    ).rejects.toThrow(PasswordPolicyError);
    await expect(
      staff.createStaff(
        { username: 'suzuki', password: 'suzuki-password-1', role: 'clerk', municipalityCode: A },
        'cli:test',
      ),
    ).rejects.toThrow(/username/);

    // The database refuses what the service would: a clerk without a municipality.
    await expect(
      db
        .insertInto('staff')
        .values({
          username: 'raw',
          role: 'clerk',
          municipality_code: null,
          password_hash: 'x',
          created_at: 0,
          updated_at: 0,
        })
        .execute(),
    ).rejects.toThrow();

    const all = await staff.listStaff();
    expect(all.map((s) => s.username)).toEqual(['tanaka.h', 'ops1']);
    expect(await staff.listStaff({ municipalityCode: A })).toHaveLength(1);
    const audit = await tailAudit(db);
    expect(audit.map((e) => [e.actor, e.action, e.subject, e.municipalityCode, e.details])).toEqual([
      ['cli:test', 'staff.create', `staff:${clerk.id}`, A, { role: 'clerk' }],
      ['cli:test', 'staff.create', `staff:${ops.id}`, null, { role: 'operator' }],
    ]);
  });

  it('lets a supervisor manage clerks of their municipality only', async () => {
    const { db } = current();
    const staff = new StaffService(db, { scrypt: FAST });
    const s = await staff.createStaff(
      { username: 'sup-a', password: PW, role: 'supervisor', municipalityCode: A },
      'system',
    );
    const sup: Principal = { staffId: s.id, username: s.username, role: 'supervisor', municipalityCode: A };
    const c = await staff.createStaff(
      { username: 'clerk-a', password: PW, role: 'clerk', municipalityCode: A },
      sup,
    );
    await expect(
      staff.createStaff({ username: 'clerk-b', password: PW, role: 'clerk', municipalityCode: B }, sup),
    ).rejects.toThrow(ForbiddenError);
    await expect(
      staff.createStaff({ username: 'sup-a2', password: PW, role: 'supervisor', municipalityCode: A }, sup),
    ).rejects.toThrow(ForbiddenError);
    await staff.createStaff(
      { username: 'clerk-b', password: PW, role: 'clerk', municipalityCode: B },
      'system',
    );
    await expect(staff.disableStaff('clerk-b', sup)).rejects.toThrow(ForbiddenError);
    expect((await staff.listStaff({ actor: sup })).map((x) => x.username)).toEqual(['sup-a', 'clerk-a']);
    expect(await staff.disableStaff('clerk-a', sup)).toEqual({ changed: true, sessionsRevoked: 0 });
    const last = (await tailAudit(db, { limit: 1 }))[0]!;
    expect(last).toMatchObject({ actor: `staff:${s.id}`, action: 'staff.disable', subject: `staff:${c.id}` });
  });

  it('logs in with the right password only, and never stores the password or the token', async () => {
    const store = current();
    const c = clock();
    const staff = new StaffService(store.db, { ...c, scrypt: FAST });
    const created = await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );

    expect((await loginError(staff.login('tanaka', 'wrong-password-123'))).code).toBe('invalid-credentials');
    expect((await loginError(staff.login('nobody', PW))).code).toBe('invalid-credentials');
    const res = await staff.login('TANAKA', PW);
    expect(res.principal).toEqual({
      staffId: created.id,
      username: 'tanaka',
      role: 'clerk',
      municipalityCode: A,
    });
    expect(res.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes
    expect(res.expiresAt).toBe(c.now() + 12 * 60 * MIN);
    expect(await staff.authenticate(res.token)).toEqual(res.principal);

    // The token is stored only as its SHA-256; neither it nor the password is anywhere in the tables.
    const sessions = await store.db.selectFrom('staff_sessions').selectAll().execute();
    expect(sessions.map((s) => s.token_hash)).toEqual([hashToken(res.token)]);
    const text = await dump(store);
    expect(text).not.toContain(res.token);
    expect(text).not.toContain(PW);
    if (store.backend === 'sqlite') {
      // nor in the database files (main file and write-ahead log)
      const path = store.options.sqlitePath!;
      const dir = dirname(path);
      for (const f of readdirSync(dir)) {
        const bytes = readFileSync(`${dir}/${f}`);
        expect(bytes.includes(Buffer.from(res.token)), f).toBe(false);
        expect(bytes.includes(Buffer.from(PW)), f).toBe(false);
      }
    }

    const audit = await tailAudit(store.db);
    expect(audit.slice(1).map((e) => [e.actor, e.action, e.subject, e.details])).toEqual([
      ['anonymous', 'staff.login-failed', `staff:${created.id}`, { reason: 'bad-password', failures: 1 }],
      ['anonymous', 'staff.login-failed', null, { reason: 'unknown-user' }],
      [`staff:${created.id}`, 'staff.login', `staff:${created.id}`, { session: res.sessionId }],
    ]);
    expect(JSON.stringify(audit)).not.toContain('nobody');
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, checked: 4 });
  });

  it('locks an account after 10 failures for 15 minutes, across store instances', async () => {
    const store = current();
    const c = clock();
    const staff = new StaffService(store.db, { ...c, scrypt: FAST });
    const created = await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );
    for (let i = 1; i <= 9; i++) {
      expect((await loginError(staff.login('tanaka', `wrong-password-${i}`))).code).toBe(
        'invalid-credentials',
      );
      c.advance(1000);
    }
    const tenth = await loginError(staff.login('tanaka', 'wrong-password-10'));
    expect(tenth.code).toBe('locked');
    expect(tenth.lockedUntil).toBe(c.now() + 15 * MIN);

    // A second store on the same database (another process) sees the lock: even the right password fails.
    const other = await openDatabase(store.options);
    try {
      const staff2 = new StaffService(other.db, { ...c, scrypt: FAST });
      const locked = await loginError(staff2.login('tanaka', PW));
      expect(locked.code).toBe('locked');
      expect(locked.message).toMatch(/locked until/);
      expect((await staff2.findStaff('tanaka'))?.lockedUntil).toBe(tenth.lockedUntil);
      c.advance(15 * MIN - 1);
      expect((await loginError(staff2.login('tanaka', PW))).code).toBe('locked');
      c.advance(1);
      const ok = await staff2.login('tanaka', PW);
      expect(ok.principal.staffId).toBe(created.id);
      expect((await staff2.findStaff('tanaka'))?.failedLogins).toBe(0);
    } finally {
      await other.close();
    }

    const audit = await tailAudit(store.db, { limit: 100 });
    const actions = audit.map((e) => e.action);
    expect(actions.filter((a) => a === 'staff.login-failed')).toHaveLength(12);
    const lock = audit.find((e) => e.action === 'staff.locked')!;
    expect(lock).toMatchObject({
      actor: 'system',
      subject: `staff:${created.id}`,
      details: { failures: 10 },
    });
    expect(audit.filter((e) => e.details.reason === 'locked')).toHaveLength(2);
    expect(actions.at(-1)).toBe('staff.login');
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true });
  });

  it('counts concurrent failures exactly once each', async () => {
    const { db } = current();
    const staff = new StaffService(db, { scrypt: FAST });
    await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => staff.login('tanaka', `wrong-password-${i}`)),
    );
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as LoginError).code : 'ok'));
    expect(codes.filter((x) => x === 'locked')).toHaveLength(1);
    expect(codes.filter((x) => x === 'invalid-credentials')).toHaveLength(9);
  });

  it('ends a session after 30 idle minutes, and after 12 hours however busy', async () => {
    const c = clock();
    const staff = new StaffService(current().db, { ...c, scrypt: FAST });
    await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );

    const idle = await staff.login('tanaka', PW);
    c.advance(29 * MIN);
    await staff.authenticate(idle.token); // use within 30 minutes keeps it alive
    c.advance(29 * MIN);
    await staff.authenticate(idle.token);
    c.advance(30 * MIN);
    expect(await sessionError(staff.authenticate(idle.token))).toBe('idle');

    const busy = await staff.login('tanaka', PW);
    for (let t = 0; t < 12 * 60 - 20; t += 20) {
      c.advance(20 * MIN);
      await staff.authenticate(busy.token);
    }
    c.advance(20 * MIN); // 12 h after login
    expect(await sessionError(staff.authenticate(busy.token))).toBe('expired');

    expect(await sessionError(staff.authenticate('not-a-token'))).toBe('invalid');
    expect(await sessionError(staff.authenticate('A'.repeat(43)))).toBe('invalid');
  });

  it('ends sessions at logout and when the account is disabled or its password reset', async () => {
    const { db } = current();
    const c = clock();
    const staff = new StaffService(db, { ...c, scrypt: FAST });
    const created = await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );

    const s1 = await staff.login('tanaka', PW);
    expect(await staff.logout(s1.token)).toBe(true);
    expect(await sessionError(staff.authenticate(s1.token))).toBe('revoked');
    expect(await staff.logout(s1.token)).toBe(false);

    const s2 = await staff.login('tanaka', PW);
    await staff.resetPassword('tanaka', 'another-password-2025', 'cli:test');
    expect(await sessionError(staff.authenticate(s2.token))).toBe('revoked');
    expect((await loginError(staff.login('tanaka', PW))).code).toBe('invalid-credentials');

    const s3 = await staff.login('tanaka', 'another-password-2025');
    const s4 = await staff.login('tanaka', 'another-password-2025');
    expect(await staff.disableStaff('tanaka', 'cli:test')).toEqual({ changed: true, sessionsRevoked: 2 });
    expect(await staff.disableStaff('tanaka', 'cli:test')).toEqual({ changed: false, sessionsRevoked: 0 });
    expect(await sessionError(staff.authenticate(s3.token))).toBe('revoked');
    expect(await sessionError(staff.authenticate(s4.token))).toBe('revoked');
    expect((await loginError(staff.login('tanaka', 'another-password-2025'))).code).toBe(
      'invalid-credentials',
    );

    const audit = await tailAudit(db, { limit: 100 });
    expect(audit.filter((e) => e.action === 'staff.session-revoked')).toEqual([
      expect.objectContaining({
        actor: `staff:${created.id}`,
        details: { session: s1.sessionId, reason: 'logout' },
      }),
    ]);
    expect(audit.find((e) => e.action === 'staff.password-reset')?.details).toEqual({ sessionsRevoked: 1 });
    expect(audit.find((e) => e.action === 'staff.disable')?.details).toEqual({ sessionsRevoked: 2 });
    expect(audit.at(-1)).toMatchObject({ action: 'staff.login-failed', details: { reason: 'disabled' } });

    // Sessions long over are purged.
    c.advance(13 * 60 * MIN + 24 * 60 * MIN);
    expect(await staff.purgeSessions()).toBe(4);
  });

  it('rehashes a password stored with weaker parameters at the next login', async () => {
    const { db } = current();
    const weak = new StaffService(db, { scrypt: { ln: 12, r: 8, p: 1 } });
    await weak.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );
    const before = await db.selectFrom('staff').select('password_hash').executeTakeFirstOrThrow();
    expect(before.password_hash).toMatch(/^\$scrypt\$ln=12,/);
    const staff = new StaffService(db);
    await staff.login('tanaka', PW);
    const after = await db.selectFrom('staff').select('password_hash').executeTakeFirstOrThrow();
    expect(after.password_hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
    await staff.login('tanaka', PW);
  });

  it('applies role changes to open sessions at once', async () => {
    const { db } = current();
    const staff = new StaffService(db, { scrypt: FAST });
    await staff.createStaff(
      { username: 'tanaka', password: PW, role: 'clerk', municipalityCode: A },
      'system',
    );
    const s = await staff.login('tanaka', PW);
    await db.updateTable('staff').set({ role: 'supervisor' }).where('username', '=', 'tanaka').execute();
    expect((await staff.authenticate(s.token)).role).toBe('supervisor');
  });
});
