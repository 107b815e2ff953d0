// The outbox processor: turns committed register events into certificate revocations.
//
// recordEvent writes an outbox row in the transaction that records the event, so the work survives a
// crash between the register write and the revocation: a row stays pending until a processor has revoked
// and marked it done, in one transaction. Processors are woken at once in-process (outboxSignal) and poll
// every pollIntervalMs (default 250 ms) for rows written by other processes. Several processors may run
// against one database: on PostgreSQL a row is claimed with FOR UPDATE SKIP LOCKED, on SQLite the claim
// happens under the single writer lock (BEGIN IMMEDIATE), and the row is marked done with a compare-and-set
// on processed_at, so no row is processed twice. On SQLite run one processor per process: better-sqlite3
// waits for another connection's lock synchronously, so two writing connections in ONE process would
// stall each other (separate processes are fine). Other processes' rows are seen by polling; PostgreSQL
// LISTEN/NOTIFY is not used (the Store exposes no dedicated connection for it).
//
// What is revoked for an event (the resident's valid, unexpired certificates of the kinds below):
//   - died: signature AND authentication certificates, reason cessationOfOperation (death ends everything);
//   - a change of a fact the signature certificate carries (name, address, sex, date of birth, their
//     substitute flags) or a move-out: signature certificates, reason affiliationChanged. The
//     authentication certificate carries none of the facts and survives.
// A certificate whose slot says it was issued with facts that already include the event (slot version
// >= event version: issued after the event, before the processor ran) is kept. The revocation date is
// when the register recorded the event (not when the processor ran), and the slot is freed in the same
// transaction so that the resident can be issued a new certificate at once.

import { randomBytes } from 'node:crypto';
import type { Authority } from '../authority/authority.ts';
import type { RevocationReason } from '../authority/reasons.ts';
import type { Store } from '../store/db.ts';
import type { OutboxRow } from '../store/register-schema.ts';
import { outboxSignal, REGISTER_OUTBOX_TOPIC } from './register.ts';
import { type CertificateKind, clearSlot, lockSlots, recordRevocationCause } from './slots.ts';
import { type Db, writeTransaction } from './tx.ts';

export interface OutboxProcessorOptions {
  /** Defaults to the authority's store; must be the same database. */
  store?: Store;
  /** Poll interval for rows written by other processes (default 250 ms). */
  pollIntervalMs?: number;
  /** Name recorded in processed_by (default: random). */
  id?: string;
  /** Errors of the loop and of failed rows (default: a process warning). */
  onError?: (error: unknown, row?: OutboxRow) => void;
  /** Called after each processed row. */
  onProcessed?: (outcome: OutboxOutcome) => void;
}

export interface OutboxOutcome {
  outboxId: number;
  eventId: number;
  residentId: string;
  /** Serials revoked for this event (empty: the resident had no certificate it affects). */
  revoked: string[];
  /** Certificates kept because they were issued with facts that already include the event. */
  kept: string[];
}

export interface OutboxStats {
  processed: number;
  revoked: number;
  failed: number;
}

/** Retry delay after the n-th failure: 1 s, 2 s, 4 s … up to 5 minutes. */
function backoffMs(attempts: number): number {
  return Math.min(300_000, 1000 * 2 ** Math.max(0, attempts - 1));
}

export class OutboxProcessor {
  readonly id: string;
  readonly stats: OutboxStats = { processed: 0, revoked: 0, failed: 0 };
  readonly #authority: Authority;
  readonly #store: Store;
  readonly #pollMs: number;
  readonly #onError: (error: unknown, row?: OutboxRow) => void;
  readonly #onProcessed?: (outcome: OutboxOutcome) => void;
  #running = false;
  #woken = false;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sleeping: (() => void) | undefined;
  #draining: Promise<unknown> = Promise.resolve();

  constructor(authority: Authority, opts: OutboxProcessorOptions = {}) {
    this.#authority = authority;
    this.#store = opts.store ?? authority.store;
    this.#pollMs = opts.pollIntervalMs ?? 250;
    this.id = opts.id ?? `outbox-${randomBytes(4).toString('hex')}`;
    this.#onError =
      opts.onError ??
      ((e) => process.emitWarning(`outbox processor ${this.id}: ${e instanceof Error ? e.message : e}`));
    this.#onProcessed = opts.onProcessed;
  }

  /** Starts processing in the background until stop(). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    outboxSignal.on('pending', this.#wake);
    this.#loop = this.#run();
  }

  /** Stops polling and waits for the row in progress, if any. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    outboxSignal.off('pending', this.#wake);
    this.#sleeping?.();
    await this.#loop;
    await this.#draining.catch(() => undefined);
  }

  /**
   * Processes every pending row that is due, now; returns how many were processed. Concurrent calls
   * run one after the other.
   */
  drain(): Promise<number> {
    const next = this.#draining.catch(() => undefined).then(() => this.#drainAll());
    this.#draining = next;
    return next;
  }

