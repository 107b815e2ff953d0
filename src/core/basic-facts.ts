import { DerError, explicit, oid, readChildren, readTlv, sequence, type Tlv, utf8String } from './der.ts';
import { OID } from './oids.ts';

/**
 * The four basic facts (基本4情報) of a resident as the register holds them and as the signature
 * certificate carries them.
 */
export interface BasicFacts {
  /** Family and given name separated by one full-width space (U+3000). */
  name: string;
  /** Gregorian date of birth, YYYY-MM-DD, or null when the register does not know it. */
  dateOfBirth: string | null;
  sex: Sex;
  /** From the prefecture onwards, no postcode, at most 200 characters. */
  address: string;
  /** One '0'/'1' per character of the name: '1' where the register used a substitute character. */
  nameSubstitutes?: string;
  /** Likewise for the address. */
  addressSubstitutes?: string;
}

export type Sex = 'male' | 'female' | 'unknown';

export class BasicFactsError extends Error {
  override name = 'BasicFactsError';
}

const SEX_CODE: Record<Sex, string> = { male: '1', female: '2', unknown: '3' };
const SEX_FROM_CODE: Record<string, Sex> = { '1': 'male', '2': 'female', '3': 'unknown' };

/** Accepts M/F/U, male/female/unknown, or the codes 1/2/3. */
export function parseSex(input: string): Sex {
  const v = input.trim().toLowerCase();
  if (v === 'm' || v === 'male' || v === '1' || v === '男') return 'male';
  if (v === 'f' || v === 'female' || v === '2' || v === '女') return 'female';
  if (v === 'u' || v === 'unknown' || v === '3' || v === '不明') return 'unknown';
  throw new BasicFactsError(`sex must be M, F or U, not "${input}"`);
}

// First day of each era in the Gregorian calendar (Meiji counted from the day the era name was adopted).
const ERAS: readonly [code: number, start: string][] = [
  [5, '2019-05-01'], // 令和 Reiwa
  [4, '1989-01-08'], // 平成 Heisei
  [3, '1926-12-25'], // 昭和 Showa
  [2, '1912-07-30'], // 大正 Taisho
  [1, '1868-10-23'], // 明治 Meiji
];

/** `EYYYYMMDD`: era digit (0 unknown) then the Gregorian date; `0` + zeros when unknown. */
export function encodeDateOfBirth(date: string | null): string {
  if (date === null) return '000000000';
  const era = ERAS.find(([, start]) => date >= start)?.[0] ?? 0;
  return `${era}${date.replaceAll('-', '')}`;
}

export function decodeDateOfBirth(value: string): string | null {
  if (!/^[0-5]\d{8}$/.test(value)) throw new BasicFactsError(`malformed date of birth "${value}"`);
  if (value === '000000000') return null;
  return `${value.slice(1, 5)}-${value.slice(5, 7)}-${value.slice(7, 9)}`;
}

const chars = (s: string) => [...s];

/**
 * Checks and normalises facts for a certificate: whitespace in the name becomes one full-width
 * space, the date must be a real past date, the address must not start with a postcode.
 */
export function normaliseBasicFacts(input: BasicFacts, today = new Date()): BasicFacts {
  const name = input.name.trim().replace(/[\s\u3000]+/gu, '\u3000');
  if (name.length === 0) throw new BasicFactsError('the name is empty');
  if (chars(name).length > 100) throw new BasicFactsError('the name is longer than 100 characters');
  const address = input.address.trim();
  if (address.length === 0) throw new BasicFactsError('the address is empty');
  if (chars(address).length > 200) throw new BasicFactsError('the address is longer than 200 characters');
  if (/^(〒\s*)?\d{3}-?\d{4}/u.test(address))
    throw new BasicFactsError('the address starts with a postcode; give it from the prefecture on');
  if (/[\u0000-\u001f\u007f]/u.test(name + address))
    throw new BasicFactsError('control characters in the name or address');
  let dateOfBirth = input.dateOfBirth;
  if (dateOfBirth !== null) {
    dateOfBirth = dateOfBirth.trim();
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateOfBirth);
    const d = m ? new Date(`${dateOfBirth}T00:00:00Z`) : null;
    if (!m || !d || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== dateOfBirth)
      throw new BasicFactsError(
        `the date of birth must be a real date YYYY-MM-DD, not "${input.dateOfBirth}"`,
      );
    if (d.getTime() > today.getTime()) throw new BasicFactsError('the date of birth is in the future');
    if (dateOfBirth < '1868-01-01') throw new BasicFactsError('the date of birth is before 1868');
  }
  const flags = (value: string | undefined, of: string, what: string) => {
    const n = chars(of).length;
    if (value === undefined) return '0'.repeat(n);
    if (!/^[01]*$/.test(value) || value.length !== n)
      throw new BasicFactsError(`${what} substitute flags must be one 0/1 per character (${n})`);
    return value;
  };
  return {
    name,
    dateOfBirth,
    sex: input.sex,
    address,
    nameSubstitutes: flags(input.nameSubstitutes, name, 'name'),
    addressSubstitutes: flags(input.addressSubstitutes, address, 'address'),
  };
}

