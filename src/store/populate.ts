// `jpki dev populate` and the national-scale benchmark: fills a store with N SYNTHETIC certificates of
// the sign and auth CAs, a fraction of them revoked. Not for production: a bulk loader for measuring
// OCSP, CRLs and store size at 10^5 … 10^7 certificates.
//
// What a synthetic row holds. Signing 10 million certificates at ~1 ms each would take hours, and
// OCSP and CRLs only read serial, CA, expiry and the revocation. So every row is a real-sized
// certificate DER (~1.2 kB, the CA's issuer name, its profile's extensions, an RSA-2048 key) built
// once per CA from a template, with the row's serial written into it, signed ONCE with a throwaway
// key: its signature never verifies under the CA, so it can not pass for a certificate of the
// service. The row's `profile` is 'synthetic' (real rows say 'sign' or 'auth'); `ca` is the real CA
// id, which is all OCSP and the CRL builders look at. The DER's validity is the template's; the
// row's not_before / not_after columns are spread over five years. Serials are 16 random bytes as a
// real one (src/core/serial.ts), with a 0x00 sign octet when the top bit is set, so they spread over
// the CRL partitions as real ones do (one template per serial length; a first octet 00 without the
// top bit becomes 01, where a real serial would be one octet shorter).
//
// Bulk load: PostgreSQL through binary `COPY … FROM STDIN` (pg-copy-streams), SQLite through
// prepared inserts; one transaction per batch holding the batch's certificates and revocations,
// so an interrupted run leaves whole batches, and running again tops the store up to `count`.

import { createHash, generateKeyPairSync, randomBytes, randomInt, sign as rsaSign } from 'node:crypto';
import { once } from 'node:events';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeTbsCertificate } from '../core/certificate.ts';
import { bitString, readChildren, readTlv, sequence } from '../core/der.ts';
import { endEntityProfile, endEntityTemplate } from '../core/profiles.ts';
import { type Signer, signatureAlgorithmIdentifier } from '../core/signer.ts';
import { type OpenDatabaseOptions, openDatabase } from './db.ts';

/** The `profile` of every synthetic row. */
export const SYNTHETIC_PROFILE = 'synthetic';
const SYNTHETIC_SUBJECT = 'C=JP,CN=SYNTHETIC (jpki dev populate)';
const CAS = ['sign', 'auth'] as const;
type PopulateCa = (typeof CAS)[number];

/** What populate needs of the authority: its CA certificates and base URL (for the extensions). */
export interface PopulateAuthority {
  certificate(id: PopulateCa): Buffer;
  readonly config: { readonly baseUrl: string };
}

export interface PopulateProgress {
  /** Synthetic certificates in the store now (including those there before this run). */
  certificates: number;
  revoked: number;
  target: number;
}

export interface PopulateOptions {
  /** Synthetic certificates the store should hold at the end (topped up to this). */
  count: number;
  /** Fraction of the added certificates that are revoked, 0 … 1. Default 0.05. */
  revokedFraction?: number;
  /** Add rows to a store that holds real certificates too. */
  force?: boolean;
  /** Rows per transaction. Default 100,000 (PostgreSQL), 50,000 (SQLite). */
  batchSize?: number;
  /**
   * PostgreSQL: drop the certificates primary key (and the foreign keys on it) for the load and
   * build them again at the end, instead of inserting into the index row by row. Default: when
   * adding 500,000 rows or more. The store has no serial index meanwhile: do not serve from it.
   */
  rebuildIndexes?: boolean;
  onProgress?: (p: PopulateProgress) => void;
  now?: Date;
}

export interface PopulateResult {
  /** Synthetic certificates and revocations before and after. */
  before: { certificates: number; revoked: number };
  after: { certificates: number; revoked: number };
  seconds: number;
  /** Seconds spent building the indexes again (rebuildIndexes). */
  indexSeconds?: number;
}

export class PopulateError extends Error {
  override name = 'PopulateError';
}

const DAY = 86_400_000;
const YEAR = 365 * DAY;
/** Revocation reasons drawn at random (RFC 5280 codes): mostly superseded (card renewed) and cessation (moved abroad, died). */
const REASONS = [0, 1, 1, 3, 4, 4, 4, 4, 5, 5, 5, 5];
const SERIAL_BYTES = 16;

