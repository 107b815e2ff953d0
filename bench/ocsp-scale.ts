// OCSP at national scale (issue 5, point 4; docs/ocsp.md): N synthetic certificates in PostgreSQL
// (src/store/populate.ts, 5 % revoked), their responses signed ahead by the batch signer, then the real
// server (buildServer, in a child process, verifier authentication and metering on, rate limit raised)
// under autocannon for GET and POST with one SHA-1 CertID and no nonce, asking for serials drawn
// uniformly from a sample of the store. Reports the batch signer's rate, requests/s, p50/p99, the
// memory cache's hit rate and the server's resident memory after the load.
//
//   node --import tsx bench/ocsp-scale.ts [count=100000] [seconds=10]
//   (JPKI_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres: an admin URL; a
//   database jpki_bench_ocsp_<random> is created and dropped)

import { type ChildProcess, spawn } from 'node:child_process';
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import pg from 'pg';
import { Authority } from '../src/authority/authority.ts';
import { issuerHashes } from '../src/core/ocsp.ts';
import { buildServer } from '../src/http/server.ts';
import { populate } from '../src/store/populate.ts';
import { VerifierRegistry } from '../src/verifiers/registry.ts';
import { ocspRequest } from '../test/ocsp/helpers.ts';
import { createAuthority, ENV } from './util.ts';

const ADMIN_URL = process.env.JPKI_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SAMPLE = 100_000;
/** Responder processes (JPKI_BENCH_WORKERS, default 1). */
const WORKERS = Number(process.env.JPKI_BENCH_WORKERS ?? 1);

async function admin(statement: string) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}

const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

/**
 * The responder: buildServer as `jpki serve` builds it (logger at info, to /dev/null here, as the
 * bench ignores it), in `workers` processes sharing the listening socket (node:cluster, each with its
 * own pool, cache and revocation feed, as separate responders behind a balancer would be).
 */
