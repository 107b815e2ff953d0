// The resident register: how fast a register change reaches OCSP, a whole issuance at the municipal
// counter (card keys, requests, two certificates, the card, the audit entry), and bulk CSV import.
//
//   1. Revocation propagation: time from recordEvent returning (a move, which revokes the signature
//      certificate) to Authority.ocsp answering "revoked" for that certificate. In-process: the
//      OutboxProcessor runs in this process and is woken by outboxSignal; events one after the other.
//      Cross-process: the processor runs in a child process that only polls (250 ms); events are
//      recorded at random intervals (uniform 10-50 ms) and each is polled on its own, so that the
//      events fall at every phase of the child's poll.
//   2. Counter issuance end to end, per resident: two RSA-2048 key pairs generated on a SoftwareCard
//      (default scrypt PIN hashing, so every PIN check costs what it costs on a real software card),
//      two PKCS#10 requests made on the card, two certificates through issueForResident (Art. 6 slot),
//      both written to the card, one audit entry (appendAudit).
//   3. Bulk import: a generated CSV file of 1,000,000 residents streamed through importResidents into
//      a fresh SQLite file and a fresh PostgreSQL database, each in a child process whose peak RSS is
//      the import's.
//
// This file is also the child process of 1 and 3 (see the bottom):
//   node --import tsx bench/register.ts outbox-child <dataDir> [databaseUrl]
//   node --import tsx bench/register.ts import-child <csvFile> <sqlitePath|databaseUrl>

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { AsnConvert } from '@peculiar/asn1-schema';
import { sql } from 'kysely';
import { appendAudit } from '../src/audit/audit-log.ts';
import { Authority, certificateParts } from '../src/authority/authority.ts';
import { SoftwareCard } from '../src/card/software-card.ts';
import { NULL, octetString, oid, sequence, tlv } from '../src/core/der.ts';
import { issuerHashes } from '../src/core/ocsp.ts';
import { issueForResident } from '../src/counter/issuance.ts';
import { municipalityCheckDigit } from '../src/register/codes.ts';
import { importResidents } from '../src/register/import.ts';
import { OutboxProcessor } from '../src/register/outbox.ts';
import { recordEvent } from '../src/register/register.ts';
import { openDatabase, type Store } from '../src/store/db.ts';
import {
  type BenchDatabase,
  createAuthority,
  createPostgresDatabase,
  ENV,
  firstJsonLine,
  log,
  MB,
  makeCsrs,
  median,
  postgresAvailable,
  printTable,
  round,
  sleep,
  waitExit,
} from './util.ts';

export interface RegisterOptions {
  /** Events (residents with a signature certificate) per propagation variant and store. */
  events: number;
  /** Poll interval of the OCSP check after an event, ms. */
  ocspPollMs: number;
  /** Poll interval of the processor in the other process, ms. */
  crossProcessPollMs: number;
  /** Residents issued at the counter per store (plus 3 warm-up residents). */
  counterResidents: number;
  /** Rows of the CSV file. */
  importRows: number;
}

export const REGISTER_DEFAULTS: RegisterOptions = {
  events: 1000,
  ocspPollMs: 1,
  crossProcessPollMs: 250,
  counterResidents: 50,
  importRows: 1_000_000,
};

export const PROPAGATION_TARGET_P99_MS = 1000;
export const COUNTER_TARGET_P99_MS = 1500;

type StoreName = 'sqlite' | 'postgres';

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  min: number;
  mean: number;
}

export interface PropagationCase {
  store: StoreName;
  processor: 'in-process (woken by outboxSignal)' | 'other process (polling)';
  pollIntervalMs?: number;
  /** ms from recordEvent returning to the first OCSP answer "revoked". */
  latencyMs: LatencySummary;
  /** recordEvent itself (the transaction), ms. */
  recordEventMs: LatencySummary;
  /** Events whose revocation was not seen within 10 s. */
  timedOut: number;
  meetsTarget: boolean;
}

