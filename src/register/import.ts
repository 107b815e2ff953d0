// Bulk registration of residents from CSV (a municipality's initial load, or a test population).
//
//   const result = await importResidents(store, createReadStream('residents.csv'), { onProgress });
//
// - The file is streamed: records are parsed chunk by chunk and written in batches (default 1,000 rows,
//   one transaction and two multi-row INSERTs per batch), so memory does not grow with the file.
// - Each bad row is reported (row = line number, the header is row 1; column; message) and skipped; the
//   import goes on. A bad header (unknown, missing or repeated columns) refuses the whole file up front.
// - Each imported row is a 'registered' event in the history, carrying the import id and row number.
// - Idempotent: a resident already registered with the same facts is counted as unchanged, so the same
//   file can be imported again (after a crash half-way, say) without errors or duplicates. A resident id
//   registered with different facts, or repeated within the file, is reported, never overwritten:
//   changes go through recordEvent.
// - A database failure stops the import with an exception; the batches before it are committed and a
//   re-import completes it.

import { randomBytes } from 'node:crypto';
import type { Store } from '../store/db.ts';
import type { RegisterEventRow } from '../store/register-schema.ts';
import { type BulkColumn, bulkInsert } from './bulk.ts';
import { type CsvRecord, parseCsvStream } from './csv.ts';
import { ImportFormatError } from './errors.ts';
import {
  checkFacts,
  dateProblem,
  jstDate,
  RESIDENT_FIELDS,
  type ResidentFacts,
  type ResidentFactsInput,
  residentIdProblem,
} from './facts.ts';
import { type Snapshot, snapshotColumns } from './register.ts';
import { writeTransaction } from './tx.ts';

export interface ImportRowError {
  /** Line of the file (the header is line 1). */
  row: number;
  /** CSV column, or '' for the whole row. */
  field: string;
  message: string;
  residentId?: string;
}

export interface ImportProgress {
  /** Data rows read so far. */
  rows: number;
  /** Residents registered by this import. */
  imported: number;
  /** Rows whose resident was already registered with the same facts. */
  unchanged: number;
  /** Rows reported as errors. */
  failed: number;
  elapsedMs: number;
}

export interface ImportResult extends ImportProgress {
  importId: string;
  /** The first `maxErrors` row errors (all of them go to onError). */
  errors: ImportRowError[];
  errorsTruncated: boolean;
  rowsPerSecond: number;
}

export interface ImportOptions {
  /** Called after every committed batch. */
  onProgress?: (progress: ImportProgress) => void;
  /** Called for every row error, as it is found. */
  onError?: (error: ImportRowError) => void;
  /** Rows per transaction (default 1,000). */
  batchSize?: number;
  /** Row errors kept in the result (default 10,000); onError sees all of them. */
  maxErrors?: number;
  /** Registration date for rows without an effective_date column (default: today in Japan). */
  effectiveDate?: string;
  now?: Date;
}

type Column =
  | 'resident_id'
  | 'municipality_code'
  | 'name'
  | 'name_kana'
  | 'date_of_birth'
  | 'sex'
  | 'address'
  | 'name_substitutes'
  | 'address_substitutes'
  | 'effective_date';

const REQUIRED: readonly Column[] = [
  'resident_id',
  'municipality_code',
  'name',
  'date_of_birth',
  'sex',
  'address',
];

/** Accepted header names (lower-cased, trimmed) for each column. */
const ALIASES: Record<string, Column> = {
  resident_id: 'resident_id',
  住民票コード: 'resident_id',
  municipality_code: 'municipality_code',
  団体コード: 'municipality_code',
  市区町村コード: 'municipality_code',
  name: 'name',
  氏名: 'name',
  name_kana: 'name_kana',
  氏名カナ: 'name_kana',
  フリガナ: 'name_kana',
  date_of_birth: 'date_of_birth',
  生年月日: 'date_of_birth',
  sex: 'sex',
  性別: 'sex',
  address: 'address',
  住所: 'address',
  name_substitutes: 'name_substitutes',
  address_substitutes: 'address_substitutes',
  effective_date: 'effective_date',
  異動日: 'effective_date',
};

const FIELD_COLUMN: Record<string, Column> = {
  municipalityCode: 'municipality_code',
  name: 'name',
  nameKana: 'name_kana',
  dateOfBirth: 'date_of_birth',
  sex: 'sex',
  address: 'address',
  nameSubstitutes: 'name_substitutes',
  addressSubstitutes: 'address_substitutes',
};