  readonly #wake = () => {
    this.#woken = true;
    this.#sleeping?.();
  };

  async #run(): Promise<void> {
    while (this.#running) {
      this.#woken = false;
      try {
        await this.drain();
      } catch (e) {
        this.#onError(e);
      }
      if (!this.#running) break;
      if (this.#woken) continue;
      await new Promise<void>((resolve) => {
        this.#sleeping = resolve;
        this.#timer = setTimeout(resolve, this.#pollMs);
      });
      clearTimeout(this.#timer);
      this.#sleeping = undefined;
    }
  }

  async #drainAll(): Promise<number> {
    let n = 0;
    for (;;) {
      const done = await this.#processNext();
      if (done === undefined) return n;
      if (done) n++;
    }
  }

  /** undefined: nothing due; true: a row processed; false: a row failed (and was rescheduled). */
  async #processNext(): Promise<boolean | undefined> {
    const postgres = this.#store.dialect === 'postgres';
    let claimed: OutboxRow | undefined;
    // A plain read first: an idle poll neither opens a transaction nor takes SQLite's write lock.
    const due = await this.#store.db
      .selectFrom('outbox')
      .select('id')
      .where('topic', '=', REGISTER_OUTBOX_TOPIC)
      .where('processed_at', 'is', null)
      .where('next_attempt_at', '<=', Date.now())
      .limit(1)
      .executeTakeFirst();
    if (!due) return undefined;
    try {
      const outcome = await writeTransaction(this.#store, async (trx) => {
        const now = Date.now();
        let q = trx
          .selectFrom('outbox')
          .selectAll()
          .where('topic', '=', REGISTER_OUTBOX_TOPIC)
          .where('processed_at', 'is', null)
          .where('next_attempt_at', '<=', now)
          .orderBy('id')
          .limit(1);
        if (postgres) q = q.forUpdate().skipLocked();
        const row = await q.executeTakeFirst();
        if (!row) return undefined;
        claimed = row;
        const result = await revokeForEvent(this.#authority, trx, postgres, row);
        const done = await trx
          .updateTable('outbox')
          .set({
            processed_at: Date.now(),
            processed_by: this.id,
            attempts: row.attempts + 1,
            last_error: null,
          })
          .where('id', '=', row.id)
          .where('processed_at', 'is', null)
          .executeTakeFirst();
        if (Number(done.numUpdatedRows) !== 1)
          throw new Error(`outbox row ${row.id} was processed concurrently`);
        return result;
      });
      if (!outcome) return undefined;
      this.stats.processed++;
      this.stats.revoked += outcome.revoked.length;
      this.#onProcessed?.(outcome);
      return true;
    } catch (e) {
      const row = claimed;
      if (!row) throw e;
      this.stats.failed++;
      this.#onError(e, row);
      const attempts = row.attempts + 1;
      await this.#store.db
        .updateTable('outbox')
        .set({
          attempts,
          next_attempt_at: Date.now() + backoffMs(attempts),
          last_error: (e instanceof Error ? e.message : String(e)).slice(0, 1000),
        })
        .where('id', '=', row.id)
        .where('processed_at', 'is', null)
        .execute();
      return false;
    }
  }
}

/** Revokes what one register event requires (see the file comment). Runs in the caller's transaction. */
export async function revokeForEvent(
  authority: Authority,
  trx: Db,
  postgres: boolean,
  row: Pick<OutboxRow, 'id' | 'ref_id'>,
): Promise<OutboxOutcome> {
  const event = await trx
    .selectFrom('register_events')
    .select(['id', 'resident_id', 'type', 'version', 'recorded_at'])
    .where('id', '=', row.ref_id)
    .executeTakeFirst();
  if (!event) throw new Error(`outbox row ${row.id}: register event ${row.ref_id} does not exist`);
  const death = event.type === 'died';
  const kinds: CertificateKind[] = death ? ['sign', 'auth'] : ['sign'];
  const reason: RevocationReason = death ? 'cessationOfOperation' : 'affiliationChanged';
  const now = Date.now();
  // Slots first (lock order), then the certificates that are still valid.
  const slots = await lockSlots(trx, postgres, event.resident_id);
  const certs = await trx
    .selectFrom('certificates as c')
    .leftJoin('revocations as r', 'r.serial', 'c.serial')
    .select(['c.serial', 'c.ca', 'c.not_before'])
    .where('c.resident_ref', '=', event.resident_id)
    .where('c.ca', 'in', kinds)
    .where('r.serial', 'is', null)
    .where('c.not_after', '>', now)
    .orderBy('c.serial')
    .execute();
  const outcome: OutboxOutcome = {
    outboxId: row.id,
    eventId: event.id,
    residentId: event.resident_id,
    revoked: [],
    kept: [],
  };
  for (const cert of certs) {
    const slot = slots.find((s) => s.serial === cert.serial);
    if (slot && slot.facts_version >= event.version) {
      outcome.kept.push(cert.serial);
      continue;
    }
    const revokedAt = new Date(Math.min(now, Math.max(event.recorded_at, cert.not_before)));
    await authority.revoke(cert.serial, reason, revokedAt, { db: trx });
    if (slot) await clearSlot(trx, event.resident_id, slot.kind, cert.serial);
    await recordRevocationCause(trx, {
      serial: cert.serial,
      residentId: event.resident_id,
      eventId: event.id,
      cause: 'register-event',
      at: now,
    });
    outcome.revoked.push(cert.serial);
  }
  return outcome;
}
