// National scale (issue 5): one PostgreSQL store filled with synthetic certificates (populate,
// src/store/populate.ts) to 100k, 1M and, with JPKI_BENCH_SCALE=10000000, 10M, 5 % revoked. At each
// size: populate time, store size per table, every CRL (authority.generateAllCrls: root, the
// complete CRL of each CA and its partitions), then `jpki serve` itself (a child process, verifier
// access on, an API key, metering on) under autocannon: OCSP POST for good and for revoked serials
// sampled at random over the population, GET for good ones; the responder's RSS. At the largest
// size the peers answer the same sample on 127.0.0.1: `cfssl ocspserve` from pre-signed responses
// and `openssl ocsp -multi 2` from an index.txt.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { Authority } from '../src/authority/authority.ts';
import { issuerHashes } from '../src/core/ocsp.ts';
import { openDatabase } from '../src/store/db.ts';
import { populate } from '../src/store/populate.ts';
import { VerifierRegistry } from '../src/verifiers/registry.ts';
import { httpRequest, rawLoad } from './loadgen.ts';
import { buildLoopbackShim, freePort, ocspRequest } from './ocsp.ts';
import {
  createAuthority,
  createPostgresDatabase,
  decryptKey,
  ENV,
  log,
  MB,
  postgresAvailable,
  printTable,
  round,
  sleep,
  waitExit,
} from './util.ts';

const BIN_JPKI = new URL('../bin/jpki.js', import.meta.url).pathname;
const SAMPLE = 10_000;
const SECONDS = 10;
const CONNECTIONS = 20;
export const SCALE_TARGET = {
  rps: 15_000,
  p99Ms: 5,
  cfsslRatio: 2,
  opensslRatio: 4,
  partitionSeconds: 0.5,
  fullSetSeconds: 10,
  rssMB: 1000,
};