export interface CounterCase {
  store: StoreName;
  totalMs: LatencySummary;
  /** Median ms of each step, per resident (both slots together). */
  stepsMedianMs: Record<string, number>;
  meetsTarget: boolean;
}

export interface ImportCase {
  store: StoreName;
  rows: number;
  imported: number;
  failed: number;
  residentsInDatabase: number;
  seconds: number;
  rowsPerSecond: number;
  /** Child process: RSS after loading the modules and opening the store, before the import. */
  rssBeforeMB: number;
  /** Child process: peak RSS (getrusage maxrss), which includes the loaded modules. */
  peakRssMB: number;
}

export interface RegisterResult {
  options: RegisterOptions;
  targets: Record<string, string>;
  propagation: PropagationCase[];
  counter: CounterCase[];
  import: { csvBytes: number; generateSeconds: number; cases: ImportCase[] };
  postgresSkipped?: string;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const EVENT_TIMEOUT_MS = 10_000;

export function summarise(xs: readonly number[]): LatencySummary {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : Number.NaN);
  return {
    n: s.length,
    p50: round(median(s), 2),
    p90: round(q(0.9), 2),
    p99: round(q(0.99), 2),
    max: round(s[s.length - 1] ?? Number.NaN, 2),
    min: round(s[0] ?? Number.NaN, 2),
    mean: round(s.reduce((a, b) => a + b, 0) / (s.length || 1), 2),
  };
}

// ---------------------------------------------------------------------------------------------
// Generated residents

const FAMILIES = [
  '山田',
  '佐藤',
  '鈴木',
  '高橋',
  '田中',
  '伊藤',
  '渡辺',
  '中村',
  '小林',
  '加藤',
  '吉田',
  '山本',
];
const FAMILIES_KANA = [
  'ヤマダ',
  'サトウ',
  'スズキ',
  'タカハシ',
  'タナカ',
  'イトウ',
  'ワタナベ',
  'ナカムラ',
  'コバヤシ',
  'カトウ',
  'ヨシダ',
  'ヤマモト',
];
const GIVEN = ['太郎', '花子', '一郎', '美咲', '健太', '陽菜', '翔太', '結衣', '大輔', 'さくら'];
const GIVEN_KANA = [
  'タロウ',
  'ハナコ',
  'イチロウ',
  'ミサキ',
  'ケンタ',
  'ヒナ',
  'ショウタ',
  'ユイ',
  'ダイスケ',
  'サクラ',
];
/** Real local government codes (5 digits; the check digit is computed) and their place names. */
const CITIES: [string, string][] = (
  [
    ['13101', '東京都千代田区'],
    ['13104', '東京都新宿区'],
    ['13113', '東京都渋谷区'],
    ['27100', '大阪府大阪市'],
    ['01100', '北海道札幌市'],
    ['23100', '愛知県名古屋市'],
    ['40130', '福岡県福岡市'],
    ['26100', '京都府京都市'],
    ['14100', '神奈川県横浜市'],
    ['04100', '宮城県仙台市'],
  ] as const
).map(([five, place]) => [`${five}${municipalityCheckDigit(five)}`, place]);

export const CSV_HEADER =
  'resident_id,municipality_code,name,name_kana,date_of_birth,sex,address,effective_date';

/** One CSV row of valid facts for resident number `i` (ids are `prefix` followed by 10 digits). */
export function csvRow(prefix: string, i: number): string {
  const [code, place] = CITIES[i % CITIES.length]!;
  const f = (i * 7) % FAMILIES.length;
  const g = (i * 13) % GIVEN.length;
  const year = 1930 + (i % 80);
  const dob = `${year}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`;
  const address = `${place}${['本町', '中央', '栄町', '緑町'][i % 4]}${1 + (i % 9)}丁目${1 + (i % 30)}番${1 + (i % 20)}号`;
  return `${prefix}${String(i).padStart(10, '0')},${code},${FAMILIES[f]}\u3000${GIVEN[g]},${FAMILIES_KANA[f]}\u3000${GIVEN_KANA[g]},${dob},${'MFU'[i % 3]},${address},2020-01-01\r\n`;
}