interface Template {
  ca: PopulateCa;
  /** By serial length: [16 octets, 17 octets (0x00 + 16)]. */
  der: [Buffer, Buffer];
  /** Offset of the serial's content octets in der, by serial length. */
  serialAt: [number, number];
  spkiSha256: string;
}

export async function populate(
  store: OpenDatabaseOptions,
  authority: PopulateAuthority,
  opts: PopulateOptions,
): Promise<PopulateResult> {
  const fraction = opts.revokedFraction ?? 0.05;
  if (!Number.isSafeInteger(opts.count) || opts.count < 0)
    throw new PopulateError(`the count must be a whole number >= 0, not ${opts.count}`);
  if (!(fraction >= 0 && fraction <= 1))
    throw new PopulateError(`the revoked fraction must be between 0 and 1, not ${fraction}`);
  const batchSize = opts.batchSize ?? (store.databaseUrl ? 100_000 : 50_000);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1)
    throw new PopulateError(`the batch size must be a whole number >= 1, not ${batchSize}`);
  // Migrates the schema (a new store) and refuses an unreachable one before anything is generated.
  await (await openDatabase(store)).close();
  const templates = await Promise.all(CAS.map((ca) => template(authority, ca)));
  const now = (opts.now ?? new Date()).getTime();
  const t0 = performance.now();
  const loader = store.databaseUrl
    ? await postgresLoader(store.databaseUrl)
    : sqliteLoader(store.sqlitePath!);
  try {
    const before = await loader.counts();
    if (before.real > 0 && !opts.force)
      throw new PopulateError(
        `the store holds ${before.real} real certificates; populate adds synthetic ones for benchmarks only (--force to add them anyway)`,
      );
    let done = before.synthetic;
    let revoked = before.revoked;
    const target = opts.count;
    opts.onProgress?.({ certificates: done, revoked, target });
    let indexSeconds: number | undefined;
    if (done < target) {
      // Measured on PostgreSQL at 1 M rows: loading without the primary key and building it after
      // took half the time of inserting into it row by row (random serials: every insert lands on
      // a random leaf page). For a small top-up of a big table the rebuild costs more than it saves.
      const rebuild = (opts.rebuildIndexes ?? target - done >= 500_000) && loader.dropIndexes !== undefined;
      if (rebuild) await loader.dropIndexes!();
      const start = done;
      while (done < target) {
        const n = Math.min(batchSize, target - done);
        // Cumulative rounding over this run: exactly round(added * fraction) revoked in the end.
        const r = Math.round((done + n - start) * fraction) - Math.round((done - start) * fraction);
        const batch = makeBatch(templates, n, r, now);
        await loader.load(batch);
        done += n;
        revoked += r;
        opts.onProgress?.({ certificates: done, revoked, target });
      }
      if (rebuild) {
        const i0 = performance.now();
        await loader.restoreIndexes();
        indexSeconds = (performance.now() - i0) / 1000;
      }
    }
    await loader.analyze();
    return {
      before: { certificates: before.synthetic, revoked: before.revoked },
      after: { certificates: done, revoked },
      seconds: (performance.now() - t0) / 1000,
      ...(indexSeconds !== undefined ? { indexSeconds } : {}),
    };
  } finally {
    // After an interruption the constraints come back here, or at the start of the next run.
    await loader.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Rows

/** The certificate DER of one CA with a placeholder serial, signed once with a throwaway key. */
async function template(authority: PopulateAuthority, ca: PopulateCa): Promise<Template> {
  const caDer = authority.certificate(ca);
  const fields = readChildren(caDer, readChildren(caDer, readTlv(caDer, 0))[0]!);
  const off = fields[0]!.tag === 0xa0 ? 1 : 0;
  const issuerName = caDer.subarray(fields[off + 4]!.start, fields[off + 4]!.end);
  const issuerSpki = caDer.subarray(fields[off + 5]!.start, fields[off + 5]!.end);
  const b = authority.config.baseUrl.replace(/\/+$/, '');
  const profile = endEntityProfile(
    ca,
    { name: issuerName, spki: issuerSpki },
    {
      crl: `${b}/crl/${ca}.crl`,
      deltaCrl: `${b}/crl/${ca}-delta.crl`,
      ocsp: `${b}/ocsp`,
      caIssuers: `${b}/ca/${ca}.der`,
      cps: `${b}/cps`,
    },
  );
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const signer: Signer = {
    algorithm: 'rsa-2048',
    publicKeySpki: spki,
    sign: async (data) => rsaSign('sha256', Buffer.concat([data].flat()), privateKey),
  };
  const t = endEntityTemplate(
    {
      kind: ca,
      spki,
      issuanceId: 'SYNTHETIC0000POPULATE',
      facts:
        ca === 'sign'
          ? {
              name: '合成 太郎',
              dateOfBirth: '1980-04-01',
              sex: 'male',
              address: '東京都千代田区霞が関2丁目1番2号',
            }
          : undefined,
      notBefore: new Date('2025-01-01T00:00:00Z'),
      years: 5,
    },
    profile,
  );
  const build = async (placeholder: Buffer) => {
    const tbs = encodeTbsCertificate(signer, {
      serial: placeholder,
      issuer: issuerName,
      subject: t.subject,
      notBefore: t.validity.notBefore,
      notAfter: t.validity.notAfter,
      spki,
      extensions: t.extensions,
    });
    const der = sequence(
      tbs,
      signatureAlgorithmIdentifier(signer.algorithm),
      bitString(await signer.sign(tbs)),
    );
    const serialField = readChildren(der, readChildren(der, readTlv(der, 0))[0]!)[1]!;
    if (serialField.end - serialField.contentStart !== placeholder.length)
      throw new Error('populate: unexpected template layout');
    return { der, at: serialField.contentStart };
  };
  const short = await build(Buffer.alloc(SERIAL_BYTES, 0x11));
  const long = await build(Buffer.concat([Buffer.alloc(1), Buffer.alloc(SERIAL_BYTES, 0x91)]));
  return {
    ca,
    der: [short.der, long.der],
    serialAt: [short.at, long.at],
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
  };
}

interface CertRow {
  serial: string;
  ca: PopulateCa;
  notBefore: number;
  notAfter: number;
  der: Buffer;
  spkiSha256: string;
}

interface RevocationRow {
  serial: string;
  ca: PopulateCa;
  reason: number;
  revokedAt: number;
  notAfter: number;
}

interface Batch {
  certificates: CertRow[];
  revocations: RevocationRow[];
}

/** n certificates (half sign, half auth, at random) of which r, chosen at random, are revoked. */
function makeBatch(templates: Template[], n: number, r: number, now: number): Batch {
  const serials = randomBytes(n * SERIAL_BYTES);
  const certificates: CertRow[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = serials.subarray(i * SERIAL_BYTES, (i + 1) * SERIAL_BYTES);
    const t = templates[s[SERIAL_BYTES - 1]! & 1]!;
    const long = s[0]! & 0x80 ? 1 : 0;
    if (!long && s[0] === 0) s[0] = 1; // minimal DER: no leading 00 before a clear top bit
    const der = Buffer.from(t.der[long]);
    s.copy(der, t.serialAt[long] + long);
    // Issued over the last five years (seconds), valid for five: all still valid now.
    const notBefore =
      Math.floor((now - randomInt(1, 5 * 365) * DAY - randomInt(0, 86_400) * 1000) / 1000) * 1000;
    certificates[i] = {
      serial: long ? `00${s.toString('hex')}` : s.toString('hex'),
      ca: t.ca,
      notBefore,
      notAfter: notBefore + 5 * YEAR,
      der,
      spkiSha256: t.spkiSha256,
    };
  }
  // r distinct rows: a partial Fisher-Yates shuffle of the indexes.
  const idx = Array.from({ length: n }, (_, i) => i);
  const revocations: RevocationRow[] = [];
  for (let k = 0; k < r; k++) {
    const j = randomInt(k, n);
    [idx[k], idx[j]] = [idx[j]!, idx[k]!];
    const c = certificates[idx[k]!]!;
    const revokedAt = Math.floor((c.notBefore + Math.random() * (now - c.notBefore)) / 1000) * 1000;
    revocations.push({
      serial: c.serial,
      ca: c.ca,
      reason: REASONS[randomInt(REASONS.length)]!,
      revokedAt,
      notAfter: c.notAfter,
    });
  }
  // Revocation ids follow revocation times, as they would in a live service.
  revocations.sort((a, b) => a.revokedAt - b.revokedAt);
  return { certificates, revocations };
}

// ---------------------------------------------------------------------------------------------------------
// Loaders

interface Loader {
  counts(): Promise<{ synthetic: number; real: number; revoked: number }>;
  load(batch: Batch): Promise<void>;
  dropIndexes?: () => Promise<void>;
  restoreIndexes(): Promise<void>;
  analyze(): Promise<void>;
  close(): Promise<void>;
}

const COUNTS_SQL = `select
  (select count(*) from certificates where profile = '${SYNTHETIC_PROFILE}') as synthetic,
  (select count(*) from certificates where profile <> '${SYNTHETIC_PROFILE}') as real,
  (select count(*) from revocations r join certificates c on c.serial = r.serial where c.profile = '${SYNTHETIC_PROFILE}') as revoked`;

function sqliteLoader(path: string): Loader {
  const db = new SQLite(path);
  db.pragma('busy_timeout = 5000');
  const cert = db.prepare(
    `insert into certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, resident_ref, spki_sha256)
     values (?, ?, '${SYNTHETIC_PROFILE}', '${SYNTHETIC_SUBJECT}', ?, ?, ?, ?, null, ?)`,
  );
  const rev = db.prepare(
    'insert into revocations (serial, ca, reason, revoked_at, recorded_at, not_after) values (?, ?, ?, ?, ?, ?)',
  );
  const load = db.transaction((b: Batch) => {
    for (const c of b.certificates)
      cert.run(c.serial, c.ca, c.notBefore, c.notAfter, c.notBefore, c.der, c.spkiSha256);
    for (const r of b.revocations) rev.run(r.serial, r.ca, r.reason, r.revokedAt, r.revokedAt, r.notAfter);
  });
  return {
    counts: async () => {
      const row = db.prepare(COUNTS_SQL).get() as { synthetic: number; real: number; revoked: number };
      return row;
    },
    load: async (b) => {
      load(b);
      // Let a progress bar (and Ctrl-C) through between batches.
      await new Promise<void>((r) => setImmediate(r));
    },
    restoreIndexes: async () => {},
    analyze: async () => {
      db.exec('analyze');
    },
    close: async () => {
      db.close();
    },
  };
}

const CERT_COPY = `copy certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, resident_ref, spki_sha256) from stdin with (format binary)`;
const REV_COPY = `copy revocations (serial, ca, reason, revoked_at, recorded_at, not_after) from stdin with (format binary)`;
/** Marks, in the certificates table's comment, keys dropped by a load that has not put them back. */
const DROPPED_MARK = 'jpki dev populate dropped: ';

async function postgresLoader(url: string): Promise<Loader> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const q = async <T extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
    (await client.query<T>(text, values)).rows;
  const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const restoreIndexes = async () => {
    const [row] = await q<{ c: string | null }>(
      "select obj_description('certificates'::regclass, 'pg_class') as c",
    );
    if (!row?.c?.startsWith(DROPPED_MARK)) return;
    const foreign = JSON.parse(row.c.slice(DROPPED_MARK.length)) as {
      table: string;
      name: string;
      def: string;
    }[];
    await q('begin');
    try {
      // Sorting 10 M serials in memory rather than in temporary files.
      await q("set local maintenance_work_mem = '512MB'");
      await q('alter table certificates add constraint certificates_pkey primary key (serial)');
      for (const f of foreign) await q(`alter table ${f.table} add constraint ${quote(f.name)} ${f.def}`);
      await q('comment on table certificates is null');
      await q('commit');
    } catch (e) {
      await q('rollback').catch(() => undefined);
      throw e;
    }
  };
  try {
    // A run interrupted while the keys were dropped: put them back before anything else.
    await restoreIndexes();
  } catch (e) {
    await client.end();
    throw e;
  }
  const dropIndexes = async () => {
    // Every foreign key that references certificates (revocations, register, counter, OCSP tables)
    // depends on its primary key; they are recorded in the table's comment first, so that an
    // interrupted load can put them back (restoreIndexes, at the next start).
    const foreign = await q<{ table: string; name: string; def: string }>(
      `select conrelid::regclass::text as table, conname as name, pg_get_constraintdef(oid) as def
       from pg_constraint where contype = 'f' and confrelid = 'certificates'::regclass`,
    );
    await q('begin');
    await q(
      `comment on table certificates is ${client.escapeLiteral(DROPPED_MARK + JSON.stringify(foreign))}`,
    );
    for (const f of foreign) await q(`alter table ${f.table} drop constraint ${quote(f.name)}`);
    await q('alter table certificates drop constraint certificates_pkey');
    await q('commit');
  };
  return {
    counts: async () => {
      const [row] = await q<{ synthetic: string; real: string; revoked: string }>(COUNTS_SQL);
      return { synthetic: Number(row!.synthetic), real: Number(row!.real), revoked: Number(row!.revoked) };
    },
    load: async (b) => {
      await q('begin');
      try {
        await copyRows(client, CERT_COPY, b.certificates, encodeCertificate);
        await copyRows(client, REV_COPY, b.revocations, encodeRevocation);
        await q('commit');
      } catch (e) {
        await q('rollback').catch(() => undefined);
        throw e;
      }
    },
    dropIndexes,
    restoreIndexes,
    analyze: async () => {
      await q('vacuum analyze certificates');
      await q('vacuum analyze revocations');
    },
    close: async () => {
      try {
        await restoreIndexes();
      } finally {
        await client.end();
      }
    },
  };
}

