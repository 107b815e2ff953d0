// `jpki register import | show | event` as an operator runs them: the real command in child processes on
// a temporary data directory, on SQLite and (when JPKI_TEST_POSTGRES_URL is set) on PostgreSQL through
// DATABASE_URL. Certificates for the show/event cases are issued in this process on the same database,
// as the counter would.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority } from '../../src/authority/authority.ts';
import { dataPaths } from '../../src/authority/config.ts';
import { issueForResident } from '../../src/counter/issuance.ts';
import { parseCsvStream } from '../../src/register/csv.ts';
import { openDatabase } from '../../src/store/db.ts';
import {
  createTestPostgresDatabase,
  TEST_PASSPHRASE,
  type TestPostgresDatabase,
} from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { tempDir } from '../helpers/openssl.ts';
import { makeCsrs } from '../register/helpers.ts';
import { BIN, cleanEnv, jpki, ok, oneLineFailure } from './jpki.ts';

const tmp = tempDir('jpki-cli-register-');
const data = tmp.path('data');
let csrs: Buffer[];

beforeAll(async () => {
  const init = jpki(['init', '--data', data, '--algorithm', 'ecdsa-p256']);
  csrs = makeCsrs(4);
  ok(await init);
});
afterAll(() => tmp.cleanup());

const HEADER = 'resident_id,municipality_code,name,name_kana,date_of_birth,sex,address';
const LONG_ADDRESS = `東京都千代田区${'一'.repeat(200)}`;

/** Rows of the error report, as a spreadsheet or a script would read them back. */
async function readReport(path: string): Promise<string[][]> {
  const rows: string[][] = [];
  for await (const records of parseCsvStream([readFileSync(path)]))
    for (const r of records) rows.push(r.fields);
  return rows;
}

