// Days and months in Japan (UTC+9, no daylight saving): what usage is counted by and statements cover.

const JST_MS = 9 * 3600_000;
const DAY_MS = 86_400_000;

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH = /^(\d{4})-(\d{2})$/;

let memoIndex = Number.NaN;
let memoDay = '';

/** The calendar day in Japan of an instant, YYYY-MM-DD. Asked on every OCSP answer: the last day is kept. */
export function jstDay(ms: number): string {
  const index = Math.floor((ms + JST_MS) / DAY_MS);
  if (index !== memoIndex) {
    memoDay = new Date(index * DAY_MS).toISOString().slice(0, 10);
    memoIndex = index;
  }
  return memoDay;
}

/** The first instant of the JST day after the one `ms` falls in. */
export function nextJstMidnight(ms: number): number {
  return Math.floor((ms + JST_MS) / DAY_MS) * DAY_MS + DAY_MS - JST_MS;
}

/** The calendar month in Japan of an instant, YYYY-MM. */
export function jstMonth(ms: number): string {
  return jstDay(ms).slice(0, 7);
}

/** A real calendar day written YYYY-MM-DD (2025-02-30 is not). */
export function isDay(s: string): boolean {
  const m = DAY.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s;
}

export function isMonth(s: string): boolean {
  const m = MONTH.exec(s);
  return !!m && Number(m[2]) >= 1 && Number(m[2]) <= 12;
}

/** First and last day of a month (YYYY-MM), inclusive. */
export function monthDays(month: string): { first: string; last: string } {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
  return { first: `${month}-01`, last };
}

/** The instant a JST day starts. */
export function jstDayStart(day: string): number {
  return Date.parse(`${day}T00:00:00+09:00`);
}
