// The procedure catalogue: the agencies that receive applications and the procedures residents can
// file with them (MISSION.md part 9). Both are data (src/applications/seed/*.json), not code: a
// prefectural or municipal procedure is a template, and which prefectures and municipalities offer
// it is the `offerings` table, so adding a municipality is a data change.
//
// A concrete procedure's id is the national id ('vehicle-one-stop') or `<template>@<agency id>`
// ('municipal-tax@muni-131016'). Each procedure has one part per receiving agency: the one-stop
// model, where one signed application fans out to several agencies.

import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export type Bilingual = { ja: string; en: string };
export type AgencyLevel = 'national' | 'prefecture' | 'municipality';

export interface Agency {
  id: string;
  level: AgencyLevel;
  name: Bilingual;
  /** Two-digit JIS X 0401 prefecture code (prefectures and municipalities). */
  prefectureCode?: string;
  /** Six-digit local-government code of a prefecture. */
  lgCode?: string;
  /** Six-digit municipality code (municipalities). */
  municipalityCode?: string;
}

export interface ProcedurePart {
  id: string;
  agency: string;
  name: Bilingual;
  /** Yen, collected by that agency. */
  fee: number;
}

export interface Procedure {
  id: string;
  level: AgencyLevel;
  /** The agency that publishes the procedure. */
  agency: string;
  name: Bilingual;
  /** The certificate the signature must be made with (a signature certificate: it carries the four facts). */
  certificate: 'sign';
  signatureFormat: 'cms' | 'xml';
  parts: ProcedurePart[];
  /** Total of the parts' fees. */
  fee: number;
  /** JSON Schema (draft 2020-12) of the form. */
  form: Record<string, unknown>;
}

export interface FieldError {
  /** JSON Pointer of the field ('' for the form itself). */
  field: string;
  keyword: string;
  message: Bilingual;
}

export class CatalogueError extends Error {
  override name = 'CatalogueError';
}

interface SeedProcedure extends Omit<Procedure, 'id' | 'agency' | 'fee' | 'parts'> {
  id?: string;
  template?: string;
  agency?: string;
  parts: (Omit<ProcedurePart, 'agency'> & { agency?: string })[];
}

interface Seed {
  agencies: Agency[];
  offerings: Record<string, string[]>;
  procedures: SeedProcedure[];
}

function readSeed(): Seed {
  const read = (name: string) => JSON.parse(readFileSync(new URL(`./seed/${name}`, import.meta.url), 'utf8'));
  const a = read('agencies.json') as Pick<Seed, 'agencies' | 'offerings'>;
  const p = read('procedures.json') as Pick<Seed, 'procedures'>;
  return { ...a, ...p };
}

export class Catalogue {
  readonly agencies = new Map<string, Agency>();
  readonly procedures = new Map<string, Procedure>();
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #labels = new Map<string, Map<string, Bilingual>>();

  constructor(seed: Seed = readSeed()) {
    for (const a of seed.agencies) this.agencies.set(a.id, a);
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    addFormats.default(ajv, ['date', 'date-time', 'email']);
    ajv.addVocabulary(['x-label']);
    const add = (p: Procedure) => {
      if (this.procedures.has(p.id)) throw new CatalogueError(`procedure ${p.id} is defined twice`);
      for (const part of p.parts)
        if (!this.agencies.has(part.agency))
          throw new CatalogueError(`procedure ${p.id}: part ${part.id} names unknown agency ${part.agency}`);
      this.procedures.set(p.id, p);
      this.#validators.set(p.id, ajv.compile(p.form));
      this.#labels.set(p.id, labelsOf(p.form));
    };
    const templates = new Map(seed.procedures.filter((p) => p.template).map((p) => [p.template!, p]));
    for (const p of seed.procedures) {
      if (p.template) continue;
      if (!p.id || !p.agency) throw new CatalogueError('a national procedure needs an id and an agency');
      add(concrete(p, p.id, p.agency));
    }
    for (const [agencyId, names] of Object.entries(seed.offerings)) {
      const agency = this.agencies.get(agencyId);
      if (!agency) throw new CatalogueError(`offerings name unknown agency ${agencyId}`);
      for (const name of names) {
        const t = templates.get(name);
        if (!t) throw new CatalogueError(`${agencyId} offers unknown procedure ${name}`);
        if (t.level !== agency.level)
          throw new CatalogueError(`${name} is a ${t.level} procedure; ${agencyId} is a ${agency.level}`);
        add(concrete(t, `${name}@${agencyId}`, agencyId));
      }
    }
  }

  procedure(id: string): Procedure | undefined {
    return this.procedures.get(id);
  }

  /** Procedures, optionally those of one level, one agency, or those a municipality's residents can file. */
  list(filter: { level?: AgencyLevel; agency?: string; municipalityCode?: string } = {}): Procedure[] {
    let out = [...this.procedures.values()];
    if (filter.level) out = out.filter((p) => p.level === filter.level);
    if (filter.agency) out = out.filter((p) => p.parts.some((x) => x.agency === filter.agency));
    if (filter.municipalityCode) {
      const muni = [...this.agencies.values()].find((a) => a.municipalityCode === filter.municipalityCode);
      out = out.filter(
        (p) =>
          p.level === 'national' ||
          (p.level === 'prefecture' &&
            this.agencies.get(p.agency)?.prefectureCode === muni?.prefectureCode) ||
          (p.level === 'municipality' && p.agency === muni?.id),
      );
    }
    return out;
  }

