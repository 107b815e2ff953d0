// jpki register import | show | event: the resident register from the command line.
//
// Like `jpki staff`, these act directly on the authority's database as whoever runs them (that person
// holds the database, so the role table is not consulted) and are audited as 'cli:<os user>':
// register.import (counts and the file's SHA-256), resident.read (show) and register.event, the
// entries the counter's HTTP API writes for the same actions.
//
// Exit status of `register import`, like `jpki verify`: 0 every row imported (or already registered
// with the same facts), 1 the file was read to the end but some rows were refused (see the row
// errors), 2 the import could not run or stopped (bad header, not UTF-8, no authority, database
// failure: rows of batches committed before a stop stay, and importing the same file again
// completes it), 3 usage error; 130 (143) when interrupted by SIGINT (SIGTERM). `show` and `event`
// exit 0, or 1 on an error (2 usage), like the other commands.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { type Command, type CommanderError, Option } from 'commander';
import { appendAudit } from '../audit/audit-log.ts';
import { Authority } from '../authority/authority.ts';
import { residentCertificates } from '../register/certificates.ts';
import { residentIdProblem } from '../register/codes.ts';
import { RegisterValidationError, UnknownResidentError } from '../register/errors.ts';
import { jstDate, type RegisterEventType, type ResidentFactsInput } from '../register/facts.ts';
import {
  type ImportProgress,
  type ImportResult,
  type ImportRowError,
  importResidents,
} from '../register/import.ts';
import { type OutboxOutcome, OutboxProcessor } from '../register/outbox.ts';
import {
  getResident,
  REGISTER_EVENT_TYPES,
  type RegisterEventInput,
  recordEvent,
  residentHistory,
} from '../register/register.ts';
import type { Store } from '../store/db.ts';
import { cliActor, dataOption, withDataStore } from './staff.ts';

/** Exit status of `jpki register import`. */
export const IMPORT_EXIT = { OK: 0, ROWS_FAILED: 1, NOT_IMPORTED: 2, USAGE: 3 } as const;

/** Row errors printed when no --errors file is given. */
const ERRORS_SHOWN = 20;

class UsageError extends Error {
  override name = 'UsageError';
}

const debug = process.argv.includes('--debug');

export function registerRegisterCommands(program: Command): void {
  const register = program
    .command('register')
    .description('the resident register: CSV import, a resident’s record, change events');

  register
    .command('import')
    .description(
      'import residents from a CSV file with a header row (docs/register.md); exit 0 all rows imported, 1 some rows refused, 2 not imported, 3 usage error',
    )
    .addOption(dataOption())
    .requiredOption('--csv <file>', 'the CSV file (UTF-8)')
    .option('--errors <file>', 'write every refused row to this CSV (line, resident_id, field, reason)')
    .option(
      '--date <YYYY-MM-DD>',
      'registration date of rows without effective_date (default: today in Japan)',
    )
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0) throw err; // --help
      process.exit(IMPORT_EXIT.USAGE);
    })
    .action(async (o: { data: string; csv: string; errors?: string; date?: string }) => {
      try {
        process.exitCode = await importCommand(o);
      } catch (e) {
        const err = e as Error;
        const usage = err instanceof UsageError;
        process.stderr.write(`jpki: ${oneLine(err.message)}\n`);
        if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
        process.exitCode = usage ? IMPORT_EXIT.USAGE : IMPORT_EXIT.NOT_IMPORTED;
      }
    });

  register
    .command('show')
    .description(
      'a resident’s record: the facts now, the history of events, the certificates and why any was revoked',
    )
    .addOption(dataOption())
    .requiredOption('--resident <id>', '11-digit resident id (住民票コード)')
    .option('--json', 'print the record as JSON')
    .action(async (o: { data: string; resident: string; json?: boolean }) => {
      checkResidentId(o.resident);
      await withDataStore(o.data, async (store) => {
        const record = await readRecord(store, o.resident);
        process.stdout.write(o.json ? `${JSON.stringify(record, null, 2)}\n` : formatRecord(record));
      });
    });

  register
    .command('event')
    .description(
      'record a register event (a move, a change of name, a death, a correction …); certificates it affects are revoked at once unless --no-revoke',
    )
    .addOption(dataOption())
    .requiredOption('--resident <id>', '11-digit resident id (住民票コード)')
    .addOption(
      new Option('--type <type>', 'what happened').choices(REGISTER_EVENT_TYPES).makeOptionMandatory(),
    )
    .option('--date <YYYY-MM-DD>', 'the date it took effect (default: today in Japan)')
    .option(
      '--source-id <id>',
      'the register network’s event id: recording the same id again changes nothing (default: a new id)',
    )
    .option('--municipality <code>', 'six-digit local government code (registered, moved-in)')
    .option('--name <name>', 'family and given name')
    .option('--kana <kana>', 'reading of the name in katakana')
    .option('--birth <date>', 'date of birth YYYY-MM-DD')
    .option('--sex <sex>', 'M, F or U (or 1, 2, 3)')
    .option('--address <address>', 'address from the prefecture on')
    .option(
      '--name-substitutes <flags>',
      "one '0'/'1' per character of the name ('1': a substitute character)",
    )
    .option('--address-substitutes <flags>', "one '0'/'1' per character of the address")
    .option('--no-revoke', 'only record the event; the outbox processor of `jpki serve` revokes')
    .action(async (o: EventOptions) => {
      checkResidentId(o.resident);
      const input: RegisterEventInput = {
        sourceEventId: o.sourceId ?? `cli-${randomBytes(8).toString('hex')}`,
        residentId: o.resident,
        type: o.type,
        effectiveDate: o.date ?? jstDate(new Date()),
        facts: eventFacts(o),
      };
      if (o.revoke)
        await withAuthority(o.data, (authority) => eventCommand(authority.store, input, authority));
      else await withDataStore(o.data, (store) => eventCommand(store, input));
    });
}

