// Canonical JSON (RFC 8785, JCS, for the values used here): object keys sorted by UTF-16 code units, no
// whitespace, strings and numbers as ECMAScript's JSON.stringify writes them. The same value always
// encodes to the same bytes, so a hash over the encoding is a hash over the value.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export class CanonicalJsonError extends TypeError {
  override name = 'CanonicalJsonError';
}

/**
 * Encodes a JSON value canonically. Refuses what JSON cannot carry faithfully instead of dropping or
 * converting it: undefined, functions, symbols, bigints, NaN/Infinity, and objects that are not plain
 * (Date, Map, class instances). Cycles are refused by depth (64 levels).
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0, '$');
}

function encode(value: unknown, depth: number, path: string): string {
  if (depth > 64) throw new CanonicalJsonError(`${path}: nested too deeply`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${path}: ${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value))
        return `[${value.map((v, i) => encode(v, depth + 1, `${path}[${i}]`)).join(',')}]`;
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null)
        throw new CanonicalJsonError(`${path}: not a plain object`);
      const keys = Object.keys(value).sort();
      const parts: string[] = [];
      for (const k of keys) {
        const v = (value as Record<string, unknown>)[k];
        parts.push(`${JSON.stringify(k)}:${encode(v, depth + 1, `${path}.${k}`)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new CanonicalJsonError(`${path}: ${typeof value} is not a JSON value`);
  }
}