const residentId = (prefix: string, i: number) => `${prefix}${String(i).padStart(10, '0')}`;

function* csvChunks(prefix: string, from: number, to: number): Generator<string> {
  let chunk = `${CSV_HEADER}\r\n`;
  for (let i = from; i < to; i++) {
    chunk += csvRow(prefix, i);
    if (chunk.length > 64 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

async function registerResidents(store: Store, prefix: string, from: number, to: number): Promise<string[]> {
  const r = await importResidents(store, csvChunks(prefix, from, to));
  if (r.failed > 0) throw new Error(`generated residents refused: ${JSON.stringify(r.errors.slice(0, 3))}`);
  const ids: string[] = [];
  for (let i = from; i < to; i++) ids.push(residentId(prefix, i));
  return ids;
}

// ---------------------------------------------------------------------------------------------
// OCSP requests and answers

const SHA1_ALG = sequence(oid('1.3.14.3.2.26'), NULL);

/** An OCSPRequest (RFC 6960, no nonce, one CertID with SHA-1 hashes) for a certificate. */
export function ocspRequestFor(issuerCertDer: Buffer, certDer: Buffer): Buffer {
  const h = issuerHashes(issuerCertDer).sha1;
  const certId = sequence(
    SHA1_ALG,
    octetString(h.name),
    octetString(h.key),
    tlv(0x02, certificateParts(certDer).serial),
  );
  return sequence(sequence(sequence(sequence(certId))));
}

/** The status of the single response in an OCSP response. */
export function ocspStatus(der: Buffer): 'good' | 'revoked' | 'unknown' {
  const resp = AsnConvert.parse(der, OCSPResponse);
  if (!resp.responseBytes) throw new Error(`OCSP response status ${resp.responseStatus}`);
  const basic = AsnConvert.parse(resp.responseBytes.response.buffer, BasicOCSPResponse);
  const s = basic.tbsResponseData.responses[0]!.certStatus;
  if (s.revoked) return 'revoked';
  return s.unknown !== undefined ? 'unknown' : 'good';
}

interface Target {
  residentId: string;
  serial: string;
  request: Buffer;
}

/** Issues a signature certificate to each resident and builds its OCSP request. */
async function issueTargets(authority: Authority, ids: string[]): Promise<Target[]> {
  const csrs = makeCsrs(100);
  const issuer = authority.certificate('sign');
  const out: Target[] = [];
  for (let i = 0; i < ids.length; i++) {
    const c = await issueForResident(authority, authority.store, {
      residentId: ids[i]!,
      kind: 'sign',
      csr: csrs[i % csrs.length]!,
      counterId: 'BENCH',
    });
    out.push({ residentId: ids[i]!, serial: c.serial, request: ocspRequestFor(issuer, c.der) });
  }
  // Every request must answer "good" before its event.
  for (const t of out)
    if (ocspStatus((await authority.ocsp(t.request)).der) !== 'good')
      throw new Error(`certificate ${t.serial} is not good before its event`);
  return out;
}

let eventNo = 0;
/** A move within the municipality: changes the address, so the signature certificate is revoked. */
function moveEvent(id: string) {
  eventNo++;
  return {
    sourceEventId: `bench-move-${randomBytes(4).toString('hex')}-${eventNo}`,
    residentId: id,
    type: 'moved-within' as const,
    effectiveDate: '2024-04-01',
    facts: { address: `東京都千代田区永田町${1 + (eventNo % 9)}丁目${1 + (eventNo % 20)}番1号` },
  };
}

/** Records the move of `t` and polls OCSP until it answers revoked; ms from recordEvent returning. */
async function propagateOne(
  authority: Authority,
  t: Target,
  pollMs: number,
): Promise<{ latency: number; record: number } | undefined> {
  const r0 = performance.now();
  const r = await recordEvent(authority.store, moveEvent(t.residentId));
  const t0 = performance.now();
  if (r.outbox !== 'revoke-sign') throw new Error(`unexpected outbox action ${r.outbox}`);
  for (;;) {
    const answer = await authority.ocsp(t.request);
    const now = performance.now();
    if (ocspStatus(answer.der) === 'revoked') return { latency: now - t0, record: t0 - r0 };
    if (now - t0 > EVENT_TIMEOUT_MS) return undefined;
    await sleep(pollMs);
  }
}

async function propagationInProcess(
  store: StoreName,
  authority: Authority,
  targets: Target[],
  o: RegisterOptions,
): Promise<PropagationCase> {
  const processor = new OutboxProcessor(authority, { pollIntervalMs: o.crossProcessPollMs });
  processor.start();
  const latencies: number[] = [];
  const records: number[] = [];
  let timedOut = 0;
  try {
    for (const t of targets) {
      const m = await propagateOne(authority, t, o.ocspPollMs);
      if (!m) timedOut++;
      else {
        latencies.push(m.latency);
        records.push(m.record);
      }
    }
  } finally {
    await processor.stop();
  }
  const latencyMs = summarise(latencies);
  log(
    `register propagation ${store} in-process: p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, max ${latencyMs.max} ms (${processor.stats.failed} failed rows)`,
  );
  return {
    store,
    processor: 'in-process (woken by outboxSignal)',
    latencyMs,
    recordEventMs: summarise(records),
    timedOut,
    meetsTarget: timedOut === 0 && latencyMs.p99 < PROPAGATION_TARGET_P99_MS,
  };
}

function spawnSelf(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', import.meta.resolve('tsx'), THIS_FILE, ...args], {
    env: { ...process.env, ...ENV },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

async function propagationCrossProcess(
  store: StoreName,
  authority: Authority,
  dataDir: string,
  databaseUrl: string | undefined,
  targets: Target[],
  o: RegisterOptions,
): Promise<PropagationCase> {
  const child = spawnSelf(['outbox-child', dataDir, String(o.crossProcessPollMs), databaseUrl ?? '']);
  const latencies: number[] = [];
  const records: number[] = [];
  let timedOut = 0;
  try {
    await firstJsonLine<{ ready: true }>(child, 30_000);
    const pending: Promise<void>[] = [];
    for (const t of targets) {
      pending.push(
        propagateOne(authority, t, o.ocspPollMs).then((m) => {
          if (!m) timedOut++;
          else {
            latencies.push(m.latency);
            records.push(m.record);
          }
        }),
      );
      // Random gaps, so that the events fall at every phase of the child's poll timer.
      await sleep(10 + Math.random() * 40);
    }
    await Promise.all(pending);
  } finally {
    child.stdin?.end();
    const exited = waitExit(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  const latencyMs = summarise(latencies);
  log(
    `register propagation ${store} other process (poll ${o.crossProcessPollMs} ms): p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms, max ${latencyMs.max} ms`,
  );
  return {
    store,
    processor: 'other process (polling)',
    pollIntervalMs: o.crossProcessPollMs,
    latencyMs,
    recordEventMs: summarise(records),
    timedOut,
    meetsTarget: timedOut === 0 && latencyMs.p99 < PROPAGATION_TARGET_P99_MS,
  };
}

// ---------------------------------------------------------------------------------------------
// Counter issuance end to end

const SIGN_PIN = 'ABC123';
const AUTH_PIN = '1234';

async function counterIssuance(
  store: StoreName,
  authority: Authority,
  ids: string[],
  cardDir: string,
  warmUp: number,
): Promise<CounterCase> {
  // Blank cards, made before the resident comes to the counter (not timed).
  const cards: SoftwareCard[] = [];
  for (const id of ids)
    cards.push(
      await SoftwareCard.create(join(cardDir, `${store}-${id}.json`), {
        signPin: SIGN_PIN,
        authPin: AUTH_PIN,
        unblock: 'counter-unblock-secret',
      }),
    );
  const totals: number[] = [];
  const steps: Record<string, number[]> = {
    'generate 2 RSA-2048 keys on the card': [],
    'make 2 PKCS#10 requests on the card': [],
    'issueForResident x 2': [],
    'write 2 certificates to the card': [],
    appendAudit: [],
  };
  const [keys, csrs, issue, write, audit] = Object.values(steps) as [
    number[],
    number[],
    number[],
    number[],
    number[],
  ];
  for (let i = 0; i < ids.length; i++) {
    const residentId = ids[i]!;
    const card = cards[i]!;
    const t0 = performance.now();
    await card.generateKey('sign', 'rsa-2048', SIGN_PIN);
    await card.generateKey('auth', 'rsa-2048', AUTH_PIN);
    const t1 = performance.now();
    const csrSign = await card.createCsr('sign', SIGN_PIN);
    const csrAuth = await card.createCsr('auth', AUTH_PIN);
    const t2 = performance.now();
    const sign = await issueForResident(authority, authority.store, {
      residentId,
      kind: 'sign',
      csr: csrSign,
      counterId: 'C001',
    });
    const auth = await issueForResident(authority, authority.store, {
      residentId,
      kind: 'auth',
      csr: csrAuth,
      counterId: 'C001',
    });
    const t3 = performance.now();
    await card.writeCertificate('sign', sign.der);
    await card.writeCertificate('auth', auth.der);
    const t4 = performance.now();
    await appendAudit(authority.store.db, {
      actor: 'staff:1',
      action: 'certificate.issue',
      subject: `resident:${residentId}`,
      municipalityCode: CITIES[0]![0],
      details: { card: card.id, signSerial: sign.serial, authSerial: auth.serial, counter: 'C001' },
    });
    const t5 = performance.now();
    if (i < warmUp) continue;
    totals.push(t5 - t0);
    keys.push(t1 - t0);
    csrs.push(t2 - t1);
    issue.push(t3 - t2);
    write.push(t4 - t3);
    audit.push(t5 - t4);
  }
  for (const c of cards) await c.close();
  const totalMs = summarise(totals);
  log(`register counter ${store}: p50 ${totalMs.p50} ms, p99 ${totalMs.p99} ms per resident`);
  return {
    store,
    totalMs,
    stepsMedianMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, round(median(v), 2)])),
    meetsTarget: totalMs.p99 < COUNTER_TARGET_P99_MS,
  };
}

// ---------------------------------------------------------------------------------------------
// Bulk import

async function writeCsv(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  for (const chunk of csvChunks('5', 0, rows)) if (!out.write(chunk)) await once(out, 'drain');
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

function once(emitter: NodeJS.EventEmitter, event: string): Promise<void> {
  return new Promise((r) => emitter.once(event, () => r()));
}

async function importCase(store: StoreName, csv: string, target: string): Promise<ImportCase> {
  const child = spawnSelf(['import-child', csv, target]);
  child.stdin?.end();
  const r = await firstJsonLine<Omit<ImportCase, 'store'>>(child, 30 * 60_000);
  await waitExit(child);
  log(
    `register import ${store}: ${r.rows} rows in ${r.seconds} s, ${r.rowsPerSecond} rows/s, peak RSS ${r.peakRssMB} MB`,
  );
  return { store, ...r };
}

// ---------------------------------------------------------------------------------------------
// The benchmark

export async function benchRegister(o: RegisterOptions = REGISTER_DEFAULTS): Promise<RegisterResult> {
  log(
    `register: propagation over ${o.events} events per variant, counter issuance for ${o.counterResidents} residents, import of ${o.importRows.toLocaleString('en-US')} rows`,
  );
  const ca = await createAuthority('jpki-bench-register-');
  const work = mkdtempSync(join(tmpdir(), 'jpki-bench-register-work-'));
  const databases: BenchDatabase[] = [];
  let postgresSkipped: string | undefined;
  const propagation: PropagationCase[] = [];
  const counter: CounterCase[] = [];
  const importCases: ImportCase[] = [];
  let csvBytes = 0;
  let generateSeconds = 0;
  try {
    const stores: { store: StoreName; url?: string }[] = [{ store: 'sqlite' }];
    if (await postgresAvailable()) {
      const db = await createPostgresDatabase();
      databases.push(db);
      stores.push({ store: 'postgres', url: db.url });
    } else {
      postgresSkipped = 'PostgreSQL not reachable';
      log(`register: ${postgresSkipped}; SQLite only`);
    }

    for (const { store, url } of stores) {
      const authority = await Authority.open(ca.dir, { env: ENV, databaseUrl: url });
      try {
        const t0 = performance.now();
        const ids = await registerResidents(authority.store, '2', 0, 2 * o.events);
        const inProc = await issueTargets(authority, ids.slice(0, o.events));
        const crossProc = await issueTargets(authority, ids.slice(o.events));
        log(
          `register ${store}: ${2 * o.events} residents registered and issued a signature certificate in ${round((performance.now() - t0) / 1000, 1)} s`,
        );
        // Warm-up of recordEvent, the processor and OCSP on a few residents of their own.
        const warm = await issueTargets(authority, await registerResidents(authority.store, '3', 0, 20));
        await propagationInProcess(store, authority, warm, o);
        propagation.push(await propagationInProcess(store, authority, inProc, o));
        propagation.push(await propagationCrossProcess(store, authority, ca.dir, url, crossProc, o));

        const warmUp = 3;
        const counterIds = await registerResidents(authority.store, '4', 0, o.counterResidents + warmUp);
        counter.push(await counterIssuance(store, authority, counterIds, work, warmUp));
      } finally {
        await authority.close();
      }
    }

    const csv = join(work, 'residents.csv');
    const g0 = performance.now();
    await writeCsv(csv, o.importRows);
    generateSeconds = round((performance.now() - g0) / 1000, 1);
    csvBytes = statSync(csv).size;
    log(`register import: generated ${csv} (${round(csvBytes / MB)} MB) in ${generateSeconds} s`);
    importCases.push(await importCase('sqlite', csv, join(work, 'import.sqlite')));
    if (!postgresSkipped) {
      const db = await createPostgresDatabase();
      databases.push(db);
      importCases.push(await importCase('postgres', csv, db.url));
    }
  } finally {
    for (const db of databases) await db.drop().catch((e) => log(`could not drop ${db.name}: ${e}`));
    rmSync(work, { recursive: true, force: true });
    ca.cleanup();
  }

  printTable(
    `Revocation propagation: recordEvent returned -> Authority.ocsp answers "revoked" (OCSP polled every ${o.ocspPollMs} ms; ms)`,
    [
      'store',
      'processor',
      'events',
      'p50',
      'p90',
      'p99',
      'max',
      'recordEvent p50',
      `p99 < ${PROPAGATION_TARGET_P99_MS} ms`,
    ],
    propagation.map((c) => [
      c.store,
      c.processor + (c.pollIntervalMs ? `, ${c.pollIntervalMs} ms` : ''),
      c.latencyMs.n,
      c.latencyMs.p50,
      c.latencyMs.p90,
      c.latencyMs.p99,
      c.latencyMs.max,
      c.recordEventMs.p50,
      c.meetsTarget ? 'met' : 'NOT met',
    ]),
  );
  const stepNames = Object.keys(counter[0]?.stepsMedianMs ?? {});
  printTable(
    `Counter issuance end to end (2 RSA-2048 card keys, 2 CSRs, 2 certificates, card writes, audit; ms per resident)`,
    ['store', 'residents', 'p50', 'p90', 'p99', 'max', `p99 < ${COUNTER_TARGET_P99_MS} ms`],
    counter.map((c) => [
      c.store,
      c.totalMs.n,
      c.totalMs.p50,
      c.totalMs.p90,
      c.totalMs.p99,
      c.totalMs.max,
      c.meetsTarget ? 'met' : 'NOT met',
    ]),
  );
  printTable(
    'Counter issuance: median ms of each step per resident',
    ['step', ...counter.map((c) => c.store)],
    stepNames.map((s) => [s, ...counter.map((c) => c.stepsMedianMs[s]!)]),
  );
  printTable(
    `Bulk import (importResidents, ${o.importRows.toLocaleString('en-US')}-row CSV of ${round(csvBytes / MB)} MB, child process)`,
    ['store', 'rows', 'imported', 'failed', 'seconds', 'rows/s', 'RSS before MB', 'peak RSS MB'],
    importCases.map((c) => [
      c.store,
      c.rows,
      c.imported,
      c.failed,
      c.seconds,
      c.rowsPerSecond,
      c.rssBeforeMB,
      c.peakRssMB,
    ]),
  );
  return {
    options: o,
    targets: {
      propagation: `p99 of recordEvent returned -> OCSP "revoked" < ${PROPAGATION_TARGET_P99_MS} ms`,
      counter: `p99 of a whole counter issuance (2 RSA-2048 keys) < ${COUNTER_TARGET_P99_MS} ms`,
    },
    propagation,
    counter,
    import: { csvBytes, generateSeconds, cases: importCases },
    ...(postgresSkipped ? { postgresSkipped } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Runs an OutboxProcessor that only polls, until stdin ends. Prints {"ready":true}, then its stats. */
async function outboxChild(dir: string, pollMs: number, databaseUrl: string | undefined): Promise<void> {
  const authority = await Authority.open(dir, { env: ENV, databaseUrl });
  const processor = new OutboxProcessor(authority, { pollIntervalMs: pollMs, id: 'bench-child' });
  processor.start();
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const lines = createInterface({ input: process.stdin });
  for await (const _ of lines) {
    // nothing is sent; the parent ends stdin
  }
  await processor.stop();
  await authority.close();
  process.stderr.write(`[bench] register outbox child: ${JSON.stringify(processor.stats)}\n`);
}

/** Imports the CSV into a fresh store and prints the figures as one JSON line. */
async function importChild(csv: string, target: string): Promise<void> {
  const store = await openDatabase(
    target.startsWith('postgres') ? { databaseUrl: target } : { sqlitePath: target },
  );
  try {
    const rssBefore = process.memoryUsage().rss;
    const r = await importResidents(store, createReadStream(csv), { maxErrors: 100 });
    const peak = process.resourceUsage().maxRSS * 1024;
    const n = await sql<{ n: number | string }>`select count(*) as n from residents`.execute(store.db);
    process.stdout.write(
      `${JSON.stringify({
        rows: r.rows,
        imported: r.imported,
        failed: r.failed,
        residentsInDatabase: Number(n.rows[0]?.n ?? 0),
        seconds: round(r.elapsedMs / 1000, 1),
        rowsPerSecond: r.rowsPerSecond,
        rssBeforeMB: round(rssBefore / MB),
        peakRssMB: round(peak / MB),
        ...(r.errors.length ? { firstErrors: r.errors.slice(0, 3) } : {}),
      })}\n`,
    );
  } finally {
    await store.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === THIS_FILE) {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'outbox-child') await outboxChild(rest[0]!, Number(rest[1]), rest[2] || undefined);
  else if (command === 'import-child') await importChild(rest[0]!, rest[1]!);
  else {
    process.stderr.write('usage: register.ts outbox-child|import-child …\n');
    process.exitCode = 2;
  }
}
