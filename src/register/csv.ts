// A streaming CSV parser (RFC 4180): comma-separated, fields optionally in double quotes, "" for a quote
// inside quotes, records ended by CRLF, LF or CR, line breaks allowed inside quoted fields. It is fed text
// chunk by chunk and hands back complete records, so a file of any size is parsed in constant memory
// (one record at most, capped by maxFieldLength and maxFields).
//
// Malformed input never throws: the record carries `error` and parsing goes on with the next record.
// Lenient where RFC 4180 is strict, but reported: a quote inside an unquoted field or text after a
// closing quote is kept literally and flagged. Blank lines are skipped. A leading UTF-8 BOM is dropped.

export interface CsvRecord {
  fields: string[];
  /** Line on which the record starts (1-based; counts line breaks inside quoted fields too). */
  line: number;
  /** Set when the record is malformed; its fields are then not to be trusted. */
  error?: string;
}

export interface CsvOptions {
  /** Longest field kept, in UTF-16 code units (default 10,000): longer ones make the record an error. */
  maxFieldLength?: number;
  /** Most fields per record (default 1,000). */
  maxFields?: number;
}

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** A quote seen inside a quoted field: either the first of "" or the closing quote. */
  QuoteInQuoted,
  /** After a closing quote. */
  AfterQuoted,
}

export class CsvParser {
  readonly #maxField: number;
  readonly #maxFields: number;
  #state = State.FieldStart;
  #field = '';
  #fields: string[] = [];
  #error: string | undefined;
  #line = 1;
  #recordLine = 1;
  #skipLf = false;
  #afterCr = false;
  #first = true;

  constructor(opts: CsvOptions = {}) {
    this.#maxField = opts.maxFieldLength ?? 10_000;
    this.#maxFields = opts.maxFields ?? 1000;
  }

  /** Parses a chunk of text; returns the records it completed. */
  push(text: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    let i = 0;
    const n = text.length;
    if (this.#first && n > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this.#skipLf && i < n) {
      this.#skipLf = false;
      if (text.charCodeAt(i) === LF) i++;
    }
    let start = i; // start of the pending slice of the current field
    while (i < n) {
      const c = text.charCodeAt(i);
      switch (this.#state) {
        case State.FieldStart:
          if (c === QUOTE) {
            this.#state = State.Quoted;
            i++;
            start = i;
            continue;
          }
          this.#state = State.Unquoted;
          start = i;
          continue;
        case State.Unquoted: {
          // Fast scan to the next special character.
          let j = i;
          let d = c;
          while (d !== COMMA && d !== LF && d !== CR && d !== QUOTE) {
            j++;
            if (j >= n) break;
            d = text.charCodeAt(j);
          }
          if (j >= n) {
            this.#append(text, start, n);
            i = n;
            start = n;
            continue;
          }
          if (d === QUOTE) {
            this.#fail(
              'a double quote inside an unquoted field (quote the whole field and double the quote)',
            );
            i = j + 1;
            continue; // kept literally: the slice goes on
          }
          this.#append(text, start, j);
          i = j;
          this.#endField();
          if (d === COMMA) {
            i++;
            start = i;
            continue;
          }
          i = this.#endLine(text, i, out);
          start = i;
          continue;
        }
        case State.Quoted: {
          const j = text.indexOf('"', i);
          const end = j === -1 ? n : j;
          // Line breaks inside the field: CR, LF or CR LF (possibly split across chunks) count once.
          for (let k = i; k < end; k++) {
            const e = text.charCodeAt(k);
            if (e === CR || (e === LF && !this.#afterCr)) this.#line++;
            this.#afterCr = e === CR;
          }
          this.#append(text, start, end);
          if (j === -1) {
            i = n;
            start = n;
            continue;
          }
          this.#afterCr = false;
          this.#state = State.QuoteInQuoted;
          i = j + 1;
          start = i;
          continue;
        }
        case State.QuoteInQuoted:
          if (c === QUOTE) {
            this.#appendText('"');
            this.#state = State.Quoted;
            i++;
            start = i;
            continue;
          }
          this.#state = State.AfterQuoted;
          continue;
        case State.AfterQuoted:
          if (c === COMMA) {
            this.#endField();
            i++;
            start = i;
            continue;
          }
          if (c === LF || c === CR) {
            this.#endField();
            i = this.#endLine(text, i, out);
            start = i;
            continue;
          }
          this.#fail('text after the closing quote of a field');
          this.#appendText(text[i]!);
          i++;
          start = i;
          continue;
      }
    }
    return out;
  }

  /** Ends the input; returns the last record if the text did not end with a line break. */
  end(): CsvRecord[] {
    const out: CsvRecord[] = [];
    if (this.#state === State.Quoted) this.#fail('a quoted field is not closed before the end of the file');
    if (this.#state !== State.FieldStart || this.#fields.length > 0) {
      this.#endField();
      this.#emit(out);
    }
    return out;
  }

  #append(text: string, from: number, to: number) {
    if (to > from) this.#appendText(text.slice(from, to));
  }

  #appendText(s: string) {
    if (this.#field.length + s.length > this.#maxField) {
      this.#fail(`a field is longer than ${this.#maxField} characters`);
      return;
    }
    this.#field += s;
  }

  #fail(message: string) {
    this.#error ??= message;
  }

  #endField() {
    if (this.#fields.length >= this.#maxFields) this.#fail(`more than ${this.#maxFields} fields`);
    else this.#fields.push(this.#field);
    this.#field = '';
    this.#state = State.FieldStart;
  }

  /** At a CR or LF that ends a record: emits it, returns the index after the line break. */
  #endLine(text: string, i: number, out: CsvRecord[]): number {
    const c = text.charCodeAt(i);
    i++;
    if (c === CR) {
      if (i < text.length) {
        if (text.charCodeAt(i) === LF) i++;
      } else this.#skipLf = true;
    }
    this.#emit(out);
    this.#line++;
    this.#recordLine = this.#line;
    return i;
  }

  #emit(out: CsvRecord[]) {
    const fields = this.#fields;
    const blank = fields.length === 1 && fields[0] === '' && this.#error === undefined;
    if (!blank) {
      const rec: CsvRecord = { fields, line: this.#recordLine };
      if (this.#error !== undefined) rec.error = this.#error;
      out.push(rec);
    }
    this.#fields = [];
    this.#field = '';
    this.#error = undefined;
    this.#state = State.FieldStart;
  }
}

/**
 * Parses a byte or text stream (a file or HTTP body as a Readable, or any async iterable) into batches of
 * records, one batch per input chunk. UTF-8 is decoded across chunk boundaries; invalid UTF-8 throws.
 */
export async function* parseCsvStream(
  source: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  opts: CsvOptions = {},
): AsyncGenerator<CsvRecord[], void, undefined> {
  const parser = new CsvParser(opts);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for await (const chunk of source) {
    const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    const records = parser.push(text);
    if (records.length > 0) yield records;
  }
  const rest = decoder.decode();
  const records = [...(rest ? parser.push(rest) : []), ...parser.end()];
  if (records.length > 0) yield records;
}
