// `jpki staff …` and `jpki audit …` through the real command, on a SQLite data directory.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataPaths } from '../../src/authority/config.ts';
import { jpki, ok, oneLineFailure, usageError } from '../cli/jpki.ts';

const PW = 'counter-password-2024';
let dir: string;
let data: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jpki-staff-cli-'));
  data = join(dir, 'data');
  ok(await jpki(['init', '--data', data, '--algorithm', 'ecdsa-p256']));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('jpki staff and jpki audit', () => {
  it('adds accounts with the password from stdin or a file (never an argument); audit verify finds tampering', async () => {
    const pwFile = join(dir, 'pw.txt');
    writeFileSync(pwFile, `${PW}-ops\n`, { mode: 0o600 });
    const add = (args: string[], stdin?: string) =>
      jpki(
        ['staff', 'add', '--data', data, ...args],
        {},
        stdin === undefined ? undefined : Buffer.from(stdin),
      );
    // The first command creates the database; the ones below then run concurrently against it.
    const ops = await add(['--username', 'ops1', '--role', 'operator', '--password-file', pwFile]);
    expect(ok(ops).stdout).toMatch(/^staff 1 ops1 created \(operator\)\n$/);

    const [clerk, asArg, weak, noMuni, noAuthority, dup, disable] = await Promise.all([
      add(['--username', 'tanaka', '--role', 'clerk', '--municipality', '131016'], `${PW}\n`),
      add(['--username', 'x1', '--role', 'operator', '--password', PW]),
      add(['--username', 'suzuki', '--role', 'clerk', '--municipality', '131016'], 'short\n'),
      add(['--username', 'sato', '--role', 'supervisor'], PW),
      jpki(
        ['staff', 'add', '--data', join(dir, 'nowhere'), '--username', 'sato', '--role', 'operator'],
        {},
        Buffer.from(PW),
      ),
      add(['--username', 'OPS1', '--role', 'operator'], PW),
      jpki(['staff', 'disable', '--data', data, '--username', 'ops1']),
    ]);
    expect(ok(clerk).stdout).toMatch(/^staff \d+ tanaka created \(clerk, municipality 131016\)\n$/);
    usageError(asArg, /unknown option '--password'/);
    oneLineFailure(weak, /at least 12 characters/);
    oneLineFailure(noMuni, /needs the six-digit code/);
    oneLineFailure(noAuthority, /no authority in .*jpki init/);
    oneLineFailure(dup, /"ops1" already exists/);
    expect(ok(disable).stdout).toBe('disabled ops1; 0 session(s) ended\n');

    const [list, json, v, head, tail] = await Promise.all([
      jpki(['staff', 'list', '--data', data]),
      jpki(['staff', 'list', '--data', data, '--json']),
      jpki(['audit', 'verify', '--data', data]),
      jpki(['audit', 'head', '--data', data]),
      jpki(['audit', 'tail', '--data', data, '-n', '2']),
    ]);
    const lines = ok(list).stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+USERNAME\s+ROLE\s+MUNICIPALITY\s+STATUS\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1, 5))).toEqual(
      expect.arrayContaining([
        ['tanaka', 'clerk', '131016', 'active'],
        ['ops1', 'operator', '-', 'disabled'],
      ]),
    );
    expect(list.stdout).not.toContain(PW);
    const ops1 = ok(json)
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { username: string; disabledAt: number | null })
      .find((s) => s.username === 'ops1');
    expect(ops1?.disabledAt).toEqual(expect.any(Number));

    // verify: intact, one line with the count and the head to anchor
    const m = /^audit log OK: 3 entries verified, head (3:[0-9a-f]{64})\n$/.exec(ok(v).stdout);
    expect(m, v.stdout).not.toBeNull();
    expect(ok(head).stdout).toBe(`${m![1]}\n`);
    const rows = ok(tail).stdout.trim().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.split('  ')[0])).toEqual(['2', '3']);
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^\d {2}\S+Z {2}cli(:\S+)? {2}staff\.create {2}staff:2 {2}131016 {2}\{"role":"clerk"\} {2}[0-9a-f]{16}$/,
        ),
        expect.stringMatching(/^\d .* staff\.disable {2}staff:1 {2}- {2}\{"sessionsRevoked":0\}/),
      ]),
    );

    // Tamper with the file behind the trigger: verify reports the entry and exits 1.
    const db = new SQLite(dataPaths(data).sqlite);
    let first: string;
    try {
      first = (db.prepare('select hash from audit_log where seq = 1').get() as { hash: string }).hash;
      expect(() => db.prepare(`update audit_log set actor = 'cli:mallory' where seq = 2`).run()).toThrow(
        /append-only/,
      );
      db.exec('drop trigger audit_log_no_update');
      db.prepare(`update audit_log set actor = 'cli:mallory' where seq = 2`).run();
    } finally {
      db.close();
    }
    const [broken, anchored, wrongAnchor] = await Promise.all([
      jpki(['audit', 'verify', '--data', data, '--anchor', m![1]!]),
      jpki(['audit', 'verify', '--data', data, '--to', '1', '--anchor', `1:${first}`]),
      jpki(['audit', 'verify', '--data', data, '--to', '1', '--anchor', `1:${'0'.repeat(64)}`]),
    ]);
    expect(broken.status).toBe(1);
    oneLineFailure(broken, /audit log BROKEN at entry 2 \(hash-mismatch\).*1 entries verified before it/);
    expect(broken.stdout).toBe('');
    // the range before the damage still verifies against its anchor
    expect(ok(anchored).stdout).toMatch(/^audit log OK: 1 entries verified \(entries 1\.\.1\)/);
    oneLineFailure(wrongAnchor, /BROKEN at entry 1 \(anchor-mismatch\)/);
  });
});
