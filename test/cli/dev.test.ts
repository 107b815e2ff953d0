// `jpki dev populate` as a developer runs it: the real command in a child process, on SQLite.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { jpki } from './jpki.ts';

describe('jpki dev populate', () => {
  let ta: TestAuthority;
  beforeAll(async () => {
    ta = await createTestAuthority();
    // The command opens the store itself: the test's connection must not hold it.
    await ta.authority.close();
  });
  afterAll(async () => {
    await ta?.close();
  });

  it('fills the store, says what it added, and adds nothing the second time', async () => {
    const first = await jpki(['dev', 'populate', '--data', ta.dir, '--count', '2_000', '--revoked', '0.1']);
    expect(first.stderr).not.toMatch(/jpki:/);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(
      /^added 2000 certificates \(200 revoked\); the store holds 2000 synthetic certificates, 200 revoked/,
    );
    const again = await jpki(['dev', 'populate', '--data', ta.dir, '--count', '2000']);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/^nothing to add; the store holds 2000 synthetic certificates, 200 revoked/);
  });

  it('refuses a bad count or fraction with one line and exit code 1', async () => {
    const count = await jpki(['dev', 'populate', '--data', ta.dir, '--count', 'lots']);
    expect(count.status).toBe(1);
    expect(count.stderr.trim()).toBe('jpki: --count: a whole number, not lots');
    const fraction = await jpki(['dev', 'populate', '--data', ta.dir, '--count', '10', '--revoked', '5%']);
    expect(fraction.status).toBe(1);
    expect(fraction.stderr.trim()).toBe('jpki: --revoked: a fraction between 0 and 1, not 5%');
  });
});