// Binary COPY (PostgreSQL docs, "Binary Format"): a header, then per tuple a 16-bit field count and
// per field a 32-bit length (-1 for NULL) and the bytes; a 16-bit -1 ends the data.
const COPY_HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);
const ROWS_PER_WRITE = 5000;

async function copyRows<T>(
  client: pg.Client,
  statement: string,
  rows: T[],
  encode: (w: TupleWriter, row: T) => void,
): Promise<void> {
  const stream = client.query(copyFrom(statement));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  stream.write(COPY_HEADER);
  for (let i = 0; i < rows.length; i += ROWS_PER_WRITE) {
    const w = new TupleWriter();
    for (const row of rows.slice(i, i + ROWS_PER_WRITE)) encode(w, row);
    if (!stream.write(w.finish())) await Promise.race([once(stream, 'drain'), done]);
  }
  stream.end(COPY_TRAILER);
  await done;
}

class TupleWriter {
  private readonly parts: Buffer[] = [];
  private head = Buffer.allocUnsafe(1 << 16);
  private pos = 0;

  private room(n: number) {
    if (this.pos + n <= this.head.length) return;
    this.parts.push(this.head.subarray(0, this.pos));
    this.head = Buffer.allocUnsafe(Math.max(1 << 16, n));
    this.pos = 0;
  }
  fields(n: number) {
    this.room(2);
    this.pos = this.head.writeInt16BE(n, this.pos);
  }
  text(s: string) {
    const len = Buffer.byteLength(s);
    this.room(4 + len);
    this.pos = this.head.writeInt32BE(len, this.pos);
    this.pos += this.head.write(s, this.pos);
  }
  bytes(b: Buffer) {
    this.room(4 + b.length);
    this.pos = this.head.writeInt32BE(b.length, this.pos);
    this.pos += b.copy(this.head, this.pos);
  }
  int4(v: number) {
    this.room(8);
    this.pos = this.head.writeInt32BE(4, this.pos);
    this.pos = this.head.writeInt32BE(v, this.pos);
  }
  int8(v: number) {
    this.room(12);
    this.pos = this.head.writeInt32BE(8, this.pos);
    this.pos = this.head.writeBigInt64BE(BigInt(v), this.pos);
  }
  null() {
    this.room(4);
    this.pos = this.head.writeInt32BE(-1, this.pos);
  }
  finish(): Buffer {
    this.parts.push(this.head.subarray(0, this.pos));
    return Buffer.concat(this.parts);
  }
}

function encodeCertificate(w: TupleWriter, c: CertRow): void {
  w.fields(10);
  w.text(c.serial);
  w.text(c.ca);
  w.text(SYNTHETIC_PROFILE);
  w.text(SYNTHETIC_SUBJECT);
  w.int8(c.notBefore);
  w.int8(c.notAfter);
  w.int8(c.notBefore);
  w.bytes(c.der);
  w.null();
  w.text(c.spkiSha256);
}

function encodeRevocation(w: TupleWriter, r: RevocationRow): void {
  w.fields(6);
  w.text(r.serial);
  w.text(r.ca);
  w.int4(r.reason);
  w.int8(r.revokedAt);
  w.int8(r.revokedAt);
  w.int8(r.notAfter);
}
