// CRL of 1,000,000 entries: a store is filled with a million revoked certificates of the sign CA
// (bulk inserts, not timed), then a fresh child process times authority.generateCrl('sign') end to
// end (stream from the store, encode, sign, store) and reports its memory: the kernel's maxRSS and
// process.memoryUsage().rss sampled every 20 ms, and how long the event loop was blocked at a stretch.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Authority, certificateParts } from '../src/authority/authority.ts';
import { dataPaths } from '../src/authority/config.ts';
import { buildCrl, releaseCrl } from '../src/core/crl.ts';
import { crlPartitionOf } from '../src/core/crl-partition.ts';
import { integerContent, readChildren, readTlv } from '../src/core/der.ts';
import { newSerial } from '../src/core/serial.ts';
import { keyIdentifier } from '../src/core/spki.ts';
import { SoftwareSigner } from '../src/keys/software.ts';
import { insertCrl, streamRevocationPages } from '../src/store/certificates.ts';
import {
  type BenchDatabase,
  createAuthority,
  createPostgresDatabase,
  decryptKey,
  ENV,
  firstJsonLine,
  log,
  MB,
  median,
  postgresAvailable,
  printTable,
  readCertDer,
  round,
  spawnBenchChild,
  waitExit,
} from './util.ts';

export interface CrlOptions {
  entries: number;
  /** Child-process runs per store; medians are reported. */
  runs: number;
  postgres: boolean;
}

export const CRL_DEFAULTS: CrlOptions = { entries: 1_000_000, runs: 3, postgres: true };
/** Memory in MB of 10^6 bytes. */
export const CRL_TARGET = { seconds: 3, peakRssMB: 300 };

/** What one crl-child run reports. */
export interface CrlChildReport {
  seconds: number;
  entries: number;
  crlNumber: number;
  /** RSS after the authority is open, before generation starts. */
  baselineRssMB: number;
  /** Highest process.memoryUsage().rss seen by the 20 ms sampler (and at the end). */
  sampledPeakRssMB: number;
  /** process.resourceUsage().maxRSS at the end: the kernel's high-water mark for the whole process. */
  maxRssMB: number;
  sampledPeakHeapUsedMB: number;
  sampledPeakExternalMB: number;
  samples: number;
  /**
   * Longest gap between two ticks of the 20 ms sampler (and to the end): how long the event loop was
   * blocked at a stretch. In `jpki serve` the HTTP server (OCSP) shares this event loop.
   */
  longestEventLoopStallMs: number;
}

/** What one crl-phases run reports: the parts of generateCrl timed alone, one after the other. */
export interface CrlPhases {
  /** Draining streamRevocationPages (what generateCrl reads through), no encoding; a second pass. */
  drainSeconds: number;
  /** Reading the pages again and encoding and signing the CRL (buildCrl), nothing stored. */
  buildSeconds: number;
  /** insertCrl of that CRL, freeing it once the store has its copy (as generateCrl does). */
  insertSeconds: number;
  /** process.resourceUsage().maxRSS after the build, and after the insert. */
  maxRssAfterBuildMB: number;
  maxRssAfterInsertMB: number;
  /** RSS after the authority is open, before anything else. */
  baselineRssMB: number;
  crlMB: number;
}

export interface CrlStoreResult {
  store: 'sqlite' | 'postgres';
  entries: number;
  fillSeconds: number;
  runs: CrlChildReport[];
  medianSeconds: number;
  medianMaxRssMB: number;
  medianSampledPeakRssMB: number;
  medianBaselineRssMB: number;
  medianLongestStallMs: number;
  crlBytes: number;
  /** medianMaxRssMB - medianBaselineRssMB: what generating the CRL adds to the process. */
  medianPeakAboveBaselineMB: number;
  phases: CrlPhases;
  verification: { command: string; ok: boolean; crlNumber?: string; output: string; countedEntries: number };
  meetsTarget: { time: boolean; memory: boolean };
}

export interface CrlResult {
  options: CrlOptions;
  target: string;
  stores: CrlStoreResult[];
  /** The CRL partition case (CRL_PARTITION_CASE). */
  partition?: CrlPartitionStoreResult[];
  postgresSkipped?: string;
}

