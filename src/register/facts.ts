// The facts the register keeps about a resident, and their validation. The four basic facts are checked
// by the same rules the authority applies when it puts them in a certificate (normaliseBasicFacts), so a
// fact the register accepts is a fact a signature certificate can carry.

import {
  type BasicFacts,
  BasicFactsError,
  normaliseBasicFacts,
  parseSex,
  type Sex,
} from '../core/basic-facts.ts';
import type { ResidentStatus } from '../store/register-schema.ts';
import { municipalityCodeProblem, residentIdProblem } from './codes.ts';
import type { ValidationIssue } from './errors.ts';

export type { RegisterEventType, ResidentStatus } from '../store/register-schema.ts';

/** What the register holds about a resident apart from their status. */
export interface ResidentFacts {
  /** 全国地方公共団体コード of the municipality whose register holds the resident. */
  municipalityCode: string;
  /** Family and given name separated by one full-width space (U+3000). */
  name: string;
  /** Reading in katakana, or null when not recorded. */
  nameKana: string | null;
  /** YYYY-MM-DD, or null when the register does not know it. */
  dateOfBirth: string | null;
  sex: Sex;
  /** From the prefecture on, no postcode, at most 200 characters. */
  address: string;
  /** One '0'/'1' per character of the name ('1': a substitute character). */
  nameSubstitutes: string;
  addressSubstitutes: string;
}

export type ResidentField = keyof ResidentFacts | 'status';

/** Every field an event can set, in a fixed order (how `changed` lists them). */
export const RESIDENT_FIELDS: readonly ResidentField[] = [
  'municipalityCode',
  'name',
  'nameKana',
  'dateOfBirth',
  'sex',
  'address',
  'nameSubstitutes',
  'addressSubstitutes',
  'status',
];

/** Fields that a signature certificate carries (a change to any of them revokes it). */
export const CERTIFICATE_FIELDS: ReadonlySet<ResidentField> = new Set([
  'name',
  'dateOfBirth',
  'sex',
  'address',
  'nameSubstitutes',
  'addressSubstitutes',
]);

export interface ResidentState extends ResidentFacts {
  residentId: string;
  status: ResidentStatus;
  /** Latest effective date among the resident's events. */
  effectiveDate: string;
  /** Number of events recorded for the resident. */
  version: number;
}

/** Facts as a caller or a CSV row gives them: any subset, sex in any form parseSex accepts. */
export interface ResidentFactsInput {
  municipalityCode?: string;
  name?: string;
  nameKana?: string | null;
  dateOfBirth?: string | null;
  sex?: Sex | string;
  address?: string;
  nameSubstitutes?: string;
  addressSubstitutes?: string;
}

/** The four basic facts of a state, as the authority puts them in a signature certificate. */
export function basicFactsOf(f: ResidentFacts): BasicFacts {
  return {
    name: f.name,
    dateOfBirth: f.dateOfBirth,
    sex: f.sex,
    address: f.address,
    nameSubstitutes: f.nameSubstitutes,
    addressSubstitutes: f.addressSubstitutes,
  };
}

let jstCache: { ms: number; date: string } | undefined;

/** Today's date in Japan (JST, UTC+9), YYYY-MM-DD. */
export function jstDate(now: Date): string {
  const ms = now.getTime();
  if (jstCache?.ms !== ms) jstCache = { ms, date: new Date(ms + 9 * 3600_000).toISOString().slice(0, 10) };
  return jstCache.date;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** YYYY-MM-DD naming a day of the Gregorian calendar. */
export function isRealDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const y = Number(value.slice(0, 4));
  const m = Number(value.slice(5, 7));
  const d = Number(value.slice(8, 10));
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= (m === 2 && leap ? 29 : MONTH_DAYS[m - 1]!);
}

/** A register date: a real Gregorian YYYY-MM-DD, from 1868 (Meiji) up to today in Japan. */
export function dateProblem(value: unknown, today: Date, what: string): string | undefined {
  if (typeof value !== 'string' || !isRealDate(value))
    return `the ${what} must be a real date YYYY-MM-DD, not ${JSON.stringify(value)}`;
  if (value < '1868-01-01') return `the ${what} is before 1868`;
  if (value > jstDate(today)) return `the ${what} is in the future`;
  return undefined;
}

export { residentIdProblem };

const PLACEHOLDER: BasicFacts = { name: '氏\u3000名', address: '東京都', dateOfBirth: null, sex: 'unknown' };
const KANA = /^[\u30a0-\u30ff\u31f0-\u31ff\u3000]+$/u;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/**
 * Checks and normalises the given fields of `input` (those in `fields`; a missing one is an issue).
 * Returns the normalised values and every issue found; the caller refuses the input if there is any.
 */
