// Metering of the revocation endpoints: every OCSP answer, CRL download and verification is counted per
// verifier, JST day and kind.
//
// On the hot path a count is one Map increment. Counts are written in batches, when `flushIntervalMs` has
// passed or `flushCount` are pending, as upserts that add to verifier_usage (INSERT … ON CONFLICT DO
// UPDATE SET count = count + excluded.count) in one transaction. A batch that fails is added back to the
// pending counts and written by a later flush: answers go on, and nothing is lost while the store is
// unavailable (memory grows with verifiers x days x kinds, not with requests). After a failure, only the
// timer retries, so a store that is down is not hammered by every request. Flushes never overlap.
//
// The one way to count twice: a PostgreSQL commit that succeeds but whose acknowledgement is lost (the
// connection drops at that moment) reports a failure, and the batch is written again. Counting once more
// is the side we choose over losing a count silently.

import type { Db } from '../audit/audit-log.ts';
import type { UsageKind } from '../store/verifier-schema.ts';
import { jstDay, nextJstMidnight } from './calendar.ts';

export interface UsageMeterOptions {
  /** Write pending counts at least this often. Default 5 s. */
  flushIntervalMs?: number;
  /** Write as soon as this many counts are pending. Default 10,000. */
  flushCount?: number;
  now?: () => number;
  /** A timer or threshold flush that failed (the counts are kept for the next one). */
  onError?: (err: unknown) => void;
}

const SEP = '\u0000';
/** Rows per INSERT statement (4 parameters each, far below SQLite's and PostgreSQL's limits). */
const ROWS_PER_STATEMENT = 500;

export class UsageMeter {
  readonly #db: Db;
  readonly #intervalMs: number;
  readonly #flushCount: number;
  readonly #now: () => number;
  readonly #onError: (err: unknown) => void;
  #counts = new Map<string, number>();
  #pending = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #flushing = false;
  /** Set after a failed flush: only the timer tries again. */
  #backoff = false;
  #timer: NodeJS.Timeout | undefined;
  #day = '';
  #dayEnds = 0;

  constructor(db: Db, opts: UsageMeterOptions = {}) {
    this.#db = db;
    this.#intervalMs = opts.flushIntervalMs ?? 5000;
    this.#flushCount = opts.flushCount ?? 10_000;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? ((err) => process.emitWarning(`usage flush failed: ${String(err)}`));
  }

  /** Starts the flush timer (it does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.#backoff = false;
      if (this.#pending > 0) this.flush().catch(this.#onError);
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is pending (rejects, keeping the counts, if that fails). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  /** Counts `n` uses of `kind` by the verifier, now. Synchronous: the hot path never waits for the store. */
  count(verifierId: number, kind: UsageKind, n = 1): void {
    const key = `${verifierId}${SEP}${this.#today()}${SEP}${kind}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
    this.#pending += n;
    if (this.#pending >= this.#flushCount && !this.#flushing && !this.#backoff)
      this.flush().catch(this.#onError);
  }

  /** Counts not yet written. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Writes every pending count, after any flush in progress. Resolves with the number of uses written;
   * rejects if the store refused them, in which case they are pending again.
   */
  flush(): Promise<number> {
    const run = this.#chain.then(() => this.#flushOnce());
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #flushOnce(): Promise<number> {
    if (this.#counts.size === 0) return 0;
    const batch = this.#counts;
    const total = this.#pending;
    this.#counts = new Map();
    this.#pending = 0;
    this.#flushing = true;
    try {
      await this.#write(batch);
      return total;
    } catch (err) {
      for (const [key, n] of batch) this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
      this.#pending += total;
      this.#backoff = true;
      throw err;
    } finally {
      this.#flushing = false;
    }
  }

  async #write(batch: Map<string, number>): Promise<void> {
    const rows = [...batch].map(([key, count]) => {
      const [id, day, kind] = key.split(SEP) as [string, string, UsageKind];
      return { verifier_id: Number(id), day, kind, count };
    });
    // One order for every process: two flushes locking the same rows in different orders would deadlock.
    rows.sort(
      (a, b) =>
        a.verifier_id - b.verifier_id ||
        (a.day < b.day ? -1 : a.day > b.day ? 1 : 0) ||
        (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0),
    );
    await this.#db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
        await trx
          .insertInto('verifier_usage')
          .values(rows.slice(i, i + ROWS_PER_STATEMENT))
          .onConflict((oc) =>
            oc
              .columns(['verifier_id', 'day', 'kind'])
              .doUpdateSet((eb) => ({ count: eb('verifier_usage.count', '+', eb.ref('excluded.count')) })),
          )
          .execute();
      }
    });
  }

  /** Today in Japan, worked out again only when a day ends. */
  #today(): string {
    const now = this.#now();
    if (now >= this.#dayEnds || now < this.#dayEnds - 86_400_000) {
      this.#day = jstDay(now);
      this.#dayEnds = nextJstMidnight(now);
    }
    return this.#day;
  }
}