const REASONS = [0, 1, 1, 3, 4, 4, 5, 9, 0, 4];
const DAY = 86_400_000;

function fillRows(i: number, now: number, serial: () => Buffer = newSerial) {
  return {
    serial: serial().toString('hex'),
    reason: REASONS[i % REASONS.length]!,
    revokedAt: Math.floor((now - 365 * DAY + (i % 365) * DAY + (i % 86_400) * 1000) / 1000) * 1000,
  };
}

/** Bulk-fills the SQLite store of `dir` with `n` revoked sign certificates. */
function fillSqlite(dir: string, n: number, serial?: () => Buffer): void {
  const db = new SQLite(dataPaths(dir).sqlite);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const now = Date.now();
  const notBefore = now - 30 * DAY;
  const notAfter = now + 2 * 365 * DAY;
  const der = randomBytes(64);
  const cert = db.prepare(
    `insert into certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, resident_ref, spki_sha256)
     values (?, 'sign', 'sign', 'C=JP,CN=bench', ?, ?, ?, ?, null, ?)`,
  );
  const rev = db.prepare(
    `insert into revocations (serial, ca, reason, revoked_at, recorded_at, not_after)
     values (?, 'sign', ?, ?, ?, ?)`,
  );
  const spkiHash = '0'.repeat(64);
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const r = fillRows(i, now, serial);
      cert.run(r.serial, notBefore, notAfter, notBefore, der, spkiHash);
      rev.run(r.serial, r.reason, r.revokedAt, r.revokedAt, notAfter);
    }
  });
  const step = 100_000;
  for (let i = 0; i < n; i += step) batch(i, Math.min(n, i + step));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('analyze');
  db.close();
}

/** Bulk-fills a PostgreSQL store with `n` revoked sign certificates (unnest of arrays, 50,000 per statement). */
async function fillPostgres(url: string, n: number, serial?: () => Buffer): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = Date.now();
    const notBefore = now - 30 * DAY;
    const notAfter = now + 2 * 365 * DAY;
    const der = randomBytes(64);
    const step = 50_000;
    for (let i = 0; i < n; i += step) {
      const serials: string[] = [];
      const reasons: number[] = [];
      const times: number[] = [];
      for (let j = i; j < Math.min(n, i + step); j++) {
        const r = fillRows(j, now, serial);
        serials.push(r.serial);
        reasons.push(r.reason);
        times.push(r.revokedAt);
      }
      await client.query('begin');
      await client.query(
        `insert into certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, spki_sha256)
         select s, 'sign', 'sign', 'C=JP,CN=bench', $2, $3, $2, $4, repeat('0', 64) from unnest($1::text[]) as s`,
        [serials, notBefore, notAfter, der],
      );
      await client.query(
        `insert into revocations (serial, ca, reason, revoked_at, recorded_at, not_after)
         select s, 'sign', r, t, t, $4 from unnest($1::text[], $2::int[], $3::bigint[]) with ordinality as u(s, r, t, o)
         order by o`,
        [serials, reasons, times, notAfter],
      );
      await client.query('commit');
    }
    await client.query('vacuum analyze certificates');
    await client.query('vacuum analyze revocations');
  } finally {
    await client.end();
  }
}

async function runChild<T>(args: string[], execArgv: string[] = []): Promise<T> {
  const child = spawnBenchChild(args, { execArgv });
  try {
    return await firstJsonLine<T>(child, 300_000);
  } finally {
    await waitExit(child);
  }
}