describe.each(testStores())('jpki register (%s)', (backend) => {
  let pgDb: TestPostgresDatabase | undefined;
  let env: NodeJS.ProcessEnv = {};
  const f = (name: string) => tmp.path(`${backend}-${name}`);
  const run = (args: readonly string[]) => jpki([...args, '--data', data], env);
  // Resident ids per backend: the SQLite file and the PostgreSQL database are different registers,
  // but the audit log checks below read one of them each.
  const id = (n: number) => `${backend === 'sqlite' ? 1 : 2}00000000${String(n).padStart(2, '0')}`;

  beforeAll(async () => {
    if (backend === 'postgres') {
      pgDb = await createTestPostgresDatabase();
      env = { DATABASE_URL: pgDb.url };
    }
  });
  afterAll(async () => {
    await pgDb?.drop();
  });

  const auditEntries = async () =>
    ok(await run(['audit', 'tail', '-n', '200', '--json']))
      .stdout.trim()
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as {
            action: string;
            actor: string;
            subject: string | null;
            details: Record<string, unknown>;
          },
      );

  it('imports good rows, refuses bad ones with a per-row report, exit 1; importing again changes nothing', async () => {
    const csv = [
      HEADER,
      `${id(1)},131016,山田 太郎,ヤマダ タロウ,1980-04-01,M,東京都千代田区霞が関2丁目1番2号`, // line 2 ok
      `${id(2)},131016,佐藤 花子,,1985-02-30,F,東京都千代田区`, // 3: impossible date
      `${id(3)},131016,,,1990-01-01,M,東京都千代田区`, // 4: empty name
      `${id(4)},131016,"中村\u0007陽菜",,2000-01-01,F,東京都新宿区`, // 5: control character
      `${id(5)},131016,高橋 健太,,1990-01-01,M,${LONG_ADDRESS}`, // 6: over-long address
      `${id(1)},131016,山田 次郎,,1981-04-01,M,東京都千代田区`, // 7: duplicate resident id
      `${id(6)},131016,鈴木 一郎,,,U,東京都千代田区永田町1丁目`, // 8 ok (date of birth unknown)
      '=SUM(1),131016,伊藤 陽菜,,2000-01-01,F,東京都千代田区', // 9: bad id, a formula
    ].join('\r\n');
    writeFileSync(f('mixed.csv'), csv);

    const first = await run([
      'register',
      'import',
      '--csv',
      f('mixed.csv'),
      '--errors',
      f('errors.csv'),
      '--date',
      '2020-01-01',
    ]);
    expect(first.status, first.stderr).toBe(1);
    expect(first.stderr).toBe(''); // not a terminal: no progress bar, just the summary
    expect(first.stdout).toMatch(
      /^import [0-9a-f]{12} of .*mixed\.csv: 8 rows read, 2 imported, 0 unchanged \(already registered with the same facts\), 6 failed \([\d,]+ rows\/s\)\n6 row errors written to .*errors\.csv\n$/,
    );
    const report = await readReport(f('errors.csv'));
    expect(readFileSync(f('errors.csv')).subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(report[0]).toEqual(['line', 'resident_id', 'field', 'reason']);
    expect(report.slice(1).map((r) => r.slice(0, 3))).toEqual([
      ['3', id(2), 'date_of_birth'],
      ['4', id(3), 'name'],
      ['5', id(4), 'name'],
      ['6', id(5), 'address'],
      ['7', id(1), 'resident_id'],
      ['9', "'=SUM(1)", 'resident_id'], // defused: a spreadsheet shows it as text
    ]);
    const reasons = report.slice(1).map((r) => r[3]);
    expect(reasons[0]).toMatch(/real date YYYY-MM-DD, not "1985-02-30"/);
    expect(reasons[1]).toMatch(/empty/);
    expect(reasons[2]).toBe('control characters in the name');
    expect(reasons[3]).toMatch(/longer than 200 characters/);
    expect(reasons[4]).toMatch(/duplicate resident id: already on row 2/);
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    // The imported residents are in the register.
    const shown = ok(await run(['register', 'show', '--resident', id(6)]));
    expect(shown.stdout).toMatch(new RegExp(`^resident ${id(6)}: resident, municipality 131016`));
    expect(shown.stdout).toContain('date of birth  unknown');
    oneLineFailure(await run(['register', 'show', '--resident', id(2)]), /no resident with resident id/);

    // Again, without --errors: nothing new, the first errors printed.
    const again = await run(['register', 'import', '--csv', f('mixed.csv')]);
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/8 rows read, 0 imported, 2 unchanged .* 6 failed/);
    expect(again.stdout).toContain(`  line 3, date_of_birth: the date of birth must be a real date`);
    expect(again.stdout).toContain('line 7, resident_id: duplicate resident id: already on row 2');
    expect(again.stdout).toContain('line 5, name: control characters in the name');

    // A file of good rows only: exit 0, and again exit 0 with everything unchanged.
    writeFileSync(f('good.csv'), `${HEADER}\n${id(7)},131016,渡辺 直美,,1975-12-31,F,東京都千代田区\n`);
    expect(ok(await run(['register', 'import', '--csv', f('good.csv')])).stdout).toMatch(
      /1 rows read, 1 imported, 0 unchanged .* 0 failed/,
    );
    expect(ok(await run(['register', 'import', '--csv', f('good.csv')])).stdout).toMatch(
      /1 rows read, 0 imported, 1 unchanged .* 0 failed/,
    );

    const imports = (await auditEntries()).filter((e) => e.action === 'register.import');
    expect(imports.map((e) => e.details.imported)).toEqual([2, 0, 1, 0]);
    expect(imports[0]).toMatchObject({
      actor: expect.stringMatching(/^cli/),
      details: { rows: 8, failed: 6, unchanged: 0, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
  });

  it('refuses what it cannot import with one line: garbage, Shift_JIS, a bad header, no file', async () => {
    writeFileSync(f('garbage.csv'), readFileSync(process.execPath).subarray(0, 4096));
    // 山田 in Shift_JIS
    writeFileSync(
      f('sjis.csv'),
      Buffer.concat([Buffer.from(`${HEADER}\n${id(8)},131016,`), Buffer.from([0x8e, 0x52, 0x93, 0x63])]),
    );
    writeFileSync(f('header.csv'), `resident,name\n${id(8)},x\n`);
    writeFileSync(f('empty.csv'), '');
    const [garbage, sjis, header, empty, missing, noCsv, sameFile, noAuthority] = await Promise.all([
      run(['register', 'import', '--csv', f('garbage.csv'), '--errors', f('garbage-errors.csv')]),
      run(['register', 'import', '--csv', f('sjis.csv')]),
      run(['register', 'import', '--csv', f('header.csv')]),
      run(['register', 'import', '--csv', f('empty.csv')]),
      run(['register', 'import', '--csv', f('missing.csv')]),
      run(['register', 'import']),
      run(['register', 'import', '--csv', f('good.csv'), '--errors', f('good.csv')]),
      jpki(['register', 'import', '--data', tmp.path('nowhere'), '--csv', f('good.csv')], env),
    ]);
    expect([garbage, sjis, header, empty, noAuthority].map((r) => r.status)).toEqual([2, 2, 2, 2, 2]);
    oneLineFailure(garbage, /(not UTF-8 text|unknown column)/);
    oneLineFailure(sjis, /sjis\.csv is not UTF-8 text; a Shift_JIS file can be converted with: iconv/);
    oneLineFailure(header, /unknown column\(s\) "resident"/);
    oneLineFailure(empty, /the file is empty/);
    oneLineFailure(noAuthority, /no authority in .*jpki init/);
    expect(missing.status).toBe(3);
    oneLineFailure(missing, /cannot read .*missing\.csv: ENOENT/);
    expect(noCsv.status).toBe(3);
    expect(noCsv.stderr).toMatch(/required option '--csv <file>'/);
    expect(sameFile.status).toBe(3);
    oneLineFailure(sameFile, /--errors must not be the --csv file/);
    expect(readFileSync(f('good.csv'), 'utf8')).toMatch(/^resident_id/); // untouched
    // Nothing was left half-written: no report of the refused file, no temporary file.
    expect(existsSync(f('garbage-errors.csv'))).toBe(false);
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(ok(await run(['register', 'show', '--resident', id(7)])).stdout).toContain('渡辺');
  });

  it('Ctrl-C stops the import with a line and no half-written report; importing again completes it', async () => {
    const total = 150_000;
    const prefix = backend === 'sqlite' ? 5 : 6;
    const lines = [HEADER];
    for (let i = 0; i < total; i++)
      lines.push(
        `${prefix}${String(i).padStart(10, '0')},131016,小林 誠,,1960-02-29,M,東京都千代田区丸の内${i}`,
      );
    writeFileSync(f('large.csv'), lines.join('\n'));
    const child = spawn(
      process.execPath,
      [BIN, 'register', 'import', '--data', data, '--csv', f('large.csv'), '--errors', f('large-errors.csv')],
      { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    // Interrupted once some batches are committed, well before the end.
    const store = await openDatabase(
      pgDb ? { databaseUrl: pgDb.url } : { sqlitePath: dataPaths(data).sqlite },
    );
    const ours = async () =>
      Number(
        (
          await store.db
            .selectFrom('residents')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('resident_id', 'like', `${prefix}%`)
            .executeTakeFirstOrThrow()
        ).n,
      );
    let committed = 0;
    try {
      for (let i = 0; i < 600 && committed === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        committed = await ours();
      }
    } finally {
      await store.close();
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toBe(
      'jpki: import interrupted; the rows committed so far stay registered, and importing the same file again completes it\n',
    );
    expect(existsSync(f('large-errors.csv'))).toBe(false);
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    const again = ok(await run(['register', 'import', '--csv', f('large.csv')]));
    const m = /150,000 rows read, ([\d,]+) imported, ([\d,]+) unchanged .* 0 failed/.exec(again.stdout);
    expect(m, again.stdout).not.toBeNull();
    const imported = Number(m![1]!.replace(/,/g, ''));
    const unchanged = Number(m![2]!.replace(/,/g, ''));
    expect(committed).toBeGreaterThan(0);
    expect(unchanged).toBeGreaterThanOrEqual(committed); // what the interrupted run had committed
    expect(unchanged).toBeLessThan(total);
    expect(imported + unchanged).toBe(total);
  });

  // util-linux script(1) gives the command a terminal.
  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)('shows a progress bar on a terminal', async () => {
    const rows = Array.from(
      { length: 3000 },
      (_, i) =>
        `${backend === 'sqlite' ? 3 : 4}${String(i).padStart(10, '0')},131016,木村 拓也,,1972-11-13,M,東京都千代田区${i}`,
    );
    writeFileSync(f('many.csv'), [HEADER, ...rows].join('\n'));
    const cmd = [process.execPath, BIN, 'register', 'import', '--data', data, '--csv', f('many.csv')]
      .map((a) => `'${a}'`)
      .join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      encoding: 'utf8',
      env: { ...cleanEnv(), ...env, COLUMNS: '160' },
      timeout: 60_000,
    });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(
      /100% [\d.]+\/[\d.]+ MB \|[=-]+\| 3,000 rows [\d,]+\/s, imported 3,000, unchanged 0, failed 0/,
    );
    expect(r.stdout).toMatch(/3,000 rows read, 3,000 imported/);
  });

  it('event: a move revokes the signature certificate, the record shows why and that a new one can be had', async () => {
    const resident = id(1); // 山田 太郎, imported above
    const authority = await Authority.open(data, {
      databaseUrl: pgDb?.url,
      env: { ...process.env, JPKI_KEY_PASSPHRASE: TEST_PASSPHRASE },
    });
    let sign: string;
    let auth: string;
    try {
      sign = (
        await issueForResident(authority, authority.store, {
          residentId: resident,
          kind: 'sign',
          csr: csrs[0]!,
        })
      ).serial;
      auth = (
        await issueForResident(authority, authority.store, {
          residentId: resident,
          kind: 'auth',
          csr: csrs[1]!,
        })
      ).serial;
    } finally {
      await authority.close();
    }

    const args = [
      'register',
      'event',
      '--resident',
      resident,
      '--type',
      'moved-within',
      '--date',
      '2024-04-01',
    ];
    const moved = ok(
      await run([
        ...args,
        '--address',
        '東京都千代田区永田町1丁目7番1号',
        '--source-id',
        `${backend}-move-1`,
      ]),
    );
    expect(moved.stdout).toMatch(
      new RegExp(
        `^recorded register event #\\d+: moved-within of resident ${resident}, effective 2024-04-01, source ${backend}-move-1\\n  changed now: address\\n  revoked certificate ${sign} \\(affiliationChanged\\)\\n$`,
      ),
    );

    const shown = ok(await run(['register', 'show', '--resident', resident])).stdout;
    expect(shown).toContain('address        東京都千代田区永田町1丁目7番1号');
    expect(shown).toMatch(/\n {2}2020-01-01 {2}#\d+ registered {2}\(import [0-9a-f]{12} line 2; recorded /);
    expect(shown).toMatch(
      /2024-04-01 {2}#\d+ moved-within address, addressSubstitutes {2}\(source .*-move-1; recorded/,
    );
    expect(shown).toMatch(
      new RegExp(
        `signature ${sign}: revoked .*, reason affiliationChanged \\(register event #\\d+ moved-within of 2024-04-01\\)`,
      ),
    );
    expect(shown).toContain(
      '転居により署名用電子証明書は失効しました。市区町村窓口で新しい証明書の発行を受けられます。',
    );
    expect(shown).toContain(
      'Your signature certificate was revoked because you moved. You can get a new one at your municipal counter.',
    );
    expect(shown).toMatch(new RegExp(`authentication ${auth}: valid \\(current\\)`));

    const json = JSON.parse(ok(await run(['register', 'show', '--resident', resident, '--json'])).stdout);
    expect(json.resident).toMatchObject({ residentId: resident, status: 'resident' });
    expect(json.history.map((e: { type: string }) => e.type)).toEqual(['registered', 'moved-within']);
    expect(json.certificates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          serial: sign,
          status: 'revoked',
          revocation: expect.objectContaining({ reason: 'affiliationChanged' }),
        }),
        expect.objectContaining({ serial: auth, status: 'valid', current: true }),
      ]),
    );

    // The same source event again: nothing changes. The same id for something else: refused.
    const repeat = ok(
      await run([
        ...args,
        '--address',
        '東京都千代田区永田町1丁目7番1号',
        '--source-id',
        `${backend}-move-1`,
      ]),
    );
    expect(repeat.stdout).toMatch(/was already recorded as register event #\d+ .*; nothing changed/);
    oneLineFailure(
      await run([...args, '--address', '東京都港区', '--source-id', `${backend}-move-1`]),
      /source event id .*-move-1 was already recorded .* with different content/,
    );

    // Death revokes what is left, and the record says there is nothing to apply for.
    const died = ok(
      await run(['register', 'event', '--resident', resident, '--type', 'died', '--date', '2024-05-01']),
    );
    expect(died.stdout).toContain(`revoked certificate ${auth} (cessationOfOperation)`);
    const after = ok(await run(['register', 'show', '--resident', resident])).stdout;
    expect(after).toMatch(new RegExp(`^resident ${resident}: deceased`));
    expect(after).toContain('Your user-authentication certificate was revoked because the holder died.');
    expect(after).not.toContain('You can get a new one');

    // The move, its repetition (a duplicate) and the death; the refused reuse recorded nothing.
    const audit = await auditEntries();
    expect(
      audit
        .filter((e) => e.action === 'register.event' && e.subject === `resident:${resident}`)
        .map((e) => [e.details.type, e.details.duplicate, e.details.outbox]),
    ).toEqual([
      ['moved-within', false, 'revoke-sign'],
      ['moved-within', true, null],
      ['died', false, 'revoke-all'],
    ]);
    expect(audit.some((e) => e.action === 'resident.read' && e.subject === `resident:${resident}`)).toBe(
      true,
    );
    expect(ok(await run(['audit', 'verify'])).stdout).toMatch(/^audit log OK/);
  });

  it('event: bad input and impossible events get one clear line, nothing recorded; --no-revoke leaves it to the outbox', async () => {
    const resident = id(6);
    const ev = (...a: string[]) => run(['register', 'event', '--resident', resident, ...a]);
    const [unknown, badId, addressOnDeath, future, noAddress, badType, control] = await Promise.all([
      run(['register', 'event', '--resident', id(99), '--type', 'moved-out']),
      run(['register', 'event', '--resident', '123', '--type', 'moved-out']),
      ev('--type', 'died', '--address', '東京都港区'),
      ev('--type', 'moved-out', '--date', '2999-01-01'),
      ev('--type', 'moved-within'),
      ev('--type', 'married'),
      ev('--type', 'name-changed', '--name', '鈴木\u001b[31m 一郎'),
    ]);
    oneLineFailure(unknown, /no resident with resident id/);
    oneLineFailure(badId, /--resident: .*11 digits/);
    oneLineFailure(addressOnDeath, /--address: a died event cannot change the address/);
    oneLineFailure(future, /--date: the effective date is in the future/);
    oneLineFailure(noAddress, /--address: the address is missing/);
    expect(badType.status).toBe(2);
    expect(badType.stderr).toMatch(/argument 'married' is invalid/);
    oneLineFailure(control, /--name: control characters in the name/);
    const history = JSON.parse(
      ok(await run(['register', 'show', '--resident', resident, '--json'])).stdout,
    ).history;
    expect(history).toHaveLength(1);

    // A resident without certificates moves out: recorded; nothing to revoke.
    const out = ok(await ev('--type', 'moved-out', '--no-revoke'));
    expect(out.stdout).toMatch(
      /moved-out of resident .*\n {2}changed now: status\n {2}the outbox asks to revoke the signature certificate, if valid; `jpki serve` does it \(--no-revoke\)\n$/,
    );
    const moveIn = ok(
      await ev(
        '--type',
        'moved-in',
        '--municipality',
        '131041',
        '--address',
        '東京都新宿区西新宿2丁目8番1号',
      ),
    );
    expect(moveIn.stdout).toMatch(/changed now: municipalityCode, address, addressSubstitutes, status/);
    expect(ok(await run(['register', 'show', '--resident', resident])).stdout).toMatch(
      new RegExp(`^resident ${resident}: resident, municipality 131041`),
    );
  });
});
