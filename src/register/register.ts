// The resident register: current state per resident plus an append-only history of events.
//
// Rules:
//   - Every change is a register_events row; rows are never updated or deleted. The residents row is the
//     current state and is updated in the same transaction as the event it results from.
//   - Idempotency: an event carries the register network's source event id. Recording the same id again
//     is a no-op that returns the original event; the same id with different content is refused
//     (EventConflictError), never merged.
//   - Timeline: events are ordered by (effective date, recording order). The state at a date is the fold
//     of the events effective on or before it, field by field: each field has the value of the latest
//     event that set it. The current state is the fold of all events.
//   - Late events (dated before the resident's latest event) go into the history at their place in the
//     timeline and never roll the current state back: a field they set changes the current state only if
//     no later-dated event has set that field since. A death is final: once folded in, no later-dated
//     event changes the status.
//   - Events dated before the resident's registration are refused, and so are events that the state at
//     their date does not allow (moving after death, moving out twice, …).
//   - When the current state changes a fact that signature certificates carry, or the resident moves out
//     or dies, an outbox row is written in the same transaction; the OutboxProcessor revokes.

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import { type AuditEntry, appendAudit } from '../audit/audit-log.ts';
import type { Store } from '../store/db.ts';
import type { RegisterEventRow, ResidentRow } from '../store/register-schema.ts';
import {
  EventConflictError,
  RegisterStateError,
  RegisterValidationError,
  UnknownResidentError,
  type ValidationIssue,
} from './errors.ts';
import {
  CERTIFICATE_FIELDS,
  checkFacts,
  dateProblem,
  RESIDENT_FIELDS,
  type RegisterEventType,
  type ResidentFacts,
  type ResidentFactsInput,
  type ResidentField,
  type ResidentState,
  type ResidentStatus,
  residentIdProblem,
} from './facts.ts';
import { type Db, writeTransaction } from './tx.ts';

/** Outbox topic of register events that act on certificates. */
export const REGISTER_OUTBOX_TOPIC = 'register.certificates';

/**
 * In-process wake-up: 'pending' is emitted after a transaction that wrote an outbox row commits, so a
 * processor in the same process starts at once instead of at its next poll.
 */
export const outboxSignal = new EventEmitter();
outboxSignal.setMaxListeners(0);

export const REGISTER_EVENT_TYPES: readonly RegisterEventType[] = [
  'registered',
  'moved-within',
  'moved-in',
  'moved-out',
  'name-changed',
  'address-corrected',
  'facts-corrected',
  'died',
];

type FactField = keyof ResidentFacts;

interface TypeRule {
  required: readonly FactField[];
  optional: readonly FactField[];
  /** States in which the event is possible (at its effective date). */
  from: readonly ResidentStatus[];
  /** The status the event sets, if it sets one. */
  status?: ResidentStatus;
}

const ALL_FACTS: readonly FactField[] = [
  'municipalityCode',
  'name',
  'nameKana',
  'dateOfBirth',
  'sex',
  'address',
  'nameSubstitutes',
  'addressSubstitutes',
];

const TYPE_RULES: Record<RegisterEventType, TypeRule> = {
  registered: {
    required: ['municipalityCode', 'name', 'sex', 'address'],
    optional: ['nameKana', 'dateOfBirth', 'nameSubstitutes', 'addressSubstitutes'],
    from: [],
    status: 'resident',
  },
  'moved-within': {
    required: ['address'],
    optional: ['addressSubstitutes', 'municipalityCode'],
    from: ['resident'],
  },
  'moved-in': {
    required: ['municipalityCode', 'address'],
    optional: ['addressSubstitutes'],
    from: ['resident', 'moved-out'],
    status: 'resident',
  },
  'moved-out': { required: [], optional: [], from: ['resident'], status: 'moved-out' },
  'name-changed': { required: ['name'], optional: ['nameKana', 'nameSubstitutes'], from: ['resident'] },
  'address-corrected': {
    required: ['address'],
    optional: ['addressSubstitutes'],
    from: ['resident', 'moved-out', 'deceased'],
  },
  'facts-corrected': {
    required: [],
    optional: ['name', 'nameKana', 'nameSubstitutes', 'dateOfBirth', 'sex', 'address', 'addressSubstitutes'],
    from: ['resident', 'moved-out', 'deceased'],
  },
  died: { required: [], optional: [], from: ['resident', 'moved-out'], status: 'deceased' },
};