// ---------------------------------------------------------------------------------------------------------
// import

async function importCommand(o: {
  data: string;
  csv: string;
  errors?: string;
  date?: string;
}): Promise<number> {
  const csvPath = resolve(o.csv);
  let size: number;
  try {
    const st = statSync(csvPath);
    if (!st.isFile()) throw new UsageError(`--csv ${o.csv} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `cannot read ${o.csv}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const report = o.errors === undefined ? undefined : ErrorReport.create(resolve(o.errors), csvPath);
  const ui: { bar?: SingleBar } = {};
  // Ctrl-C: give the terminal back its cursor and line wrapping, leave no half-written report. The
  // transaction in progress rolls back with the process; the batches before it stay.
  const interrupted = (signal: NodeJS.Signals) => {
    ui.bar?.stop();
    report?.discard();
    process.stderr.write(
      'jpki: import interrupted; the rows committed so far stay registered, and importing the same file again completes it\n',
    );
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const outcome = await withDataStore(o.data, (store) =>
      runImport(store, csvPath, size, o.date, report, ui),
    );
    report?.commit();
    printSummary(o.csv, outcome, report);
    return outcome.failed > 0 ? IMPORT_EXIT.ROWS_FAILED : IMPORT_EXIT.OK;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    report?.discard();
  }
}

async function runImport(
  store: Store,
  csvPath: string,
  size: number,
  date: string | undefined,
  report: ErrorReport | undefined,
  ui: { bar?: SingleBar },
): Promise<ImportResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  const bar = process.stderr.isTTY ? progressBar(size) : undefined;
  ui.bar = bar;
  let last: ImportProgress = { rows: 0, imported: 0, unchanged: 0, failed: 0, elapsedMs: 0 };
  const show = () =>
    bar?.update(bytes, {
      read: mb(bytes),
      rows: last.rows.toLocaleString('en-US'),
      speed:
        last.elapsedMs > 0 ? Math.round((last.rows * 1000) / last.elapsedMs).toLocaleString('en-US') : '0',
      imported: last.imported.toLocaleString('en-US'),
      unchanged: last.unchanged.toLocaleString('en-US'),
      failed: last.failed.toLocaleString('en-US'),
    });
  async function* file() {
    for await (const chunk of createReadStream(csvPath, { highWaterMark: 256 * 1024 })) {
      const b = chunk as Buffer;
      bytes += b.length;
      hash.update(b);
      show();
      yield b;
    }
  }
  const audit = (details: Record<string, string | number | boolean>) =>
    appendAudit(store.db, { actor: cliActor(), action: 'register.import', details });
  let result: ImportResult;
  try {
    result = await importResidents(store, file(), {
      effectiveDate: date,
      onProgress: (p) => {
        last = p;
        show();
      },
      onError: report ? (e) => report.add(e) : undefined,
    });
  } catch (e) {
    bar?.stop();
    const err = e as NodeJS.ErrnoException;
    if (last.imported > 0)
      await audit({ completed: false, rows: last.rows, imported: last.imported, failed: last.failed }).catch(
        () => undefined,
      );
    const where =
      last.rows > 0
        ? `after ${last.rows} rows (${last.imported} imported; importing the file again completes it)`
        : '';
    if (err.code === 'ERR_ENCODING_INVALID_ENCODED_DATA')
      throw new Error(
        `${basename(csvPath)} is not UTF-8 text${where ? ` (stopped ${where})` : ''}; a Shift_JIS file can be converted with: iconv -f SHIFT_JIS -t UTF-8`,
      );
    if (where) throw new Error(`the import stopped ${where}: ${err.message}`, { cause: e });
    throw e;
  }
  show();
  bar?.stop();
  await audit({
    importId: result.importId,
    rows: result.rows,
    imported: result.imported,
    unchanged: result.unchanged,
    failed: result.failed,
    sha256: hash.digest('hex'),
  });
  return result;
}

function progressBar(size: number): SingleBar {
  // The text takes ~85 columns; the bar gets the rest of the terminal, within 10-40. What does not fit
  // is cut at the right (cli-progress turns line wrapping off), so the counts come before the ETA.
  const barsize = Math.min(40, Math.max(10, (process.stderr.columns ?? 80) - 85));
  const bar = new SingleBar({
    format:
      '{percentage}% {read}/{size} MB |{bar}| {rows} rows {speed}/s, imported {imported}, unchanged {unchanged}, failed {failed}, ETA {eta_formatted}',
    stream: process.stderr,
    barsize,
    hideCursor: true,
    etaBuffer: 50,
  });
  bar.start(Math.max(size, 1), 0, {
    read: '0.0',
    size: mb(size),
    rows: '0',
    speed: '0',
    imported: '0',
    unchanged: '0',
    failed: '0',
  });
  return bar;
}

const mb = (n: number) => (n / 1048576).toFixed(1);

function printSummary(file: string, r: ImportResult, report: ErrorReport | undefined): void {
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    `import ${r.importId} of ${file}: ${n(r.rows)} rows read, ${n(r.imported)} imported, ${n(r.unchanged)} unchanged (already registered with the same facts), ${n(r.failed)} failed (${n(r.rowsPerSecond)} rows/s)`,
  ];
  // A row can have several errors (one per field); the count of rows is `failed`.
  if (report) lines.push(`${n(report.count)} row errors written to ${report.path}`);
  else if (r.errors.length > 0) {
    for (const e of r.errors.slice(0, ERRORS_SHOWN)) lines.push(`  ${formatRowError(e)}`);
    const total = r.errorsTruncated ? `more than ${n(r.errors.length)}` : n(r.errors.length);
    if (r.errorsTruncated || r.errors.length > ERRORS_SHOWN)
      lines.push(`  … ${total} row errors in all; write every one with --errors FILE.csv`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

function formatRowError(e: ImportRowError): string {
  const who = e.residentId ? ` (resident ${printable(e.residentId, 40)})` : '';
  return `line ${e.row}${e.field ? `, ${e.field}` : ''}: ${printable(e.message, 300)}${who}`;
}

/**
 * The row errors as CSV (RFC 4180, CRLF, UTF-8 with a BOM so that spreadsheet programs read the Japanese
 * text): written to a temporary file beside the target and renamed when the import has finished, so an
 * import that stops leaves no half-written report.
 */
class ErrorReport {
  count = 0;
  #fd: number | undefined;
  #buffer: string[] = [];
  #size = 0;
  private constructor(
    readonly path: string,
    private readonly tmp: string,
    fd: number,
  ) {
    this.#fd = fd;
    this.#write(`\ufeffline,resident_id,field,reason\r\n`);
  }

  static create(path: string, csvPath: string): ErrorReport {
    if (path === csvPath) throw new UsageError('--errors must not be the --csv file');
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', 0o600);
    } catch (e) {
      throw new UsageError(
        `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    return new ErrorReport(path, tmp, fd);
  }

  add(e: ImportRowError): void {
    this.count++;
    this.#write(`${[String(e.row), e.residentId ?? '', e.field, e.message].map(csvCell).join(',')}\r\n`);
  }

  #write(line: string): void {
    this.#buffer.push(line);
    this.#size += line.length;
    if (this.#size >= 65536) this.#flush();
  }

  #flush(): void {
    if (this.#fd === undefined || this.#buffer.length === 0) return;
    writeSync(this.#fd, this.#buffer.join(''));
    this.#buffer = [];
    this.#size = 0;
  }

  commit(): void {
    this.#flush();
    closeSync(this.#fd!);
    this.#fd = undefined;
    renameSync(this.tmp, this.path);
  }

  /** Removes the temporary file if commit() did not happen. */
  discard(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
    rmSync(this.tmp, { force: true });
  }
}

/** One CSV field, quoted when needed; a leading =, +, -, @ is defused so spreadsheets show it as text. */
function csvCell(value: string): string {
  const v = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

// ---------------------------------------------------------------------------------------------------------
// show

async function readRecord(store: Store, residentId: string) {
  const resident = await getResident(store, residentId);
  if (!resident) throw new UnknownResidentError(residentId);
  const [history, certificates] = await Promise.all([
    residentHistory(store, residentId),
    residentCertificates(store, residentId),
  ]);
  await appendAudit(store.db, {
    actor: cliActor(),
    action: 'resident.read',
    subject: `resident:${residentId}`,
    municipalityCode: resident.municipalityCode,
    details: {},
  });
  return { resident, history, certificates };
}

type ResidentRecord = Awaited<ReturnType<typeof readRecord>>;

function formatRecord({ resident: r, history, certificates }: ResidentRecord): string {
  const out: string[] = [];
  out.push(`resident ${r.residentId}: ${r.status}, municipality ${r.municipalityCode}, version ${r.version}`);
  out.push(`  name           ${r.name}${r.nameKana ? ` (${r.nameKana})` : ''}`);
  out.push(`  date of birth  ${r.dateOfBirth ?? 'unknown'}`);
  out.push(`  sex            ${r.sex}`);
  out.push(`  address        ${r.address}`);
  out.push('', 'history (in effect order):');
  for (const e of history) {
    const changed = e.type === 'registered' ? '' : ` ${e.changed.join(', ')}`;
    const notes = [
      e.late ? 'late: recorded after a later-dated event' : '',
      e.importId ? `import ${e.importId} line ${e.importRow}` : '',
      e.sourceEventId ? `source ${e.sourceEventId}` : '',
      `recorded ${e.recordedAt.toISOString()}`,
    ].filter(Boolean);
    out.push(`  ${e.effectiveDate}  #${e.id} ${e.type}${changed}  (${notes.join('; ')})`);
  }
  out.push('', 'certificates:');
  if (certificates.length === 0) out.push('  none');
  for (const c of certificates) {
    const kind = c.kind === 'sign' ? 'signature' : 'authentication';
    let state = `${c.status}${c.current ? ' (current)' : ''}, ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()}`;
    if (c.revocation) {
      const ev = c.revocation.event;
      state = `revoked ${c.revocation.revokedAt.toISOString()}, reason ${c.revocation.reason}${
        ev
          ? ` (register event #${ev.id} ${ev.type} of ${ev.effectiveDate})`
          : c.revocation.cause
            ? ` (${c.revocation.cause})`
            : ''
      }`;
    }
    out.push(`  ${kind} ${c.serial}: ${state}`);
    if (c.message) out.push(`    ${c.message.ja}`, `    ${c.message.en}`);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// event

interface EventOptions {
  data: string;
  resident: string;
  type: RegisterEventType;
  date?: string;
  sourceId?: string;
  municipality?: string;
  name?: string;
  kana?: string;
  birth?: string;
  sex?: string;
  address?: string;
  nameSubstitutes?: string;
  addressSubstitutes?: string;
  revoke: boolean;
}

/** Service field → the option that gives it, for error messages. */
const OPTION_OF: Record<string, string> = {
  sourceEventId: '--source-id',
  residentId: '--resident',
  type: '--type',
  effectiveDate: '--date',
  municipalityCode: '--municipality',
  name: '--name',
  nameKana: '--kana',
  dateOfBirth: '--birth',
  sex: '--sex',
  address: '--address',
  nameSubstitutes: '--name-substitutes',
  addressSubstitutes: '--address-substitutes',
  facts: 'the facts',
};

function eventFacts(o: EventOptions): ResidentFactsInput | undefined {
  const facts: ResidentFactsInput = {
    municipalityCode: o.municipality,
    name: o.name,
    nameKana: o.kana,
    dateOfBirth: o.birth,
    sex: o.sex,
    address: o.address,
    nameSubstitutes: o.nameSubstitutes,
    addressSubstitutes: o.addressSubstitutes,
  };
  for (const k of Object.keys(facts) as (keyof ResidentFactsInput)[])
    if (facts[k] === undefined) delete facts[k];
  return Object.keys(facts).length > 0 ? facts : undefined;
}

async function eventCommand(store: Store, input: RegisterEventInput, authority?: Authority): Promise<void> {
  let r: Awaited<ReturnType<typeof recordEvent>>;
  try {
    r = await recordEvent(store, input, {
      // In the event's own transaction, as the counter's HTTP API does.
      audit: (r) => ({
        actor: cliActor(),
        action: 'register.event',
        subject: `resident:${input.residentId}`,
        municipalityCode: r.resident.municipalityCode,
        details: {
          event: r.event.id,
          type: input.type,
          sourceEventId: input.sourceEventId,
          duplicate: r.duplicate,
          outbox: r.outbox,
        },
      }),
    });
  } catch (e) {
    if (!(e instanceof RegisterValidationError)) throw e;
    const text = e.issues.map((i) =>
      i.field ? `${OPTION_OF[i.field] ?? i.field}: ${i.message}` : i.message,
    );
    throw new Error(text.join('; '));
  }
  const e = r.event;
  if (r.duplicate) {
    process.stdout.write(
      `source event id ${input.sourceEventId} was already recorded as register event #${e.id} (${e.type} of ${e.effectiveDate}); nothing changed\n`,
    );
    return;
  }
  const lines = [
    `recorded register event #${e.id}: ${e.type} of resident ${e.residentId}, effective ${e.effectiveDate}, source ${input.sourceEventId}`,
    r.applied.length > 0
      ? `  changed now: ${r.applied.join(', ')}`
      : e.late
        ? '  a late event: kept in the history; later-dated events already set what it sets'
        : '  no change to the current record',
  ];
  if (r.outbox) {
    const what =
      r.outbox === 'revoke-all'
        ? 'the signature and authentication certificates'
        : 'the signature certificate';
    if (!authority)
      lines.push(`  the outbox asks to revoke ${what}, if valid; \`jpki serve\` does it (--no-revoke)`);
    else {
      const outcomes: OutboxOutcome[] = [];
      let failure = '';
      await new OutboxProcessor(authority, {
        store,
        onProcessed: (x) => outcomes.push(x),
        onError: (err, row) => {
          if (row?.ref_id === e.id) failure = `: ${err instanceof Error ? err.message : String(err)}`;
        },
      }).drain();
      const mine = outcomes.find((x) => x.eventId === e.id);
      const reason = r.outbox === 'revoke-all' ? 'cessationOfOperation' : 'affiliationChanged';
      if (!mine)
        lines.push(
          `  ${what} could not be revoked now${oneLine(failure)}; the outbox keeps the request and \`jpki serve\` retries it`,
        );
      else if (mine.revoked.length === 0 && mine.kept.length === 0)
        lines.push(`  the resident holds no valid certificate that the event affects`);
      else {
        for (const s of mine.revoked) lines.push(`  revoked certificate ${s} (${reason})`);
        for (const s of mine.kept)
          lines.push(`  kept certificate ${s}: issued with facts that already include the event`);
      }
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------------------

async function withAuthority<T>(dir: string, fn: (a: Authority) => Promise<T>): Promise<T> {
  const authority = await Authority.open(resolve(dir));
  try {
    return await fn(authority);
  } finally {
    await authority.close();
  }
}

function checkResidentId(id: string): void {
  const p = residentIdProblem(id);
  if (p) throw new Error(`--resident: ${p}`);
}

/** Control characters (a terminal's escape sequences among them) shown as escapes; long text cut. */
function printable(text: string, max: number): string {
  const s = text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function oneLine(message: string): string {
  return printable(message, 500);
}
