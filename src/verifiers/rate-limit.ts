// A token bucket per verifier, in memory: `burst` requests at once, refilled at `requestsPerSecond`.
// Per process: behind a load balancer with N responders a verifier gets up to N times the rate, which
// is the point of adding responders; the limit is against one client flooding one process.

export interface RateLimit {
  requestsPerSecond: number;
  burst: number;
}

export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number, { tokens: number; at: number }>();

  constructor(limit: RateLimit, now: () => number = Date.now) {
    this.#rate = limit.requestsPerSecond;
    this.#burst = limit.burst;
    this.#now = now;
  }

  get enabled(): boolean {
    return this.#rate > 0;
  }

  /** Takes one token: 0 when the request may go on, else the seconds until a token is available (≥ 1). */
  take(verifierId: number): number {
    if (this.#rate <= 0) return 0;
    const now = this.#now();
    let b = this.#buckets.get(verifierId);
    if (!b) {
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(verifierId, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#rate));
  }
}