export interface RegisterEventInput {
  /** Idempotency key from the register network (1–200 characters). */
  sourceEventId: string;
  residentId: string;
  type: RegisterEventType;
  /** The date the change took effect, YYYY-MM-DD (not in the future). */
  effectiveDate: string;
  /** The new values: all four facts and the municipality for 'registered', the changed ones otherwise. */
  facts?: ResidentFactsInput;
}

/** The facts and status right after an event, at its place in the timeline. */
export type Snapshot = ResidentFacts & { status: ResidentStatus };

export interface RegisterEvent {
  id: number;
  residentId: string;
  type: RegisterEventType;
  effectiveDate: string;
  /** The fields the event set. */
  changed: ResidentField[];
  snapshot: Snapshot;
  /** The resident's version after the event. */
  version: number;
  /** Dated before the resident's latest event when it was recorded. */
  late: boolean;
  sourceEventId: string | null;
  importId: string | null;
  importRow: number | null;
  recordedAt: Date;
}

export type OutboxAction = 'revoke-sign' | 'revoke-all';

export interface RecordEventResult {
  event: RegisterEvent;
  /** The source event id had been recorded already: nothing was written, `event` is the original. */
  duplicate: boolean;
  /** The current state after the event. */
  resident: ResidentState;
  /** Fields of the current state the event changed (empty for a duplicate or a fully overridden late event). */
  applied: ResidentField[];
  /** What the outbox row written with the event asks for; null when no certificate is affected. */
  outbox: OutboxAction | null;
}

export interface RecordEventOptions {
  /** The clock (tests). */
  now?: Date;
  /** The audit entry of this event, written in the event's own transaction (so there is never an unaudited event). */
  audit?: (result: RecordEventResult) => AuditEntry;
}

// ---------------------------------------------------------------------------------------------------------
// Row mapping

export function residentOfRow(r: ResidentRow): ResidentState {
  return {
    residentId: r.resident_id,
    municipalityCode: r.municipality_code,
    name: r.name,
    nameKana: r.name_kana,
    dateOfBirth: r.date_of_birth,
    sex: r.sex,
    address: r.address,
    nameSubstitutes: r.name_substitutes,
    addressSubstitutes: r.address_substitutes,
    status: r.status,
    effectiveDate: r.effective_date,
    version: r.version,
  };
}

export function eventOfRow(r: RegisterEventRow): RegisterEvent {
  return {
    id: r.id,
    residentId: r.resident_id,
    type: r.type,
    effectiveDate: r.effective_date,
    changed: r.changed === '' ? [] : (r.changed.split(',') as ResidentField[]),
    snapshot: {
      municipalityCode: r.municipality_code,
      name: r.name,
      nameKana: r.name_kana,
      dateOfBirth: r.date_of_birth,
      sex: r.sex,
      address: r.address,
      nameSubstitutes: r.name_substitutes,
      addressSubstitutes: r.address_substitutes,
      status: r.status,
    },
    version: r.version,
    late: r.late === 1,
    sourceEventId: r.source_event_id,
    importId: r.import_id,
    importRow: r.import_row,
    recordedAt: new Date(r.recorded_at),
  };
}

/** Snapshot columns of a register_events row. */
export function snapshotColumns(s: Snapshot) {
  return {
    municipality_code: s.municipalityCode,
    name: s.name,
    name_kana: s.nameKana,
    date_of_birth: s.dateOfBirth,
    sex: s.sex,
    address: s.address,
    name_substitutes: s.nameSubstitutes,
    address_substitutes: s.addressSubstitutes,
    status: s.status,
  };
}

