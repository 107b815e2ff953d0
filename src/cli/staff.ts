// jpki staff add | list | disable | unlock | reset-password
//
// These act directly on the authority's database (the SQLite file in the data directory, or DATABASE_URL),
// as whoever runs them: that person already holds the database, so the role table is not consulted, and
// the audit log records them as 'cli:<os user>'. Passwords are read from stdin or a file, never from
// the command line (where `ps` and shell history would show them).

import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { dataPaths, readConfig } from '../authority/config.ts';
import { STAFF_ROLES, type StaffRole } from '../staff/roles.ts';
import { type StaffInfo, StaffService } from '../staff/service.ts';
import { openDatabase, type Store } from '../store/db.ts';

export const dataOption = () =>
  new Option('--data <dir>', 'authority data directory').env('JPKI_DATA').default('./data');

/**
 * Opens the store of the authority in `dir` (its SQLite file, or DATABASE_URL) without loading keys,
 * runs fn, and closes it.
 */
export async function withDataStore<T>(dir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const dataDir = resolve(dir);
  readConfig(dataDir); // "no authority in …: run jpki init" rather than a new, empty database
  const databaseUrl = process.env.DATABASE_URL;
  const store = await openDatabase(databaseUrl ? { databaseUrl } : { sqlitePath: dataPaths(dataDir).sqlite });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The audit actor of whoever runs the command. */
export function cliActor(): string {
  let user = '';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  const clean = user.replace(/[^\w.@-]/g, '').slice(0, 64);
  return clean ? `cli:${clean}` : 'cli';
}

/** Reads a password from a file or stdin (refusing a terminal), dropping one trailing newline. */
export async function readPassword(file: string | undefined): Promise<string> {
  let text: string;
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  } else {
    if (process.stdin.isTTY)
      throw new Error('give the password on stdin (e.g. from a password manager) or with --password-file');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new Error('no password given (stdin or --password-file was empty)');
  return password;
}

export function registerStaffCommands(program: Command): void {
  const staff = program
    .command('staff')
    .description('staff accounts: municipal clerks and supervisors, authority operators');

  staff
    .command('add')
    .description('create a staff account; the password is read from stdin or --password-file')
    .addOption(dataOption())
    .requiredOption('--username <name>', 'login name (letters, digits, ".", "_", "-")')
    .addOption(new Option('--role <role>', 'role').choices(STAFF_ROLES).makeOptionMandatory())
    .option('--municipality <code>', 'six-digit local government code (clerks and supervisors)')
    .option('--password-file <file>', 'read the password from this file instead of stdin')
    .action(
      async (o: {
        data: string;
        username: string;
        role: StaffRole;
        municipality?: string;
        passwordFile?: string;
      }) => {
        const password = await readPassword(o.passwordFile);
        const s = await withDataStore(o.data, (store) =>
          new StaffService(store.db).createStaff(
            { username: o.username, password, role: o.role, municipalityCode: o.municipality ?? null },
            cliActor(),
          ),
        );
        process.stdout.write(`staff ${s.id} ${s.username} created (${describeScope(s)})\n`);
      },
    );

  staff
    .command('list')
    .description('list staff accounts')
    .addOption(dataOption())
    .option('--municipality <code>', 'only this municipality')
    .option('--json', 'one JSON object per line')
    .action(async (o: { data: string; municipality?: string; json?: boolean }) => {
      const list = await withDataStore(o.data, (store) =>
        new StaffService(store.db).listStaff({ municipalityCode: o.municipality }),
      );
      if (o.json) {
        for (const s of list) process.stdout.write(`${JSON.stringify(s)}\n`);
        return;
      }
      const rows = list.map((s) => [
        String(s.id),
        s.username,
        s.role,
        s.municipalityCode ?? '-',
        status(s),
        new Date(s.createdAt).toISOString(),
      ]);
      process.stdout.write(table([['ID', 'USERNAME', 'ROLE', 'MUNICIPALITY', 'STATUS', 'CREATED'], ...rows]));
    });

  staff
    .command('disable')
    .description('disable a staff account and end its sessions')
    .addOption(dataOption())
    .requiredOption('--username <name>', 'the account')
    .action(async (o: { data: string; username: string }) => {
      const r = await withDataStore(o.data, (store) =>
        new StaffService(store.db).disableStaff(o.username, cliActor()),
      );
      process.stdout.write(
        r.changed
          ? `disabled ${o.username}; ${r.sessionsRevoked} session(s) ended\n`
          : `${o.username} was already disabled\n`,
      );
    });

  staff
    .command('unlock')
    .description('lift a lock-out after too many failed logins')
    .addOption(dataOption())
    .requiredOption('--username <name>', 'the account')
    .action(async (o: { data: string; username: string }) => {
      await withDataStore(o.data, (store) => new StaffService(store.db).unlockStaff(o.username, cliActor()));
      process.stdout.write(`unlocked ${o.username}\n`);
    });

  staff
    .command('reset-password')
    .description('set a new password (from stdin or --password-file) and end the account’s sessions')
    .addOption(dataOption())
    .requiredOption('--username <name>', 'the account')
    .option('--password-file <file>', 'read the password from this file instead of stdin')
    .action(async (o: { data: string; username: string; passwordFile?: string }) => {
      const password = await readPassword(o.passwordFile);
      await withDataStore(o.data, (store) =>
        new StaffService(store.db).resetPassword(o.username, password, cliActor()),
      );
      process.stdout.write(`password of ${o.username} reset\n`);
    });
}

function describeScope(s: StaffInfo): string {
  return s.municipalityCode ? `${s.role}, municipality ${s.municipalityCode}` : s.role;
}

function status(s: StaffInfo): string {
  if (s.disabledAt !== null) return 'disabled';
  if (s.lockedUntil !== null) return `locked until ${new Date(s.lockedUntil).toISOString()}`;
  return 'active';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}