export function checkFacts(
  input: ResidentFactsInput,
  fields: ReadonlySet<keyof ResidentFacts>,
  today: Date,
): { value: Partial<ResidentFacts>; issues: ValidationIssue[] } {
  const value: Partial<ResidentFacts> = {};
  const issues: ValidationIssue[] = [];
  const problem = (field: string, message: string) => issues.push({ field, message });
  const str = (field: keyof ResidentFactsInput, required: boolean): string | undefined => {
    const v = input[field];
    if (v === undefined || v === null) {
      if (required) problem(field, `the ${field} is missing`);
      return undefined;
    }
    if (typeof v !== 'string') {
      problem(field, `the ${field} must be text`);
      return undefined;
    }
    return v;
  };

  if (fields.has('municipalityCode')) {
    const v = str('municipalityCode', true);
    if (v !== undefined) {
      const p = municipalityCodeProblem(v.trim());
      if (p) problem('municipalityCode', p);
      else value.municipalityCode = v.trim();
    }
  }
  // Fast path (one normalisation for both texts); on a problem, each is checked alone to name the field.
  let textsDone = false;
  if (fields.has('name') && fields.has('address')) {
    const name = input.name;
    const address = input.address;
    if (typeof name === 'string' && typeof address === 'string') {
      try {
        const f = normaliseBasicFacts({
          ...PLACEHOLDER,
          name,
          address,
          nameSubstitutes: input.nameSubstitutes || undefined,
          addressSubstitutes: input.addressSubstitutes || undefined,
        });
        value.name = f.name;
        value.nameSubstitutes = f.nameSubstitutes!;
        value.address = f.address;
        value.addressSubstitutes = f.addressSubstitutes!;
        textsDone = true;
      } catch (e) {
        if (!(e instanceof BasicFactsError)) throw e;
      }
    }
  }
  if (fields.has('name') && !textsDone) {
    const name = str('name', true);
    const subs = str('nameSubstitutes', false);
    if (name !== undefined) {
      try {
        const f = normaliseBasicFacts({ ...PLACEHOLDER, name, nameSubstitutes: subs || undefined });
        value.name = f.name;
        value.nameSubstitutes = f.nameSubstitutes!;
      } catch (e) {
        if (!(e instanceof BasicFactsError)) throw e;
        problem(/substitute/.test(e.message) ? 'nameSubstitutes' : 'name', factsMessage(e.message, 'name'));
      }
    }
  }
  if (fields.has('nameKana')) {
    const v = input.nameKana;
    if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) value.nameKana = null;
    else if (typeof v !== 'string') problem('nameKana', 'the name kana must be text');
    else {
      const kana = v.trim().replace(/[\s\u3000]+/gu, '\u3000');
      if (CONTROL.test(v)) problem('nameKana', 'control characters in the name kana');
      else if ([...kana].length > 100) problem('nameKana', 'the name kana is longer than 100 characters');
      else if (!KANA.test(kana)) problem('nameKana', 'the name kana must be written in katakana');
      else value.nameKana = kana;
    }
  }
  if (fields.has('dateOfBirth')) {
    const v = input.dateOfBirth;
    if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) value.dateOfBirth = null;
    else {
      const p = dateProblem(typeof v === 'string' ? v.trim() : v, today, 'date of birth');
      if (p) problem('dateOfBirth', p);
      else value.dateOfBirth = (v as string).trim();
    }
  }
  if (fields.has('sex')) {
    const v = str('sex', true);
    if (v !== undefined) {
      try {
        value.sex = parseSex(v);
      } catch (e) {
        if (!(e instanceof BasicFactsError)) throw e;
        problem('sex', `the sex must be M, F or U (or 1, 2, 3), not ${JSON.stringify(v)}`);
      }
    }
  }
  if (fields.has('address') && !textsDone) {
    const address = str('address', true);
    const subs = str('addressSubstitutes', false);
    if (address !== undefined) {
      try {
        const f = normaliseBasicFacts({ ...PLACEHOLDER, address, addressSubstitutes: subs || undefined });
        value.address = f.address;
        value.addressSubstitutes = f.addressSubstitutes!;
      } catch (e) {
        if (!(e instanceof BasicFactsError)) throw e;
        problem(
          /substitute/.test(e.message) ? 'addressSubstitutes' : 'address',
          factsMessage(e.message, 'address'),
        );
      }
    }
  }
  return { value, issues };
}

/** normaliseBasicFacts speaks of "the name or address" for control characters; say which. */
function factsMessage(message: string, field: 'name' | 'address'): string {
  return message.startsWith('control characters') ? `control characters in the ${field}` : message;
}