const ALL_FACTS = new Set<keyof ResidentFacts>([
  'municipalityCode',
  'name',
  'nameKana',
  'dateOfBirth',
  'sex',
  'address',
  'nameSubstitutes',
  'addressSubstitutes',
]);

/** Rows per INSERT statement: keeps bound parameters under SQLite's 32,766 and PostgreSQL's 65,535. */
const ROWS_PER_STATEMENT = 1000;
const REGISTERED_CHANGED = RESIDENT_FIELDS.join(',');

interface GoodRow {
  row: number;
  residentId: string;
  snapshot: Snapshot;
  effectiveDate: string;
}

/**
 * Imports residents from a CSV stream with a header row. Columns (any order; Japanese names accepted):
 * resident_id, municipality_code, name, date_of_birth (may be empty: unknown), sex (M/F/U or 1/2/3),
 * address, and optionally name_kana, name_substitutes, address_substitutes, effective_date.
 */
export async function importResidents(
  store: Store,
  stream: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const started = performance.now();
  const now = opts.now ?? new Date();
  const batchSize = Math.max(1, opts.batchSize ?? 1000);
  const maxErrors = opts.maxErrors ?? 10_000;
  const defaultDate = opts.effectiveDate ?? jstDate(now);
  const dp = dateProblem(defaultDate, now, 'effective date');
  if (dp) throw new ImportFormatError(dp);
  const importId = randomBytes(6).toString('hex');
  const progress: ImportProgress = { rows: 0, imported: 0, unchanged: 0, failed: 0, elapsedMs: 0 };
  const errors: ImportRowError[] = [];
  let errorsTruncated = false;
  let progressReported = false;
  let lastReported: ImportProgress = { ...progress };

  const report = (e: ImportRowError) => {
    if (errors.length < maxErrors) errors.push(e);
    else errorsTruncated = true;
    opts.onError?.(e);
  };

  let columns: (Column | undefined)[] | undefined;
  let batch: GoodRow[] = [];
  let batchIds = new Map<string, number>();
  let inFlight: Promise<void> | undefined;

  const flush = async (rows: GoodRow[]) => {
    const outcome = await writeBatch(store, rows, importId, now.getTime());
    progress.imported += outcome.imported;
    progress.unchanged += outcome.unchanged;
    // Errors found against the database are reported once their batch is decided.
    progress.failed += outcome.errors.length;
    for (const e of outcome.errors) report(e);
    progress.elapsedMs = performance.now() - started;
    progressReported = true;
    lastReported = { ...progress };
    opts.onProgress?.(lastReported);
  };
  const startFlush = async () => {
    const rows = batch;
    batch = [];
    batchIds = new Map();
    // One batch in flight while the next is parsed (PostgreSQL round trips overlap with parsing).
    if (inFlight) await inFlight;
    inFlight = flush(rows);
    // Surface a failure at the next await rather than as an unhandled rejection.
    inFlight.catch(() => undefined);
  };

  for await (const records of parseCsvStream(stream)) {
    for (const rec of records) {
      if (!columns) {
        columns = parseHeader(rec);
        continue;
      }
      progress.rows++;
      const good = parseRow(rec, columns, defaultDate, now, report);
      if (!good) {
        progress.failed++;
        continue;
      }
      const seen = batchIds.get(good.residentId);
      if (seen !== undefined) {
        progress.failed++;
        report({
          row: good.row,
          field: 'resident_id',
          message: `duplicate resident id: already on row ${seen} of this file`,
          residentId: good.residentId,
        });
        continue;
      }
      batchIds.set(good.residentId, good.row);
      batch.push(good);
      if (batch.length >= batchSize) await startFlush();
    }
  }
  if (!columns) throw new ImportFormatError('the file is empty: a header row is needed');
  if (batch.length > 0) await startFlush();
  if (inFlight) await inFlight;
  progress.elapsedMs = performance.now() - started;
  // Once more at the end if rows after the last batch changed the counts (or there was no batch).
  if (!progressReported || lastReported.rows !== progress.rows || lastReported.failed !== progress.failed)
    opts.onProgress?.({ ...progress });
  return {
    ...progress,
    importId,
    errors,
    errorsTruncated,
    rowsPerSecond: progress.elapsedMs > 0 ? Math.round((progress.rows * 1000) / progress.elapsedMs) : 0,
  };
}