interface LoadRun {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

interface SizeResult {
  certificates: number;
  revoked: number;
  populateSeconds: number;
  populateRowsPerSecond: number;
  indexSeconds?: number;
  storeMB: Record<string, number>;
  crl: {
    allSeconds: number;
    series: { ca: string; partition?: number; entries: number; seconds: number; bytes?: number }[];
  };
  ocsp: Record<string, LoadRun>;
  responderRssMB: number;
  responderPeakRssMB: number;
  /** The sample's responses signed before the load (presignSerials). */
  presignedSample: { signed: number; seconds: number };
  /** 1-minute load average when the responder started and after its load. */
  loadAverage: number[];
}

type Sample = { serial: string; ca: 'sign' | 'auth' }[];

export async function benchScale(): Promise<unknown> {
  if (!(await postgresAvailable())) throw new Error('scale: PostgreSQL is not reachable');
  const max = Number(process.env.JPKI_BENCH_SCALE ?? 1_000_000);
  const sizes = [100_000, 1_000_000, 10_000_000, 100_000_000].filter((n) => n <= max);
  log(`scale: sizes ${sizes.join(', ')} (JPKI_BENCH_SCALE=${max})`);
  const ca = await createAuthority('jpki-bench-scale-');
  const db = await createPostgresDatabase();
  const stops: (() => Promise<void>)[] = [];
  try {
    // Revocation endpoints for authorised verifiers only, and no rate limit in the way of the load.
    const cfgPath = join(ca.dir, 'authority.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, revocationAccess: 'verifiers' }, null, 2));
    writeFileSync(
      join(ca.dir, 'verifiers.json'),
      JSON.stringify({ rateLimit: { requestsPerSecond: 10_000_000, burst: 10_000_000 } }),
    );
    const authority = await Authority.open(ca.dir, { env: ENV, databaseUrl: db.url });
    const apiKey = await verifierKey(db.url);
    const hashes = {
      sign: issuerHashes(authority.certificate('sign')),
      auth: issuerHashes(authority.certificate('auth')),
    };
    const results: SizeResult[] = [];
    let peers: Record<string, LoadRun> | undefined;
    for (const size of sizes) {
      log(`scale: populating to ${size.toLocaleString('en-US')}`);
      let last = 0;
      const p = await populate({ databaseUrl: db.url }, authority, {
        count: size,
        onProgress: (x) => {
          if (x.certificates - last >= 1_000_000 || x.certificates === x.target) {
            last = x.certificates;
            log(`  ${x.certificates.toLocaleString('en-US')} certificates, ${x.revoked} revoked`);
          }
        },
      });
      const added = p.after.certificates - p.before.certificates;
      const storeMB = await storeSizes(db.url, db.name);
      log(`scale ${size}: populate ${round(p.seconds, 1)} s, store ${JSON.stringify(storeMB)}`);

      const all = await authority.generateAllCrls();
      const crl = {
        allSeconds: round(all.seconds, 2),
        series: all.results.map((x) => ({
          ca: x.ca,
          ...(x.partition !== undefined ? { partition: x.partition } : {}),
          entries: x.entries,
          seconds: round(x.seconds, 3),
        })),
      };
      const parts = crl.series.filter((x) => x.partition !== undefined);
      log(
        `scale ${size}: all CRLs in ${crl.allSeconds} s; complete: ${JSON.stringify(crl.series.filter((x) => x.partition === undefined))}; ${parts.length} partitions, largest ${Math.max(0, ...parts.map((x) => x.entries))} entries, slowest ${Math.max(0, ...parts.map((x) => x.seconds))} s`,
      );

      const good = await sampleGood(db.url, SAMPLE);
      const revoked = await sampleRevoked(db.url, SAMPLE);
      // The batch signer's work for the sample only: all of 10M takes hours (docs/ocsp.md), and the
      // load asks for the sample. The responder then serves the stored bytes, as it does in production.
      const presigned = await authority.ocspResponses.presignSerials(
        [...good, ...revoked].map((x) => x.serial),
      );
      log(`scale ${size}: pre-signed the sample: ${JSON.stringify(presigned)}`);
      const loadBefore = loadavg()[0]!;
      const server = await startJpki(ca.dir, db.url, stops);
      const post = (s: Sample) =>
        s.map((x) => ({
          method: 'POST' as const,
          path: '/ocsp',
          headers: { 'content-type': 'application/ocsp-request', 'x-api-key': apiKey },
          body: request(hashes[x.ca], x.serial),
        }));
      const get = (s: Sample) =>
        s.map((x) => ({
          method: 'GET' as const,
          path: `/ocsp/${encodeURIComponent(request(hashes[x.ca], x.serial).toString('base64'))}`,
          headers: { 'x-api-key': apiKey },
        }));
      // First pass: every sampled serial once (the first answers, JIT), then the measured runs.
      const warm = await load(
        server.port,
        [...post(good), ...post(revoked)],
        0,
        good.length + revoked.length,
      );
      log(`scale ${size}: warm-up ${JSON.stringify(warm)}`);
      const ocsp: Record<string, LoadRun> = {
        'POST good': await load(server.port, post(good), SECONDS),
        'POST revoked': await load(server.port, post(revoked), SECONDS),
        'GET good': await load(server.port, get(good), SECONDS),
      };
      const rss = processMemory(server.child.pid!);
      const loadAverage = [round(loadBefore, 1), round(loadavg()[0]!, 1)];
      log(`scale ${size}: ocsp ${JSON.stringify(ocsp)}, responder ${JSON.stringify(rss)}`);

      if (size === sizes[sizes.length - 1]) {
        peers = await runPeers(ca.dir, server.port, apiKey, good, revoked, hashes, post(good), stops);
      }
      await server.stop();
      results.push({
        certificates: p.after.certificates,
        revoked: p.after.revoked,
        populateSeconds: round(p.seconds, 1),
        populateRowsPerSecond: Math.round(added / p.seconds),
        ...(p.indexSeconds !== undefined ? { indexSeconds: round(p.indexSeconds, 1) } : {}),
        storeMB,
        crl,
        ocsp: { 'first pass (each serial once)': warm, ...ocsp },
        responderRssMB: rss.rssMB,
        responderPeakRssMB: rss.peakMB,
        presignedSample: { signed: presigned.signed, seconds: round(presigned.seconds, 1) },
        loadAverage,
      });
    }
    await authority.close();
    report(results, peers);
    return { sample: SAMPLE, seconds: SECONDS, connections: CONNECTIONS, sizes: results, peers };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await db.drop().catch((e) => log(`scale: could not drop ${db.name}: ${e}`));
    ca.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------------------

async function verifierKey(url: string): Promise<string> {
  const store = await openDatabase({ databaseUrl: url });
  try {
    const registry = new VerifierRegistry(store.db);
    const v = await registry.register(
      {
        name: 'Scale Bench KK',
        category: 'private-certification-business',
        contractFrom: '2020-01-01',
        contractTo: '2099-12-31',
      },
      'bench',
    );
    return (await registry.issueApiKey(v.id, { label: 'scale' }, 'bench')).apiKey;
  } finally {
    await store.close();
  }
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

async function storeSizes(url: string, name: string): Promise<Record<string, number>> {
  const rows = await query<{ t: string; b: string }>(
    url,
    `select relname as t, pg_total_relation_size(oid) as b from pg_class
     where relkind = 'r' and relnamespace = 'public'::regnamespace and pg_total_relation_size(oid) > 1000000
     union all select 'certificates_pkey', pg_relation_size('certificates_pkey')
     union all select 'database', pg_database_size('${name}')`,
  );
  return Object.fromEntries(rows.map((r) => [r.t, round(Number(r.b) / MB, 1)]));
}

/** Random good serials: a block sample of the heap, shuffled. */
async function sampleGood(url: string, n: number): Promise<Sample> {
  const rows = await query<{ serial: string; ca: 'sign' | 'auth' }>(
    url,
    `select c.serial, c.ca from certificates c tablesample bernoulli (1)
     where not exists (select 1 from revocations r where r.serial = c.serial) order by random() limit ${n}`,
  );
  return rows;
}

async function sampleRevoked(url: string, n: number): Promise<Sample> {
  return query(url, `select serial, ca from revocations order by random() limit ${n}`);
}

/** RFC 5019 OCSPRequest: one SHA-1 CertID, no nonce. */
/** RFC 5019 request (SHA-1 CertID) for a serial given in hex. */
function request(h: ReturnType<typeof issuerHashes>, serial: string): Buffer {
  return ocspRequest(h.sha1.name, h.sha1.key, Buffer.from(serial, 'hex'));
}

/**
 * autocannon over `requests`, taken in turn by all connections together (one shared cursor): with a
 * plain `requests` array every connection would walk the list from its start, and the load would
 * keep asking for the first few hundred serials. `amount`: stop after that many requests.
 */
async function load(
  port: number,
  requests: autocannon.Request[],
  seconds: number,
  amount?: number,
): Promise<LoadRun> {
  let next = 0;
  const r = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    ...(amount ? { amount } : { duration: seconds }),
    requests: [{ setupRequest: (req) => ({ ...req, ...requests[next++ % requests.length]! }) }],
  });
  return {
    rps: round(r['2xx'] / r.duration, 1),
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
  };
}

function processMemory(pid: number): { rssMB: number; peakMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssMB: round((kb('VmRSS') * 1024) / MB, 1), peakMB: round((kb('VmHWM') * 1024) / MB, 1) };
}

/** `jpki serve --role ocsp` as an operator runs a responder, on PostgreSQL; resolves once /healthz answers. */
async function startJpki(
  dir: string,
  url: string,
  stops: (() => Promise<void>)[],
): Promise<{ port: number; child: ChildProcess; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    // --role ocsp: a responder as deployed at scale, without the batch signer, CRL schedule and outbox
    // of the whole authority competing for the same 2 cores during the load.
    [BIN_JPKI, 'serve', '--data', dir, '--port', String(port), '--host', '127.0.0.1', '--role', 'ocsp'],
    {
      env: { ...process.env, ...ENV, DATABASE_URL: url },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await waitExit(child);
    clearTimeout(t);
  };
  stops.push(stop);
  const t0 = performance.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jpki serve exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (performance.now() - t0 > 600_000) throw new Error('jpki serve did not start in 10 minutes');
    await sleep(250);
  }
  log(`scale: jpki serve ready in ${round((performance.now() - t0) / 1000, 1)} s`);
  return { port, child, stop };
}

// ---------------------------------------------------------------------------------------------------------
// Peers

async function runPeers(
  dir: string,
  ourPort: number,
  apiKey: string,
  good: Sample,
  revoked: Sample,
  hashes: Record<'sign' | 'auth', ReturnType<typeof issuerHashes>>,
  ourPost: autocannon.Request[],
  stops: (() => Promise<void>)[],
): Promise<Record<string, LoadRun>> {
  const out: Record<string, LoadRun> = {};
  // The peers answer for the sign CA only (one issuer per openssl responder): the sign half of the sample.
  const signGood = good.filter((x) => x.ca === 'sign');
  const signRevoked = revoked.filter((x) => x.ca === 'sign');
  const bodies = signGood.map((x) => request(hashes.sign, x.serial));
  const rawPosts = (port: number, key?: string) =>
    bodies.map((b) => {
      const r = httpRequest('POST', '/ocsp', {
        body: b,
        contentType: 'application/ocsp-request',
        close: true,
        host: `127.0.0.1:${port}`,
      });
      if (!key) return r;
      const s = r.toString('latin1').replace('\r\n', `\r\nX-API-Key: ${key}\r\n`);
      return Buffer.from(s, 'latin1');
    });
  out['open-jpki POST good (sign), autocannon'] = await load(
    ourPort,
    ourPost.filter((_, i) => good[i]!.ca === 'sign'),
    SECONDS,
  );
  const ourRaw = await rawLoad({
    port: ourPort,
    requests: rawPosts(ourPort, apiKey),
    connections: CONNECTIONS,
    seconds: SECONDS,
    mode: 'close',
  });
  out['open-jpki POST good (sign), connection per request'] = pick(ourRaw);

  // cfssl ocspserve: the responses open-jpki signed, one base64 DER per line.
  const responses: string[] = [];
  for (const b of [...bodies, ...signRevoked.map((x) => request(hashes.sign, x.serial))]) {
    const r = await fetch(`http://127.0.0.1:${ourPort}/ocsp`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request', 'x-api-key': apiKey },
      body: new Uint8Array(b),
    });
    responses.push(Buffer.from(await r.arrayBuffer()).toString('base64'));
  }
  const respFile = join(dir, 'cfssl-responses.txt');
  writeFileSync(respFile, `${responses.join('\n')}\n`);
  try {
    execFileSync('cfssl', ['version'], { stdio: 'ignore' });
    const port = await freePort();
    const child = spawn(
      'cfssl',
      ['ocspserve', '-address', '127.0.0.1', '-port', String(port), '-responses', respFile],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    stops.push(async () => {
      child.kill('SIGTERM');
      await waitExit(child);
    });
    await waitListening(port);
    const cfsslReqs = bodies.map((body) => ({
      method: 'POST' as const,
      path: '/',
      headers: { 'content-type': 'application/ocsp-request' },
      body,
    }));
    // Sanity: cfssl answers with the response open-jpki signed for that serial, byte for byte.
    const probe = await fetch(`http://127.0.0.1:${port}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request' },
      body: new Uint8Array(bodies[0]!),
    });
    const same = Buffer.from(await probe.arrayBuffer()).toString('base64') === responses[0];
    log(`scale: cfssl sanity: HTTP ${probe.status}, same bytes as open-jpki's response: ${same}`);
    if (!same) throw new Error('cfssl does not answer with the pre-signed response');
    await load(port, cfsslReqs, 5);
    out['cfssl ocspserve POST good (sign), autocannon'] = await load(port, cfsslReqs, SECONDS);
    log(`scale: cfssl ${JSON.stringify(out['cfssl ocspserve POST good (sign), autocannon'])}`);
  } catch (e) {
    log(`scale: cfssl skipped: ${(e as Error).message}`);
  }

  // openssl ocsp -multi 2 from an index.txt of the same sample.
  const shim = buildLoopbackShim(dir);
  if (shim) {
    const exp = '351231000000Z';
    // openssl keys its index by the serial's value in hex, without the DER sign octet.
    const idx = (serial: string) => serial.replace(/^00/, '').toUpperCase();
    const index = [
      ...signGood.map((x) => `V\t${exp}\t\t${idx(x.serial)}\tunknown\t/CN=${x.serial}\n`),
      ...signRevoked.map(
        (x) => `R\t${exp}\t250101000000Z,superseded\t${idx(x.serial)}\tunknown\t/CN=${x.serial}\n`,
      ),
    ].join('');
    writeFileSync(join(dir, 'index.txt'), index);
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    const keyFile = join(dir, 'sign-ocsp.key.pem');
    writeFileSync(keyFile, decryptKey(dir, 'sign-ocsp').export({ type: 'pkcs8', format: 'pem' }) as string, {
      mode: 0o600,
    });
    const port = await freePort();
    const child = spawn(
      'openssl',
      [
        'ocsp',
        '-index',
        'index.txt',
        '-rsigner',
        join(dir, 'certs', 'sign-ocsp.pem'),
        '-rkey',
        keyFile,
        '-CA',
        join(dir, 'certs', 'sign.pem'),
        '-multi',
        '2',
        '-nmin',
        '30',
        '-port',
        String(port),
      ],
      { cwd: dir, env: { ...process.env, LD_PRELOAD: shim }, stdio: ['ignore', 'ignore', 'ignore'] },
    );
    const pid = child.pid!;
    stops.push(async () => {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      await waitExit(child);
    });
    await sleep(1500);
    const r = await rawLoad({
      port,
      requests: rawPosts(port),
      connections: CONNECTIONS,
      seconds: SECONDS,
      mode: 'close',
    });
    out['openssl ocsp -multi 2 POST good (sign), connection per request'] = pick(r);
    log(`scale: openssl ${JSON.stringify(pick(r))}`);
  } else log('scale: openssl skipped: no C compiler for the loopback shim');
  return out;
}

function pick(r: { rps: number; p50: number; p99: number; non200: number; errors: number }): LoadRun {
  return { rps: round(r.rps, 1), p50: r.p50, p99: r.p99, non2xx: r.non200, errors: r.errors };
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

function report(results: SizeResult[], peers: Record<string, LoadRun> | undefined): void {
  printTable(
    'National scale: PostgreSQL store, 5 % revoked',
    [
      'certificates',
      'populate s',
      'rows/s',
      'certificates MB',
      'pkey MB',
      'revocations MB',
      'database MB',
      'all CRLs s',
    ],
    results.map((r) => [
      r.certificates,
      r.populateSeconds,
      r.populateRowsPerSecond,
      r.storeMB.certificates ?? 0,
      r.storeMB.certificates_pkey ?? 0,
      r.storeMB.revocations ?? 0,
      r.storeMB.database ?? 0,
      r.crl.allSeconds,
      r.crl.series.find((x) => x.ca === 'sign' && x.partition === undefined)?.entries ?? 0,
      r.crl.series.find((x) => x.ca === 'sign' && x.partition === undefined)?.seconds ?? 0,
      r.crl.series.filter((x) => x.partition !== undefined).length,
      Math.max(0, ...r.crl.series.filter((x) => x.partition !== undefined).map((x) => x.entries)),
      Math.max(0, ...r.crl.series.filter((x) => x.partition !== undefined).map((x) => x.seconds)),
    ]),
  );
  printTable(
    `OCSP through jpki serve (verifier API key, metering), ${CONNECTIONS} connections, ${SECONDS} s, sample ${SAMPLE} serials`,
    ['certificates', 'case', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'RSS MB', 'peak RSS MB'],
    results.flatMap((r) =>
      Object.entries(r.ocsp).map(([k, v]) => [
        r.certificates,
        k,
        v.rps,
        v.p50,
        v.p99,
        v.non2xx,
        r.responderRssMB,
        r.responderPeakRssMB,
      ]),
    ),
  );
  if (peers)
    printTable(
      'Peers at the largest size (same sample, sign CA)',
      ['server', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
      Object.entries(peers).map(([k, v]) => [k, v.rps, v.p50, v.p99, v.non2xx, v.errors]),
    );
}