/** Writes the latest sign CRL to a file and checks it with openssl (number, signature against sign + root). */
async function verifyWithOpenssl(
  dir: string,
  databaseUrl: string | undefined,
  chainPem: string,
): Promise<{ bytes: number; verification: CrlStoreResult['verification'] }> {
  const authority = await Authority.open(dir, { env: ENV, databaseUrl });
  let der: Buffer;
  try {
    const crl = await authority.currentCrl('sign', 'full');
    if (!crl) throw new Error('no CRL was stored');
    der = crl.der;
  } finally {
    await authority.close();
  }
  const file = join(dir, `bench-sign-${databaseUrl ? 'pg' : 'sqlite'}.crl`);
  writeFileSync(file, der);
  const args = ['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber', '-CAfile', chainPem];
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout}${r.stderr}`.trim();
  const crlNumber = /crlNumber=(\S+)/.exec(output)?.[1];
  // Count the revokedCertificates entries with the DER reader (no schema objects).
  const tbs = readChildren(der, readTlv(der, 0))[0]!;
  const revoked = readChildren(der, tbs).find(
    (t) => t.tag === 0x30 && readTlv(der, t.contentStart).tag === 0x30,
  );
  let counted = 0;
  if (revoked) for (let p = revoked.contentStart; p < revoked.end; p = readTlv(der, p).end) counted++;
  return {
    bytes: der.length,
    verification: {
      command: `openssl ${args.join(' ').replace(dir, '<dataDir>').replace(chainPem, '<sign.pem+root.pem>')}`,
      ok: r.status === 0 && /verify OK/.test(output) && crlNumber !== undefined,
      ...(crlNumber ? { crlNumber } : {}),
      output,
      countedEntries: counted,
    },
  };
}

/** The CRL partition case: one partition of `entries` revocations among as many in other partitions. */
export const CRL_PARTITION_CASE = {
  partitions: 64,
  partition: 17,
  entries: 100_000,
  others: 100_000,
  runs: 3,
};
export const CRL_PARTITION_TARGET_SECONDS = 0.5;

export interface CrlPartitionStoreResult {
  store: 'sqlite' | 'postgres';
  partitions: number;
  partition: number;
  entries: number;
  /** Revocations of the same CA in the other partitions (the range scan must not read them). */
  otherRevocations: number;
  /** generateCrl('sign', { partition }) end to end (read the range, encode, sign, store), each run. */
  runsSeconds: number[];
  medianSeconds: number;
  crlBytes: number;
  opensslIdp: boolean;
  meetsTarget: boolean;
}

/** A serial of partition `p` of `count` (its leading magnitude bits fixed, the rest random). */
function serialIn(p: number, count: number): () => Buffer {
  const width = 65536 / count;
  return () => {
    const b = randomBytes(16);
    const m = p * width + (b.readUInt16BE(0) % width);
    b.writeUInt16BE(m, 0);
    return integerContent(b);
  };
}

/** A serial of any partition but `p`. */
function serialNotIn(p: number, count: number): () => Buffer {
  return () => {
    for (;;) {
      const s = newSerial();
      if (crlPartitionOf(s, count) !== p) return s;
    }
  };
}

/**
 * "A partition of 100,000 entries: build and sign" (issue 5): the CRL of one partition, with
 * 100,000 revoked certificates in it and as many in the CA's other partitions, built by
 * generateCrl('sign', { partition }) as `jpki serve` does, on each store.
 */
export async function benchCrlPartition(
  o: { postgres: boolean } = { postgres: true },
  c = CRL_PARTITION_CASE,
): Promise<CrlPartitionStoreResult[]> {
  log(
    `crl partition: ${c.entries.toLocaleString('en-US')} entries in partition ${c.partition} of ${c.partitions}`,
  );
  const ca = await createAuthority('jpki-bench-crl-partition-');
  let pgDb: BenchDatabase | undefined;
  const out: CrlPartitionStoreResult[] = [];
  try {
    const targets: { store: 'sqlite' | 'postgres'; url?: string }[] = [{ store: 'sqlite' }];
    if (o.postgres && (await postgresAvailable())) {
      pgDb = await createPostgresDatabase();
      targets.push({ store: 'postgres', url: pgDb.url });
    }
    for (const t of targets) {
      const authority = await Authority.open(ca.dir, { env: ENV, databaseUrl: t.url });
      try {
        if (authority.crlPartitions !== c.partitions)
          throw new Error(
            `the bench authority has ${authority.crlPartitions} partitions, not ${c.partitions}`,
          );
        const inside = serialIn(c.partition, c.partitions);
        const outside = serialNotIn(c.partition, c.partitions);
        if (t.url) {
          await fillPostgres(t.url, c.entries, inside);
          await fillPostgres(t.url, c.others, outside);
        } else {
          fillSqlite(ca.dir, c.entries, inside);
          fillSqlite(ca.dir, c.others, outside);
        }
        const runsSeconds: number[] = [];
        let entries = 0;
        for (let i = 0; i < c.runs; i++) {
          const t0 = performance.now();
          const r = await authority.generateCrl('sign', { partition: c.partition });
          runsSeconds.push(round((performance.now() - t0) / 1000, 3));
          entries = r.entries;
        }
        const der = (await authority.currentCrl('sign', 'full', c.partition))!.der;
        const file = join(ca.dir, `bench-partition-${t.store}.crl`);
        writeFileSync(file, der);
        const text = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', file, '-noout', '-text'], {
          encoding: 'utf8',
          maxBuffer: 256 << 20,
        }).stdout;
        const medianSeconds = round(median(runsSeconds), 3);
        out.push({
          store: t.store,
          partitions: c.partitions,
          partition: c.partition,
          entries,
          otherRevocations: c.others,
          runsSeconds,
          medianSeconds,
          crlBytes: der.length,
          opensslIdp:
            /Issuing Distribution Point: critical/.test(text) &&
            text.includes(`/crl/sign-p${c.partition}.crl`),
          meetsTarget: medianSeconds < CRL_PARTITION_TARGET_SECONDS && entries === c.entries,
        });
        log(`crl partition ${t.store}: ${entries} entries in ${runsSeconds.join(', ')} s`);
      } finally {
        await authority.close();
      }
    }
    printTable(
      `CRL partition: generateCrl('sign', { partition: ${c.partition} }) of ${c.partitions}, median of ${c.runs} runs`,
      [
        'store',
        'entries',
        'other revocations',
        'seconds (runs)',
        'median s',
        'CRL bytes',
        'openssl sees IDP',
        `target < ${CRL_PARTITION_TARGET_SECONDS} s`,
      ],
      out.map((r) => [
        r.store,
        r.entries,
        r.otherRevocations,
        r.runsSeconds.join(' / '),
        r.medianSeconds,
        r.crlBytes,
        r.opensslIdp ? 'yes' : 'NO',
        r.meetsTarget ? 'met' : 'NOT met',
      ]),
    );
    return out;
  } finally {
    await pgDb?.drop().catch((e) => log(`could not drop ${pgDb?.name}: ${e}`));
    ca.cleanup();
  }
}

export async function benchCrl(o: CrlOptions = CRL_DEFAULTS): Promise<CrlResult> {
  const partition = await benchCrlPartition(o);
  log(`crl: ${o.entries.toLocaleString('en-US')} revoked certificates, ${o.runs} child runs per store`);
  const ca = await createAuthority('jpki-bench-crl-');
  let pgDb: BenchDatabase | undefined;
  const stores: CrlStoreResult[] = [];
  let postgresSkipped: string | undefined;
  try {
    const chainPem = join(ca.dir, 'bench-chain.pem');
    writeFileSync(chainPem, [ca.certPath('sign'), ca.certPath('root')].map((p) => readCertPem(p)).join(''));
    // Touch the expected certificates (fails early if the layout changed).
    readCertDer(ca.certPath('sign'));

    const targets: { store: 'sqlite' | 'postgres'; url?: string }[] = [{ store: 'sqlite' }];
    if (o.postgres) {
      if (await postgresAvailable()) {
        pgDb = await createPostgresDatabase();
        targets.push({ store: 'postgres', url: pgDb.url });
      } else {
        postgresSkipped = 'PostgreSQL not reachable';
        log(`crl: ${postgresSkipped}`);
      }
    }
    for (const t of targets) {
      // Open once so that the migrations create the schema.
      await (await Authority.open(ca.dir, { env: ENV, databaseUrl: t.url })).close();
      const f0 = performance.now();
      if (t.url) await fillPostgres(t.url, o.entries);
      else fillSqlite(ca.dir, o.entries);
      const fillSeconds = round((performance.now() - f0) / 1000, 1);
      log(`crl: ${t.store} filled in ${fillSeconds} s`);
      const runs: CrlChildReport[] = [];
      for (let i = 0; i < o.runs; i++) {
        const r = await runChild<CrlChildReport>(['crl-child', ca.dir, ...(t.url ? [t.url] : [])]);
        runs.push(r);
        log(
          `crl ${t.store} run ${i + 1}/${o.runs}: ${r.seconds} s, ${r.entries} entries, maxRSS ${r.maxRssMB} MB (baseline ${r.baselineRssMB} MB), event loop blocked up to ${r.longestEventLoopStallMs} ms`,
        );
      }
      const { bytes, verification } = await verifyWithOpenssl(ca.dir, t.url, chainPem);
      const phases = await runChild<CrlPhases>(['crl-phases', ca.dir, ...(t.url ? [t.url] : [])]);
      log(
        `crl ${t.store} parts: drain ${phases.drainSeconds} s, build (drain + encode + sign) ${phases.buildSeconds} s, insertCrl ${phases.insertSeconds} s; maxRSS ${phases.maxRssAfterBuildMB} MB after the build, ${phases.maxRssAfterInsertMB} MB after the insert (baseline ${phases.baselineRssMB} MB)`,
      );
      log(`crl ${t.store}: openssl says ${verification.output.replace(/\s+/g, ' ')}`);
      const medianSeconds = round(median(runs.map((r) => r.seconds)), 2);
      const medianMaxRssMB = round(median(runs.map((r) => r.maxRssMB)), 1);
      stores.push({
        store: t.store,
        entries: runs[0]!.entries,
        fillSeconds,
        runs,
        medianSeconds,
        medianMaxRssMB,
        medianSampledPeakRssMB: round(median(runs.map((r) => r.sampledPeakRssMB)), 1),
        medianBaselineRssMB: round(median(runs.map((r) => r.baselineRssMB)), 1),
        medianPeakAboveBaselineMB: round(median(runs.map((r) => r.maxRssMB - r.baselineRssMB)), 1),
        medianLongestStallMs: median(runs.map((r) => r.longestEventLoopStallMs)),
        crlBytes: bytes,
        phases,
        verification,
        meetsTarget: {
          time: medianSeconds < CRL_TARGET.seconds,
          memory: medianMaxRssMB < CRL_TARGET.peakRssMB,
        },
      });
    }
    printTable(
      `CRL of ${o.entries.toLocaleString('en-US')} entries: generateCrl('sign') in a fresh process (median of ${o.runs} runs)`,
      [
        'store',
        'entries',
        'seconds',
        'peak RSS MB (maxRSS)',
        'sampled peak MB',
        'baseline MB',
        'peak - baseline MB',
        'longest event-loop stall ms',
        'CRL bytes',
        'openssl verify',
        `target < ${CRL_TARGET.seconds} s`,
        `target < ${CRL_TARGET.peakRssMB} MB`,
      ],
      stores.map((s) => [
        s.store,
        s.entries,
        s.medianSeconds,
        s.medianMaxRssMB,
        s.medianSampledPeakRssMB,
        s.medianBaselineRssMB,
        s.medianPeakAboveBaselineMB,
        s.medianLongestStallMs,
        s.crlBytes,
        s.verification.ok ? `OK (crlNumber=${s.verification.crlNumber})` : 'FAILED',
        s.meetsTarget.time ? 'met' : 'NOT met',
        s.meetsTarget.memory ? 'met' : 'NOT met',
      ]),
    );
    printTable(
      "CRL: the parts of generateCrl('sign'), one after the other in another fresh process",
      [
        'store',
        'generateCrl s',
        'drain pages s',
        'encode + sign s (build - drain)',
        'insertCrl s',
        'maxRSS after build MB',
        'maxRSS after insert MB',
      ],
      stores.map((s) => [
        s.store,
        s.medianSeconds,
        s.phases.drainSeconds,
        round(s.phases.buildSeconds - s.phases.drainSeconds, 2),
        s.phases.insertSeconds,
        s.phases.maxRssAfterBuildMB,
        s.phases.maxRssAfterInsertMB,
      ]),
    );
    return {
      options: o,
      target: `generateCrl of ${o.entries} entries < ${CRL_TARGET.seconds} s and peak RSS < ${CRL_TARGET.peakRssMB} MB`,
      stores,
      partition,
      ...(postgresSkipped ? { postgresSkipped } : {}),
    };
  } finally {
    await pgDb?.drop().catch((e) => log(`could not drop ${pgDb?.name}: ${e}`));
    ca.cleanup();
  }
}

function readCertPem(path: string): string {
  const der = readCertDer(path);
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

/** The child: `node bin/bench.js crl-child <dataDir> [databaseUrl]`. Prints one JSON line. */
export async function crlChild(dir: string, databaseUrl?: string): Promise<void> {
  let peakRss = 0;
  let peakHeap = 0;
  let peakExternal = 0;
  let samples = 0;
  let lastTick = 0;
  let longestGap = 0;
  const sample = () => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - lastTick);
    lastTick = now;
    const m = process.memoryUsage();
    samples++;
    if (m.rss > peakRss) peakRss = m.rss;
    if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
    if (m.external + m.arrayBuffers > peakExternal) peakExternal = m.external + m.arrayBuffers;
  };
  const authority = await Authority.open(dir, { env: ENV, databaseUrl });
  const baseline = process.memoryUsage.rss();
  const timer = setInterval(sample, 20);
  const t0 = performance.now();
  lastTick = t0;
  const r = await authority.generateCrl('sign');
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  sample();
  const maxRss = process.resourceUsage().maxRSS * 1024;
  await authority.close();
  const report: CrlChildReport = {
    seconds: round(seconds, 3),
    entries: r.entries,
    crlNumber: r.number,
    baselineRssMB: round(baseline / MB, 1),
    sampledPeakRssMB: round(peakRss / MB, 1),
    maxRssMB: round(maxRss / MB, 1),
    sampledPeakHeapUsedMB: round(peakHeap / MB, 1),
    sampledPeakExternalMB: round(peakExternal / MB, 1),
    samples,
    longestEventLoopStallMs: Math.round(longestGap),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/**
 * The child `node bin/bench.js crl-phases <dataDir> [databaseUrl]`: times the parts of generateCrl
 * one after the other: draining the revocation pages (twice; the second is timed), building the
 * CRL from them (drain, encode, sign), storing it.
 */
export async function crlPhasesChild(dir: string, databaseUrl?: string): Promise<void> {
  const authority = await Authority.open(dir, { env: ENV, databaseUrl });
  const baseline = process.memoryUsage.rss();
  const maxRss = () => round((process.resourceUsage().maxRSS * 1024) / MB, 1);
  const pages = () =>
    streamRevocationPages(authority.store.reader, { ca: 'sign', notAfterFrom: thisUpdate.getTime() });
  const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000);

  // Drained twice, the second time timed: the first pass also compiles the code (JIT).
  let n = 0;
  for await (const page of pages()) n += page.length;
  let t0 = performance.now();
  for await (const _ of pages());
  const drainSeconds = (performance.now() - t0) / 1000;

  const signCert = readCertDer(join(dir, 'certs', 'sign.pem'));
  const { subject, spki } = certificateParts(signCert);
  t0 = performance.now();
  const der = await buildCrl(
    SoftwareSigner.fromKeyObject(decryptKey(dir, 'sign')),
    {
      issuerNameDer: subject,
      authorityKeyId: keyIdentifier(spki),
      crlNumber: 1_000_000n,
      thisUpdate,
      nextUpdate: new Date(thisUpdate.getTime() + 86_400_000),
    },
    pages(),
  );
  const buildSeconds = (performance.now() - t0) / 1000;
  const maxRssAfterBuildMB = maxRss();
  const crlMB = round(der.length / MB, 1);

  t0 = performance.now();
  await insertCrl(
    authority.store.db,
    {
      ca: 'auth',
      number: 1_000_000 + Math.floor(Math.random() * 1_000_000),
      kind: 'full',
      base_number: null,
      this_update: 0,
      next_update: 1,
      max_revocation_id: 0,
      entries: n,
      der,
    },
    { afterCopy: () => releaseCrl(der) },
  );
  const insertSeconds = (performance.now() - t0) / 1000;
  const maxRssAfterInsertMB = maxRss();
  await authority.close();
  const report: CrlPhases = {
    drainSeconds: round(drainSeconds, 2),
    buildSeconds: round(buildSeconds, 2),
    insertSeconds: round(insertSeconds, 2),
    maxRssAfterBuildMB,
    maxRssAfterInsertMB,
    baselineRssMB: round(baseline / MB, 1),
    crlMB,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

// `npx tsx bench/crl.ts partition`: the partition case alone.
if (process.argv[1]?.endsWith('bench/crl.ts') && process.argv[2] === 'partition')
  await benchCrlPartition({ postgres: process.env.JPKI_BENCH_POSTGRES !== '0' });