function snapshotOf(s: Snapshot): Snapshot {
  return {
    municipalityCode: s.municipalityCode,
    name: s.name,
    nameKana: s.nameKana,
    dateOfBirth: s.dateOfBirth,
    sex: s.sex,
    address: s.address,
    nameSubstitutes: s.nameSubstitutes,
    addressSubstitutes: s.addressSubstitutes,
    status: s.status,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The timeline

interface TimelineEvent {
  type: RegisterEventType;
  changed: readonly ResidentField[];
  snapshot: Snapshot;
}

/**
 * Folds events (in timeline order: effective date, then recording order) into a state: each field takes
 * the value of the latest event that set it; once a death is folded in, the status stays 'deceased'.
 */
export function foldEvents(events: Iterable<TimelineEvent>): Snapshot | undefined {
  let state: Snapshot | undefined;
  for (const e of events) {
    if (!state) {
      state = snapshotOf(e.snapshot);
      continue;
    }
    for (const f of e.changed) {
      if (f === 'status' && state.status === 'deceased') continue;
      (state as Record<ResidentField, unknown>)[f] = e.snapshot[f];
    }
  }
  return state;
}

function applyChange(base: Snapshot, change: Partial<Snapshot>, changed: readonly ResidentField[]): Snapshot {
  const s = snapshotOf(base);
  for (const f of changed) (s as Record<ResidentField, unknown>)[f] = change[f] ?? null;
  return s;
}

function diffFields(a: Snapshot, b: Snapshot): ResidentField[] {
  return RESIDENT_FIELDS.filter((f) => a[f] !== b[f]);
}

/** What the certificates of a resident need after the current state went from `before` to `after`. */
export function outboxActionFor(before: Snapshot, after: Snapshot): OutboxAction | null {
  if (after.status === 'deceased' && before.status !== 'deceased') return 'revoke-all';
  if (after.status === 'moved-out' && before.status !== 'moved-out') return 'revoke-sign';
  if (diffFields(before, after).some((f) => CERTIFICATE_FIELDS.has(f))) return 'revoke-sign';
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Validation

interface ValidEvent {
  input: RegisterEventInput;
  rule: TypeRule;
  change: Partial<Snapshot>;
  changed: ResidentField[];
  hash: string;
}

function validateEvent(input: RegisterEventInput, now: Date): ValidEvent {
  const issues: ValidationIssue[] = [];
  const { sourceEventId, residentId, type, effectiveDate } = input;
  if (typeof sourceEventId !== 'string' || sourceEventId.length === 0 || sourceEventId.length > 200)
    issues.push({ field: 'sourceEventId', message: 'the source event id must be 1-200 characters' });
  else if (/[\u0000-\u001f\u007f]/.test(sourceEventId))
    issues.push({ field: 'sourceEventId', message: 'control characters in the source event id' });
  const idProblem = residentIdProblem(typeof residentId === 'string' ? residentId : '');
  if (idProblem) issues.push({ field: 'residentId', message: idProblem });
  const rule = TYPE_RULES[type];
  if (!REGISTER_EVENT_TYPES.includes(type) || !rule)
    throw new RegisterValidationError([
      ...issues,
      { field: 'type', message: `unknown event type ${JSON.stringify(type)}` },
    ]);
  const dp = dateProblem(effectiveDate, now, 'effective date');
  if (dp) issues.push({ field: 'effectiveDate', message: dp });

  const facts = input.facts ?? {};
  const allowed = new Set<FactField>([...rule.required, ...rule.optional]);
  const given = ALL_FACTS.filter((f) => facts[f] !== undefined);
  for (const f of given)
    if (!allowed.has(f)) issues.push({ field: f, message: `a ${type} event cannot change the ${f}` });
  if (facts.nameSubstitutes !== undefined && facts.name === undefined)
    issues.push({ field: 'nameSubstitutes', message: 'name substitute flags need the name they describe' });
  if (facts.addressSubstitutes !== undefined && facts.address === undefined)
    issues.push({
      field: 'addressSubstitutes',
      message: 'address substitute flags need the address they describe',
    });
  if (type === 'facts-corrected' && given.length === 0)
    issues.push({ field: 'facts', message: 'a facts-corrected event must correct at least one fact' });

  // What the event sets: the given facts, every fact for a registration, the substitute flags with
  // their text, the kana with a new name (unknown unless given), the status the type sets.
  const toCheck = new Set<FactField>(type === 'registered' ? ALL_FACTS : [...rule.required, ...given]);
  if (toCheck.has('name')) toCheck.add('nameSubstitutes');
  if (toCheck.has('address')) toCheck.add('addressSubstitutes');
  if (type === 'name-changed') toCheck.add('nameKana');
  const { value, issues: factIssues } = checkFacts(facts, toCheck, now);
  issues.push(...factIssues);
  if (issues.length > 0) throw new RegisterValidationError(issues);

  const changed: ResidentField[] = RESIDENT_FIELDS.filter((f) =>
    f === 'status' ? rule.status !== undefined : toCheck.has(f),
  );
  const change: Partial<Snapshot> = { ...value };
  if (rule.status) change.status = rule.status;
  const hash = createHash('sha256')
    .update(JSON.stringify([residentId, type, effectiveDate, changed.map((f) => [f, change[f] ?? null])]))
    .digest('hex');
  return { input, rule, change, changed, hash };
}

// ---------------------------------------------------------------------------------------------------------
// Queries

export async function getResident(store: Store | Db, residentId: string): Promise<ResidentState | undefined> {
  const db = 'db' in store ? store.db : store;
  const row = await db
    .selectFrom('residents')
    .selectAll()
    .where('resident_id', '=', residentId)
    .executeTakeFirst();
  return row ? residentOfRow(row) : undefined;
}

/** The resident's events in timeline order (effective date, then recording order). */
export async function residentHistory(store: Store | Db, residentId: string): Promise<RegisterEvent[]> {
  const db = 'db' in store ? store.db : store;
  const rows = await db
    .selectFrom('register_events')
    .selectAll()
    .where('resident_id', '=', residentId)
    .orderBy('effective_date')
    .orderBy('id')
    .execute();
  return rows.map(eventOfRow);
}

export interface FactsAt extends Snapshot {
  residentId: string;
  /** The date asked about. */
  date: string;
  /** The events the state was folded from (the last is the latest effective on or before `date`). */
  eventIds: number[];
}

/**
 * The resident's facts and status as the register knows them now for `date` (YYYY-MM-DD): the fold of
 * the events effective on or before it. undefined if the resident was not registered by then.
 */
export async function factsAt(
  store: Store | Db,
  residentId: string,
  date: string,
): Promise<FactsAt | undefined> {
  const problem = dateProblem(date, new Date('9999-12-30T00:00:00Z'), 'date');
  if (problem) throw new RegisterValidationError([{ field: 'date', message: problem }]);
  const events = (await residentHistory(store, residentId)).filter((e) => e.effectiveDate <= date);
  const state = foldEvents(events);
  return state ? { ...state, residentId, date, eventIds: events.map((e) => e.id) } : undefined;
}

async function findBySource(db: Db, sourceEventId: string): Promise<RegisterEventRow | undefined> {
  return db
    .selectFrom('register_events')
    .selectAll()
    .where('source_event_id', '=', sourceEventId)
    .executeTakeFirst();
}

// ---------------------------------------------------------------------------------------------------------
// Recording events

class DuplicateRace extends Error {}

/**
 * Records a register event: the history row, the new current state and, when certificates are affected,
 * an outbox row, all in one transaction. Throws RegisterValidationError (bad input), UnknownResidentError,
 * RegisterStateError (not possible in the resident's state) or EventConflictError (source id reused);
 * nothing is written then.
 */
export async function recordEvent(
  store: Store,
  input: RegisterEventInput,
  opts: RecordEventOptions = {},
): Promise<RecordEventResult> {
  const now = opts.now ?? new Date();
  const v = validateEvent(input, now);
  const pg = store.dialect === 'postgres';
  let result: RecordEventResult;
  try {
    result = await writeTransaction(store, async (trx) => {
      const original = await findBySource(trx, input.sourceEventId);
      const r = original ? await duplicateResult(trx, original, v) : await record(trx, pg, v, now.getTime());
      if (opts.audit) await appendAudit(trx, opts.audit(r));
      return r;
    });
  } catch (e) {
    if (!(e instanceof DuplicateRace)) throw e;
    // A concurrent transaction recorded the same source event id first: nothing was written here.
    const original = await findBySource(store.db, input.sourceEventId);
    if (!original) throw e;
    result = await duplicateResult(store.db, original, v);
    if (opts.audit) await appendAudit(store.db, opts.audit(result));
  }
  if (result.outbox) outboxSignal.emit('pending');
  return result;
}

async function duplicateResult(
  db: Db,
  original: RegisterEventRow,
  v: ValidEvent,
): Promise<RecordEventResult> {
  if (original.source_hash !== v.hash) throw new EventConflictError(v.input.sourceEventId, original.id);
  const resident = await getResident(db, original.resident_id);
  if (!resident) throw new UnknownResidentError(original.resident_id);
  return { event: eventOfRow(original), duplicate: true, resident, applied: [], outbox: null };
}

async function record(trx: Db, pg: boolean, v: ValidEvent, nowMs: number): Promise<RecordEventResult> {
  const { input } = v;
  const date = input.effectiveDate;
  let q = trx.selectFrom('residents').selectAll().where('resident_id', '=', input.residentId);
  if (pg) q = q.forUpdate();
  const row = await q.executeTakeFirst();

  if (input.type === 'registered') {
    if (row) throw new RegisterStateError(`resident ${input.residentId} is already registered`);
    const snapshot = v.change as Snapshot;
    const inserted = await trx
      .insertInto('residents')
      .values({
        resident_id: input.residentId,
        ...residentColumns(snapshot),
        effective_date: date,
        version: 1,
        updated_at: nowMs,
      })
      .onConflict((oc) => oc.column('resident_id').doNothing())
      .returning('resident_id')
      .executeTakeFirst();
    if (!inserted) {
      if (await findBySource(trx, input.sourceEventId)) throw new DuplicateRace();
      throw new RegisterStateError(`resident ${input.residentId} is already registered`);
    }
    const event = await insertEvent(trx, v, snapshot, 1, false, nowMs);
    return {
      event,
      duplicate: false,
      resident: { residentId: input.residentId, ...snapshot, effectiveDate: date, version: 1 },
      applied: [...v.changed],
      outbox: null,
    };
  }

  if (!row) throw new UnknownResidentError(input.residentId);
  const current = residentOfRow(row);
  const late = date < current.effectiveDate;
  let base: Snapshot;
  let history: RegisterEvent[] = [];
  if (!late) base = current;
  else {
    history = await residentHistory(trx, input.residentId);
    const registration = history[0];
    if (registration && date < registration.effectiveDate)
      throw new RegisterStateError(
        `the event is dated ${date}, before the resident's registration on ${registration.effectiveDate}`,
      );
    base = foldEvents(history.filter((e) => e.effectiveDate <= date))!;
  }
  if (!v.rule.from.includes(base.status))
    throw new RegisterStateError(
      `a ${input.type} event is not possible for a resident whose status on ${date} is ${base.status}`,
    );
  const change = { ...v.change };
  let changed = v.changed;
  if (input.type === 'moved-within' && change.municipalityCode !== undefined) {
    if (change.municipalityCode !== base.municipalityCode)
      throw new RegisterStateError('a move to another municipality is a moved-in event, not moved-within');
    changed = changed.filter((f) => f !== 'municipalityCode');
  }
  const snapshot = applyChange(base, change, changed);
  const version = current.version + 1;
  let after: Snapshot;
  if (!late) after = snapshot;
  else {
    // The new event sorts after every event effective on or before its date (recording order breaks ties).
    const timeline: TimelineEvent[] = [
      ...history.filter((e) => e.effectiveDate <= date),
      { type: input.type, changed, snapshot },
      ...history.filter((e) => e.effectiveDate > date),
    ];
    after = foldEvents(timeline)!;
  }
  const event = await insertEvent(trx, { ...v, changed }, snapshot, version, late, nowMs);
  const updated = await trx
    .updateTable('residents')
    .set({
      ...residentColumns(after),
      effective_date: late ? current.effectiveDate : date,
      version,
      updated_at: nowMs,
    })
    .where('resident_id', '=', input.residentId)
    .where('version', '=', current.version)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) !== 1)
    throw new Error(`resident ${input.residentId} changed concurrently; record the event again`);
  const outbox = outboxActionFor(current, after);
  if (outbox)
    await trx
      .insertInto('outbox')
      .values({
        topic: REGISTER_OUTBOX_TOPIC,
        ref_id: event.id,
        resident_id: input.residentId,
        created_at: nowMs,
        next_attempt_at: nowMs,
      })
      .execute();
  return {
    event,
    duplicate: false,
    resident: {
      residentId: input.residentId,
      ...after,
      effectiveDate: late ? current.effectiveDate : date,
      version,
    },
    applied: diffFields(current, after),
    outbox,
  };
}

function residentColumns(s: Snapshot) {
  return snapshotColumns(s);
}

async function insertEvent(
  trx: Db,
  v: ValidEvent,
  snapshot: Snapshot,
  version: number,
  late: boolean,
  nowMs: number,
): Promise<RegisterEvent> {
  const row = await trx
    .insertInto('register_events')
    .values({
      resident_id: v.input.residentId,
      type: v.input.type,
      effective_date: v.input.effectiveDate,
      changed: v.changed.join(','),
      ...snapshotColumns(snapshot),
      version,
      late: late ? 1 : 0,
      source_event_id: v.input.sourceEventId,
      source_hash: v.hash,
      import_id: null,
      import_row: null,
      recorded_at: nowMs,
    })
    .onConflict((oc) => oc.column('source_event_id').where('source_event_id', 'is not', null).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (!row) throw new DuplicateRace();
  return eventOfRow(row);
}

/** Count of residents (tests, statistics). */
export async function countResidents(store: Store): Promise<number> {
  const r = await sql<{ n: number }>`select count(*) as n from residents`.execute(store.db);
  return Number(r.rows[0]?.n ?? 0);
}