  /** Checks a form against the procedure's schema: every problem, per field, in Japanese and English. */
  validateForm(procedureId: string, form: unknown): FieldError[] {
    const validate = this.#validators.get(procedureId);
    if (!validate) throw new CatalogueError(`unknown procedure ${procedureId}`);
    if (validate(form)) return [];
    const labels = this.#labels.get(procedureId)!;
    return (validate.errors ?? []).map((e) => fieldError(e, labels));
  }
}

function concrete(p: SeedProcedure, id: string, agency: string): Procedure {
  const parts = p.parts.map((x) => ({ id: x.id, agency: x.agency ?? agency, name: x.name, fee: x.fee }));
  return {
    id,
    level: p.level,
    agency,
    name: p.name,
    certificate: p.certificate,
    signatureFormat: p.signatureFormat,
    parts,
    fee: parts.reduce((s, x) => s + x.fee, 0),
    form: p.form,
  };
}

/** Field labels by JSON Pointer, with array items as '*' ('/children/*\/name'). */
function labelsOf(schema: Record<string, unknown>, path = '', out = new Map<string, Bilingual>()) {
  const label = schema['x-label'] as Bilingual | undefined;
  if (label) out.set(path, label);
  const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
  for (const [k, v] of Object.entries(props ?? {})) labelsOf(v, `${path}/${k}`, out);
  const items = schema.items as Record<string, unknown> | undefined;
  if (items && typeof items === 'object') labelsOf(items, `${path}/*`, out);
  return out;
}

function fieldError(e: ErrorObject, labels: Map<string, Bilingual>): FieldError {
  const p = e.params as Record<string, unknown>;
  let field = e.instancePath;
  if (e.keyword === 'required') field = `${field}/${String(p.missingProperty)}`;
  if (e.keyword === 'additionalProperties') field = `${field}/${String(p.additionalProperty)}`;
  const label = labels.get(field.replace(/\/\d+(?=\/|$)/g, '/*')) ?? {
    ja: field ? `「${field.split('/').pop()}」` : '申請書',
    en: field ? `"${field.split('/').pop()}"` : 'the form',
  };
  return { field, keyword: e.keyword, message: sentence(e.keyword, p, label) };
}

const TYPES: Record<string, string> = {
  string: '文字列',
  integer: '整数',
  number: '数値',
  boolean: '真偽値',
  object: 'オブジェクト',
  array: '配列',
};

function sentence(keyword: string, p: Record<string, unknown>, l: Bilingual): Bilingual {
  switch (keyword) {
    case 'required':
      return { ja: `${l.ja}を入力してください。`, en: `${cap(l.en)} is required.` };
    case 'additionalProperties':
      return {
        ja: `${l.ja}はこの申請書の項目ではありません。`,
        en: `${cap(l.en)} is not a field of this form.`,
      };
    case 'type':
      return {
        ja: `${l.ja}は${TYPES[String(p.type)] ?? String(p.type)}で入力してください。`,
        en: `${cap(l.en)} must be ${article(String(p.type))}.`,
      };
    case 'minLength':
      return p.limit === 1
        ? { ja: `${l.ja}を入力してください。`, en: `${cap(l.en)} must not be empty.` }
        : {
            ja: `${l.ja}は${p.limit}文字以上で入力してください。`,
            en: `${cap(l.en)} needs at least ${p.limit} characters.`,
          };
    case 'maxLength':
      return {
        ja: `${l.ja}は${p.limit}文字以内で入力してください。`,
        en: `${cap(l.en)} allows at most ${p.limit} characters.`,
      };
    case 'minimum':
    case 'exclusiveMinimum':
      return {
        ja: `${l.ja}は${p.limit}${keyword === 'minimum' ? '以上' : 'より大きい値'}にしてください。`,
        en: `${cap(l.en)} must be ${keyword === 'minimum' ? 'at least' : 'more than'} ${p.limit}.`,
      };
    case 'maximum':
      return {
        ja: `${l.ja}は${p.limit}以下にしてください。`,
        en: `${cap(l.en)} must be at most ${p.limit}.`,
      };
    case 'pattern':
      return { ja: `${l.ja}の形式が正しくありません。`, en: `${cap(l.en)} is not in the expected form.` };
    case 'format':
      return p.format === 'date'
        ? {
            ja: `${l.ja}は YYYY-MM-DD 形式の日付で入力してください。`,
            en: `${cap(l.en)} must be a date (YYYY-MM-DD).`,
          }
        : { ja: `${l.ja}の形式が正しくありません。`, en: `${cap(l.en)} is not a valid ${p.format}.` };
    case 'enum':
      return {
        ja: `${l.ja}は次のいずれかを選んでください: ${(p.allowedValues as unknown[]).join('、')}`,
        en: `${cap(l.en)} must be one of: ${(p.allowedValues as unknown[]).join(', ')}.`,
      };
    case 'minItems':
      return {
        ja: `${l.ja}を${p.limit}件以上入力してください。`,
        en: `${cap(l.en)} needs at least ${p.limit} entries.`,
      };
    case 'maxItems':
      return { ja: `${l.ja}は${p.limit}件までです。`, en: `${cap(l.en)} allows at most ${p.limit} entries.` };
    default:
      return { ja: `${l.ja}の値が正しくありません。`, en: `${cap(l.en)} is not valid.` };
  }
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const article = (t: string) => (t === 'integer' || t === 'object' || t === 'array' ? `an ${t}` : `a ${t}`);

let shared: Catalogue | undefined;
/** The catalogue of the seed files, built once. */
export function defaultCatalogue(): Catalogue {
  shared ??= new Catalogue();
  return shared;
}