const otherName = (type: string, value: string) => explicit(0, oid(type), explicit(0, utf8String(value)));

/**
 * The GeneralName entries ([0] otherName) carrying the facts, in the order the real service's
 * certificates list them: name, date of birth, sex, address, name flags, address flags.
 */
export function basicFactsGeneralNames(facts: BasicFacts): Buffer[] {
  const f = normaliseBasicFacts(facts);
  return [
    otherName(OID.jpkiName, f.name),
    otherName(OID.jpkiDateOfBirth, encodeDateOfBirth(f.dateOfBirth)),
    otherName(OID.jpkiSex, SEX_CODE[f.sex]),
    otherName(OID.jpkiAddress, f.address),
    otherName(OID.jpkiNameSubstitute, f.nameSubstitutes!),
    otherName(OID.jpkiAddressSubstitute, f.addressSubstitutes!),
  ];
}

/** subjectAltName extension value (GeneralNames) with the facts. */
export function encodeBasicFactsSan(facts: BasicFacts): Buffer {
  return sequence(...basicFactsGeneralNames(facts));
}

/**
 * Reads the facts back from a subjectAltName extension value. Returns null when the extension
 * carries none (an authentication certificate); throws when they are present but incomplete.
 */
export function decodeBasicFactsSan(extnValue: Uint8Array): BasicFacts | null {
  const buf = Buffer.from(extnValue.buffer, extnValue.byteOffset, extnValue.byteLength);
  const values = new Map<string, string>();
  let names: Tlv[];
  try {
    const top = readTlv(buf, 0);
    if (top.tag !== 0x30 || top.end !== buf.length) throw new DerError('not one GeneralNames SEQUENCE');
    names = readChildren(buf, top);
  } catch {
    throw new BasicFactsError('malformed subjectAltName');
  }
  if (names.length === 0) throw new BasicFactsError('malformed subjectAltName');
  for (const gn of names) {
    // otherName is [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }; other forms are skipped.
    if (gn.tag !== 0xa0) continue;
    let typeId: string | undefined;
    let value: string;
    try {
      const [type, wrapped, extra] = readChildren(buf, gn);
      if (type?.tag !== 0x06 || wrapped?.tag !== 0xa0 || extra) throw new DerError('malformed otherName');
      typeId = FACT_OIDS.get(buf.toString('latin1', type.contentStart, type.end));
      if (!typeId) continue;
      const [str, more] = readChildren(buf, wrapped);
      if (str?.tag !== 0x0c || more) throw new DerError('not a UTF8String');
      value = UTF8.decode(buf.subarray(str.contentStart, str.end));
    } catch {
      throw new BasicFactsError(typeId ? `malformed value for ${typeId}` : 'malformed subjectAltName');
    }
    // Two names (or two addresses) would leave the verifier to pick one: refuse instead.
    if (values.has(typeId)) throw new BasicFactsError(`subjectAltName repeats ${typeId}`);
    values.set(typeId, value);
  }
  if (values.size === 0) return null;
  const get = (o: string) => {
    const v = values.get(o);
    if (v === undefined) throw new BasicFactsError(`subjectAltName lacks ${o}`);
    return v;
  };
  const sex = SEX_FROM_CODE[get(OID.jpkiSex)];
  if (!sex) throw new BasicFactsError('unknown sex code');
  return {
    name: get(OID.jpkiName),
    dateOfBirth: decodeDateOfBirth(get(OID.jpkiDateOfBirth)),
    sex,
    address: get(OID.jpkiAddress),
    nameSubstitutes: values.get(OID.jpkiNameSubstitute),
    addressSubstitutes: values.get(OID.jpkiAddressSubstitute),
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The JPKI basic-fact OIDs by their DER content octets (latin1), for the SAN reader. */
const FACT_OIDS = new Map(
  [
    OID.jpkiName,
    OID.jpkiDateOfBirth,
    OID.jpkiSex,
    OID.jpkiAddress,
    OID.jpkiNameSubstitute,
    OID.jpkiAddressSubstitute,
  ].map((o) => {
    const der = oid(o);
    return [der.toString('latin1', der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f)), o] as const;
  }),
);

/**
 * Prefecture and city (municipality) from an address such as 東京都千代田区霞が関1-2-2, for the
 * subject's localityName. Returns what it can recognise; callers may supply both explicitly.
 */
export function localitiesOf(address: string): { prefecture?: string; city?: string } {
  const pref = /^(東京都|北海道|京都府|大阪府|[^\s都道府県]{2,3}県)/u.exec(address)?.[1];
  if (!pref) return {};
  const rest = address.slice(pref.length);
  // 郡 is followed by a town or village; 市 may be followed by a ward (政令指定都市) which stays in the city.
  const city = /^(.+?郡.+?[町村]|.+?市(?:.+?区)?|.+?区|.+?[町村])/u.exec(rest)?.[1];
  return { prefecture: pref, city };
}