async function server(dir: string, databaseUrl: string, workers: number) {
  if (workers > 1 && cluster.isPrimary) {
    // Workers accept from the shared socket themselves (round-robin would pass every connection through the primary).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    let listening = 0;
    cluster.on('listening', (_w, address) => {
      if (++listening === workers) process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
    });
    for (let i = 0; i < workers; i++) cluster.fork();
    process.stdin.resume();
    process.stdin.on('end', async () => {
      const exits = Object.values(cluster.workers ?? {}).map((w) => new Promise((r) => w!.once('exit', r)));
      for (const w of Object.values(cluster.workers ?? {})) w!.send('stop');
      await Promise.all(exits);
      process.exit(0);
    });
    return;
  }
  const authority = await Authority.open(dir, { env: ENV, databaseUrl });
  const app = await buildServer({
    authority,
    operatorToken: randomBytes(24).toString('hex'),
    logger: { level: 'info', stream: createWriteStream('/dev/null') },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const stop = async () => {
    process.stderr.write(
      `${JSON.stringify({ pid: process.pid, cached: authority.ocspResponses.cached, feed: authority.ocspResponses.stats })}\n`,
    );
    await app.close();
    await authority.close();
    process.exit(0);
  };
  if (cluster.isWorker) {
    process.on('message', (m) => m === 'stop' && void stop());
    return;
  }
  process.stdout.write(`${JSON.stringify({ port: (app.server.address() as { port: number }).port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', stop);
}

/** The responder's processes: the child and, with workers, its children. */
function processTree(pid: number): number[] {
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // gone
  }
  return [pid, ...children.flatMap((c) => processTree(Number(c)))];
}

/** CPU time (user + system, ms) the processes have used: /proc/<pid>/stat fields 14 and 15, in clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  let ms = 0;
  for (const p of processTree(pid)) {
    const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
    ms += (Number(f[11]) + Number(f[12])) * 10;
  }
  return ms;
}

function rssMb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    kb += m ? Number(m[1]) : 0;
  }
  return Math.round(kb / 1024);
}

async function main(count: number, seconds: number) {
  const name = `jpki_bench_ocsp_${randomBytes(6).toString('hex')}`;
  await admin(`create database ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const ca = await createAuthority('jpki-bench-ocsp-scale-');
  let child: ChildProcess | undefined;
  try {
    writeFileSync(
      `${ca.dir}/verifiers.json`,
      JSON.stringify({ rateLimit: { requestsPerSecond: 0, burst: 1 } }),
    );
    const authority = await Authority.open(ca.dir, { env: ENV, databaseUrl });
    let result: Record<string, unknown>;
    try {
      let t = performance.now();
      let last = 0;
      await populate({ databaseUrl }, authority, {
        count,
        onProgress: (p) => {
          if (p.certificates - last >= count / 10 || p.certificates === p.target) {
            last = p.certificates;
            log(`populate ${p.certificates}/${p.target}`);
          }
        },
      });
      const populateSeconds = (performance.now() - t) / 1000;
      t = performance.now();
      last = 0;
      const presign = await authority.ocspResponses.presign({
        onProgress: (p) => {
          if (p.examined - last >= count / 10) {
            last = p.examined;
            log(`presign ${p.examined}/${count}, ${p.signed} signed`);
          }
        },
      });
      const presignSeconds = (performance.now() - t) / 1000;
      const sizes = await authority.store.db
        .selectNoFrom((eb) => [
          eb.fn<string>('pg_total_relation_size', [eb.val('ocsp_responses')]).as('responses'),
          eb.fn<string>('pg_total_relation_size', [eb.val('certificates')]).as('certificates'),
        ])
        .executeTakeFirstOrThrow();
      const registry = new VerifierRegistry(authority.store.db);
      const v = await registry.register(
        {
          name: 'Bench KK',
          category: 'private-certification-business',
          contractFrom: '2000-01-01',
          contractTo: '2099-12-31',
        },
        'bench',
      );
      const { apiKey } = await registry.issueApiKey(v.id, {}, 'bench');
      const serials = await authority.store.db
        .selectFrom('certificates')
        .select(['serial', 'ca'])
        .orderBy(({ fn }) => fn('random'))
        .limit(SAMPLE)
        .execute();
      const hashes = {
        sign: issuerHashes(authority.certificate('sign')),
        auth: issuerHashes(authority.certificate('auth')),
      };
      const requests = serials.map((s) => ocspRequest(hashes[s.ca as 'sign' | 'auth'], s.serial));
      await authority.close();

      child = spawn(
        process.execPath,
        [
          ...(process.env.JPKI_BENCH_CPU_PROF
            ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.JPKI_BENCH_CPU_PROF}`]
            : []),
          '--import',
          'tsx',
          new URL(import.meta.url).pathname,
          'server',
          ca.dir,
          databaseUrl,
          String(WORKERS),
        ],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      const lines = createInterface({ input: child.stdout! });
      let port = 0;
      for await (const line of lines) {
        port = (JSON.parse(line) as { port: number }).port;
        break;
      }
      const withKey = { 'x-api-key': apiKey };
      const run = async (
        method: 'GET' | 'POST',
        secs: number,
        amount?: number,
        headers: Record<string, string> = withKey,
      ) => {
        let i = 0;
        const cpu0 = cpuMs(child!.pid!);
        const r = await autocannon({
          url: `http://127.0.0.1:${port}`,
          connections: 10,
          ...(amount ? { amount } : { duration: secs }),
          requests: [
            {
              setupRequest: (req) => {
                const der = requests[i++ % requests.length]!;
                return method === 'GET'
                  ? { ...req, method, path: `/ocsp/${encodeURIComponent(der.toString('base64'))}`, headers }
                  : {
                      ...req,
                      method,
                      path: '/ocsp',
                      headers: { ...headers, 'content-type': 'application/ocsp-request' },
                      body: der,
                    };
              },
            },
          ],
        });
        // The server's CPU per answer: less dependent on what else runs on the machine than req/s.
        const cpuUs = Math.round(((cpuMs(child!.pid!) - cpu0) * 1000) / Math.max(1, r['2xx']));
        return {
          serverCpuUsPerRequest: cpuUs,
          rps: Math.round(r['2xx'] / r.duration),
          p50: r.latency.p50,
          p99: r.latency.p99,
          non2xx: r.non2xx,
          errors: r.errors,
        };
      };
      // Warm-up: every sampled serial once (fills the memory cache), then the measured runs.
      log('warm-up');
      const warmUp = await run('GET', 0, requests.length);
      const post = await run('POST', seconds);
      const get = await run('GET', seconds);
      // The same POSTs with no credential (revocationAccess public): what authentication and metering cost.
      const postAnonymous = await run('POST', seconds, undefined, {});
      const rss = rssMb(child.pid!);
      result = {
        count,
        revokedFraction: 0.05,
        populateSeconds: Math.round(populateSeconds),
        presign: {
          ...presign,
          perSecond: Math.round(presign.signed / presign.seconds),
          seconds: Math.round(presignSeconds),
        },
        storeBytes: { ocspResponses: Number(sizes.responses), certificates: Number(sizes.certificates) },
        sampledSerials: requests.length,
        workers: WORKERS,
        loadAverage: loadavg().map((x) => Math.round(x * 10) / 10),
        warmUp,
        get,
        post,
        postAnonymous,
        serverRssMb: rss,
      };
    } finally {
      await authority.close().catch(() => undefined);
    }
    const stderr: string[] = [];
    child.stderr!.on('data', (d) => stderr.push(String(d)));
    child.stdin!.end();
    await new Promise((r) => child!.once('exit', r));
    result.server = stderr.join('').trim();
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(
      new URL('./results/latest-ocsp-scale.json', import.meta.url),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    ca.cleanup();
    await admin(`drop database if exists ${name} with (force)`);
  }
}

if (process.argv[2] === 'server')
  await server(process.argv[3]!, process.argv[4]!, Number(process.argv[5] ?? 1));
else await main(Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 10));