function parseHeader(rec: CsvRecord): (Column | undefined)[] {
  if (rec.error) throw new ImportFormatError(`the header row is malformed: ${rec.error}`);
  const cols = rec.fields.map((f) => ALIASES[f.trim().toLowerCase()]);
  const unknown = rec.fields.filter((_, i) => cols[i] === undefined);
  if (unknown.length > 0)
    throw new ImportFormatError(
      `unknown column(s) ${unknown.map((u) => JSON.stringify(u)).join(', ')}; expected ${Object.values(
        ALIASES,
      )
        .filter((v, i, a) => a.indexOf(v) === i)
        .join(', ')}`,
    );
  const repeated = cols.filter((c, i) => cols.indexOf(c) !== i);
  if (repeated.length > 0) throw new ImportFormatError(`column(s) given twice: ${repeated.join(', ')}`);
  const missing = REQUIRED.filter((c) => !cols.includes(c));
  if (missing.length > 0) throw new ImportFormatError(`missing column(s): ${missing.join(', ')}`);
  return cols;
}

function parseRow(
  rec: CsvRecord,
  columns: readonly (Column | undefined)[],
  defaultDate: string,
  now: Date,
  report: (e: ImportRowError) => void,
): GoodRow | undefined {
  const row = rec.line;
  if (rec.error) {
    report({ row, field: '', message: rec.error });
    return undefined;
  }
  if (rec.fields.length !== columns.length) {
    report({
      row,
      field: '',
      message: `the row has ${rec.fields.length} fields, the header ${columns.length}`,
    });
    return undefined;
  }
  const v: Partial<Record<Column, string>> = {};
  for (let i = 0; i < columns.length; i++) v[columns[i]!] = rec.fields[i]!;
  const residentId = (v.resident_id ?? '').trim();
  let ok = true;
  const idProblem = residentIdProblem(residentId);
  if (idProblem) {
    report({ row, field: 'resident_id', message: idProblem, residentId: residentId || undefined });
    ok = false;
  }
  const input: ResidentFactsInput = {
    municipalityCode: v.municipality_code,
    name: v.name,
    nameKana: v.name_kana,
    dateOfBirth: v.date_of_birth,
    sex: v.sex,
    address: v.address,
    nameSubstitutes: v.name_substitutes || undefined,
    addressSubstitutes: v.address_substitutes || undefined,
  };
  const { value, issues } = checkFacts(input, ALL_FACTS, now);
  for (const issue of issues) {
    report({ row, field: FIELD_COLUMN[issue.field] ?? issue.field, message: issue.message, residentId });
    ok = false;
  }
  let effectiveDate = defaultDate;
  if (v.effective_date !== undefined && v.effective_date.trim() !== '') {
    effectiveDate = v.effective_date.trim();
    const p = dateProblem(effectiveDate, now, 'effective date');
    if (p) {
      report({ row, field: 'effective_date', message: p, residentId });
      ok = false;
    }
  }
  if (!ok) return undefined;
  return { row, residentId, snapshot: { ...(value as ResidentFacts), status: 'resident' }, effectiveDate };
}

interface BatchOutcome {
  imported: number;
  unchanged: number;
  errors: ImportRowError[];
}

const RESIDENT_COLUMNS: readonly BulkColumn[] = [
  { name: 'resident_id', pg: 'text' },
  { name: 'municipality_code', pg: 'text' },
  { name: 'name', pg: 'text' },
  { name: 'name_kana', pg: 'text' },
  { name: 'date_of_birth', pg: 'text' },
  { name: 'sex', pg: 'text' },
  { name: 'address', pg: 'text' },
  { name: 'name_substitutes', pg: 'text' },
  { name: 'address_substitutes', pg: 'text' },
  { name: 'status', pg: 'text' },
  { name: 'effective_date', pg: 'text' },
  { name: 'version', pg: 'int8' },
  { name: 'updated_at', pg: 'int8' },
];

