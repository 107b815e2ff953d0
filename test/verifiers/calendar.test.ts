// Usage is counted and billed by the calendar day in Japan (UTC+9); the day is memoised because it is
// asked on every OCSP answer, so alternating days must never return a stale one.

import { describe, expect, it } from 'vitest';
import { jstDay, jstMonth, nextJstMidnight } from '../../src/verifiers/calendar.ts';

describe('JST calendar', () => {
  it('turns the day at 15:00 UTC, and alternating instants each get their own day', () => {
    const before = Date.UTC(2026, 10, 25, 14, 59, 59, 999);
    const after = before + 1;
    for (let i = 0; i < 3; i++) {
      expect(jstDay(before)).toBe('2026-11-25');
      expect(jstDay(after)).toBe('2026-11-26');
    }
    expect(nextJstMidnight(before)).toBe(after);
    expect(jstMonth(Date.UTC(2026, 10, 30, 15))).toBe('2026-12');
  });

  it('agrees with Date arithmetic on arbitrary instants', () => {
    for (let i = 0; i < 2000; i++) {
      const t = Math.floor((Math.random() - 0.5) * 8e12);
      expect(jstDay(t)).toBe(new Date(t + 9 * 3600_000).toISOString().slice(0, 10));
    }
  });
});