const EVENT_COLUMNS: readonly BulkColumn[] = [
  { name: 'resident_id', pg: 'text' },
  { name: 'type', pg: 'text' },
  { name: 'effective_date', pg: 'text' },
  { name: 'changed', pg: 'text' },
  { name: 'municipality_code', pg: 'text' },
  { name: 'name', pg: 'text' },
  { name: 'name_kana', pg: 'text' },
  { name: 'date_of_birth', pg: 'text' },
  { name: 'sex', pg: 'text' },
  { name: 'address', pg: 'text' },
  { name: 'name_substitutes', pg: 'text' },
  { name: 'address_substitutes', pg: 'text' },
  { name: 'status', pg: 'text' },
  { name: 'version', pg: 'int8' },
  { name: 'late', pg: 'int4' },
  { name: 'import_id', pg: 'text' },
  { name: 'import_row', pg: 'int8' },
  { name: 'recorded_at', pg: 'int8' },
];

async function writeBatch(
  store: Store,
  rows: GoodRow[],
  importId: string,
  nowMs: number,
): Promise<BatchOutcome> {
  const dialect = store.dialect;
  return writeTransaction(store, async (trx) => {
    const inserted = new Set<string>();
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const part = rows.slice(i, i + ROWS_PER_STATEMENT);
      const ids = await bulkInsert<{ resident_id: string }>(
        trx,
        dialect,
        'residents',
        RESIDENT_COLUMNS,
        part.map((r) => {
          const s = r.snapshot;
          return [
            r.residentId,
            s.municipalityCode,
            s.name,
            s.nameKana,
            s.dateOfBirth,
            s.sex,
            s.address,
            s.nameSubstitutes,
            s.addressSubstitutes,
            s.status,
            r.effectiveDate,
            1,
            nowMs,
          ];
        }),
        'on conflict (resident_id) do nothing returning resident_id',
      );
      for (const { resident_id } of ids) inserted.add(resident_id);
    }
    const fresh = inserted.size === rows.length ? rows : rows.filter((r) => inserted.has(r.residentId));
    for (let i = 0; i < fresh.length; i += ROWS_PER_STATEMENT) {
      await bulkInsert(
        trx,
        dialect,
        'register_events',
        EVENT_COLUMNS,
        fresh.slice(i, i + ROWS_PER_STATEMENT).map((r) => {
          const s = r.snapshot;
          return [
            r.residentId,
            'registered',
            r.effectiveDate,
            REGISTERED_CHANGED,
            s.municipalityCode,
            s.name,
            s.nameKana,
            s.dateOfBirth,
            s.sex,
            s.address,
            s.nameSubstitutes,
            s.addressSubstitutes,
            s.status,
            1,
            0,
            importId,
            r.row,
            nowMs,
          ];
        }),
      );
    }
    const outcome: BatchOutcome = { imported: fresh.length, unchanged: 0, errors: [] };
    const known = rows.filter((r) => !inserted.has(r.residentId));
    if (known.length === 0) return outcome;
    const registrations = new Map<string, RegisterEventRow>();
    for (let i = 0; i < known.length; i += ROWS_PER_STATEMENT) {
      const found = await trx
        .selectFrom('register_events')
        .selectAll()
        .where('type', '=', 'registered')
        .where(
          'resident_id',
          'in',
          known.slice(i, i + ROWS_PER_STATEMENT).map((r) => r.residentId),
        )
        .execute();
      for (const e of found) registrations.set(e.resident_id, e);
    }
    for (const r of known) {
      const reg = registrations.get(r.residentId);
      const err = (message: string) =>
        outcome.errors.push({ row: r.row, field: 'resident_id', message, residentId: r.residentId });
      if (!reg) err('the resident id is already in the register');
      else if (reg.import_id === importId)
        err(`duplicate resident id: already on row ${reg.import_row} of this file`);
      else if (sameFacts(reg, r.snapshot)) outcome.unchanged++;
      else {
        const from = reg.import_id ? `, row ${reg.import_row} of import ${reg.import_id}` : '';
        err(
          `resident ${r.residentId} is already registered with different facts (register event ${reg.id}${from}); changes are recorded as events, not imported`,
        );
      }
    }
    return outcome;
  });
}

function sameFacts(e: RegisterEventRow, s: Snapshot): boolean {
  const c = snapshotColumns(s);
  return (
    e.municipality_code === c.municipality_code &&
    e.name === c.name &&
    e.name_kana === c.name_kana &&
    e.date_of_birth === c.date_of_birth &&
    e.sex === c.sex &&
    e.address === c.address &&
    e.name_substitutes === c.name_substitutes &&
    e.address_substitutes === c.address_substitutes
  );
}
