// OCSP: requests per second and latency of the real HTTP server (buildServer, in a child process so
// that the load generator does not share its event loop) for POST and GET (RFC 5019: one SHA-1
// CertID, no nonce), cycling through 1,000 certificates of which 10 % are revoked; then the same
// load against `openssl ocsp` serving the same certificates from an index.txt.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import cluster from 'node:cluster';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CertID } from '@peculiar/asn1-ocsp';
import { AsnParser } from '@peculiar/asn1-schema';
import autocannon from 'autocannon';
import SQLite from 'better-sqlite3';
import { Authority } from '../src/authority/authority.ts';
import { dataPaths } from '../src/authority/config.ts';
import { NULL, octetString, oid, sequence, tlv } from '../src/core/der.ts';
import { issuerHashes, parseOcspRequest } from '../src/core/ocsp.ts';
import { OID } from '../src/core/oids.ts';
import { buildServer } from '../src/http/server.ts';
import { certificateStatus } from '../src/store/certificates.ts';
import { httpRequest, rawLoad, rawOnce } from './loadgen.ts';
import {
  BIN_BENCH,
  createAuthority,
  decryptKey,
  ENV,
  FACTS,
  firstJsonLine,
  log,
  makeCsrs,
  median,
  printTable,
  readCertDer,
  round,
  sleep,
  waitExit,
} from './util.ts';

export interface OcspOptions {
  certificates: number;
  /** Every n-th certificate is revoked. */
  revokeEvery: number;
  rounds: number;
  /** Seconds of load per target and round. */
  seconds: number;
  warmupSeconds: number;
  connections: number;
  pipelining: number;
}

export const OCSP_DEFAULTS: OcspOptions = {
  certificates: 1000,
  revokeEvery: 10,
  rounds: 5,
  seconds: 3,
  warmupSeconds: 2,
  connections: 10,
  pipelining: 1,
};
export const OCSP_TARGET = { ratio: 3, p99Ms: 5 };

type Method = 'POST' | 'GET';
/** open-jpki-2proc: the same server as two processes (node:cluster) on the same store. */
type ServerId = 'open-jpki' | 'open-jpki-2proc' | 'openssl-multi2' | 'openssl-1proc';
/** autocannon (keep-alive), or bench/loadgen.ts with one connection per request. */
type Loader = 'autocannon' | 'raw-close';
type Target = {
  server: ServerId;
  method: Method;
  loader: Loader;
  run: (seconds: number) => Promise<OcspRun>;
};

export interface OcspRun {
  rps: number;
  p50: number;
  p99: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

export interface OcspCase {
  server: ServerId;
  method: Method;
  loader: Loader;
  runs: OcspRun[];
  medianRps: number;
  medianP50Ms: number;
  medianP99Ms: number;
}

export interface OcspResult {
  options: OcspOptions;
  target: string;
  notes: string[];
  sanity: Record<string, string>;
  cases: OcspCase[];
  ratios: {
    method: Method;
    ours: string;
    oursRps: number;
    opensslRps: number;
    ratio: number;
    meetsTarget: boolean;
  }[];
  p99: { server: ServerId; method: Method; loader: Loader; p99Ms: number; meetsTarget: boolean }[];
  /** Where the server's time per request goes: µs per call of the parts of Authority.ocsp, alone. */
  breakdown: { part: string; microseconds: number }[];
  opensslSkipped?: string;
}

interface IssuedForOcsp {
  serialHex: string;
  pem: string;
  notAfter: Date;
  revokedAt?: Date;
  subject: string;
}

/** RFC 5019 OCSPRequest: one Request with a SHA-1 CertID, unsigned, no extensions. */
export function ocspRequest(issuerNameHash: Buffer, issuerKeyHash: Buffer, serialContent: Buffer): Buffer {
  const certId = sequence(
    sequence(oid(OID.sha1), NULL),
    octetString(issuerNameHash),
    octetString(issuerKeyHash),
    tlv(0x02, serialContent),
  );
  return sequence(sequence(sequence(sequence(certId))));
}

/** openssl ca index.txt time: YYMMDDHHMMSSZ. */
const indexTime = (d: Date) => `${d.toISOString().slice(2, 19).replace(/\D/g, '')}Z`;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Builds bench/loopback-bind.c (see there) into `dir`; undefined if there is no C compiler. */
export function buildLoopbackShim(dir: string): string | undefined {
  const src = new URL('./loopback-bind.c', import.meta.url).pathname;
  const out = join(dir, 'loopback-bind.so');
  for (const cc of ['cc', 'gcc', 'clang']) {
    const r = spawnSync(cc, ['-shared', '-fPIC', '-O2', '-o', out, src, '-ldl'], { encoding: 'utf8' });
    if (r.status === 0) return out;
  }
  return undefined;
}

interface OpensslServer {
  port: number;
  child: ChildProcess;
  /** Also registered in the `stops` given to startOpenssl. */
  stop: () => Promise<void>;
}

/**
 * Starts `openssl ocsp` as a responder on 127.0.0.1. OpenSSL 3.0 takes only a port number and
 * binds every interface, so the loopback shim is preloaded. It is NOT started detached: with
 * -multi, openssl calls setpgid(0, 0) itself (which fails in a session leader, i.e. after
 * setsid) and its workers share that process group, which stop() signals as a whole.
 */
async function startOpenssl(
  args: string[],
  shim: string,
  cwd: string,
  stops: (() => Promise<void>)[],
): Promise<OpensslServer> {
  const port = await freePort();
  const child = spawn('openssl', ['ocsp', ...args, '-port', String(port)], {
    cwd,
    env: { ...process.env, LD_PRELOAD: shim },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  const signalGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig); // the group, when openssl made one (-multi)
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  };
  const groupAlive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return child.exitCode === null && child.signalCode === null;
    }
  };
  const stop = async () => {
    signalGroup('SIGTERM');
    for (let i = 0; i < 40 && groupAlive(); i++) await sleep(50);
    if (groupAlive()) signalGroup('SIGKILL');
    await waitExit(child);
    for (let i = 0; i < 40 && groupAlive(); i++) await sleep(50);
  };
  // Registered at once, so that the workers are stopped even if start-up fails half way.
  stops.push(stop);
  let output = '';
  // Readiness is its "ACCEPT" line (on stdout), not a probe connection: openssl ocsp 3.0 spins at
  // 100 % CPU, serving nobody else, on a connection that closes before sending a request.
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), 5000);
    const onData = (d: Buffer) => {
      output += d.toString('utf8');
      if (/ACCEPT /.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with code ${code}`));
    });
  });
  try {
    await ready;
    await sleep(200); // -multi: let the workers start
  } catch (e) {
    throw new Error(`openssl ocsp did not start: ${output.trim() || (e as Error).message}`);
  }
  return { port, child, stop };
}

/** Asks a responder about one certificate with the openssl client; returns e.g. "good" or "revoked". */
function opensslClientStatus(
  url: string,
  dir: string,
  certPem: string,
  root: string,
  issuer: string,
): string {
  const certFile = join(dir, `query-${randomBytes(4).toString('hex')}.pem`);
  writeFileSync(certFile, certPem);
  const r = spawnSync(
    'openssl',
    [
      'ocsp',
      '-url',
      url,
      '-issuer',
      issuer,
      '-cert',
      certFile,
      '-CAfile',
      root,
      '-no_nonce',
      '-timeout',
      '10',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  const out = `${r.stdout}${r.stderr}`;
  const verified = /Response verify OK/.test(out);
  const status = new RegExp(`${certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (\\w+)`).exec(out)?.[1];
  return verified && status ? status : `FAILED: ${out.trim().split('\n').slice(0, 3).join(' | ')}`;
}

/** The status openssl reads from a DER OCSP response about `certPem` (signature checked). */
function respinStatus(der: Buffer, dir: string, certPem: string, root: string, issuer: string): string {
  const tag = randomBytes(4).toString('hex');
  const respFile = join(dir, `resp-${tag}.der`);
  const certFile = join(dir, `cert-${tag}.pem`);
  writeFileSync(respFile, der);
  writeFileSync(certFile, certPem);
  const r = spawnSync(
    'openssl',
    ['ocsp', '-respin', respFile, '-issuer', issuer, '-cert', certFile, '-CAfile', root],
    {
      encoding: 'utf8',
    },
  );
  const out = `${r.stdout}${r.stderr}`;
  const status = new RegExp(`${certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (\\w+)`).exec(out)?.[1];
  return /Response verify OK/.test(out) && status ? status : `FAILED: ${out.trim().split('\n')[0]}`;
}

/**
 * autocannon over `requests`, taken in turn by all connections together (one shared cursor): given
 * as autocannon's `requests` list, every connection would walk it from its start, and the load would
 * ask for the first few serials only.
 */
async function load(
  port: number,
  requests: autocannon.Request[],
  o: OcspOptions,
  seconds: number,
): Promise<OcspRun> {
  let next = 0;
  const r = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: o.connections,
    pipelining: o.pipelining,
    duration: seconds,
    requests: [{ setupRequest: (req) => ({ ...req, ...requests[next++ % requests.length]! }) }],
  });
  return {
    rps: round(r['2xx'] / r.duration, 1),
    p50: r.latency.p50,
    p99: r.latency.p99,
    ok2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

export async function benchOcsp(o: OcspOptions = OCSP_DEFAULTS): Promise<OcspResult> {
  log(
    `ocsp: ${o.certificates} certificates (every ${o.revokeEvery}th revoked), ${o.rounds} rounds of ${o.seconds} s per target, ${o.connections} connections, pipelining ${o.pipelining}`,
  );
  const ca = await createAuthority('jpki-bench-ocsp-');
  const stops: (() => Promise<void>)[] = [];
  const notes: string[] = [];
  const sanity: Record<string, string> = {};
  let opensslSkipped: string | undefined;
  try {
    // 1. Issue and revoke.
    const issued: IssuedForOcsp[] = [];
    const signPem = ca.certPath('sign');
    const rootPem = ca.certPath('root');
    const h = issuerHashes(readCertDer(signPem)).sha1;
    let breakdown: OcspResult['breakdown'] = [];
    const authority = await Authority.open(ca.dir, { env: ENV });
    try {
      const csrs = makeCsrs(50);
      const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
      for (let i = 0; i < o.certificates; i++) {
        const c = await authority.issue({ kind: 'sign', csr: csrs[i % csrs.length]!, facts: FACTS });
        const item: IssuedForOcsp = {
          serialHex: c.serial,
          pem: c.pem,
          notAfter: c.notAfter,
          subject: `/CN=bench-${i}`,
        };
        if (i % o.revokeEvery === 0) {
          await authority.revoke(c.serial, 'keyCompromise', revokedAt);
          item.revokedAt = revokedAt;
        }
        issued.push(item);
      }
      breakdown = await measureParts(
        authority,
        ca.dir,
        issued.map((c) => c.serialHex),
        issued.map((c) => ocspRequest(h.name, h.key, Buffer.from(c.serialHex, 'hex'))),
      );
    } finally {
      await authority.close();
    }
    const reqs = issued.map((c) => ocspRequest(h.name, h.key, Buffer.from(c.serialHex, 'hex')));

    // Our requests must be byte-identical to what openssl sends (RFC 5019 form, no nonce).
    const probe = join(ca.dir, 'probe.pem');
    writeFileSync(probe, issued[1]!.pem);
    const reqFile = join(ca.dir, 'probe-req.der');
    execFileSync('openssl', ['ocsp', '-issuer', signPem, '-cert', probe, '-reqout', reqFile, '-no_nonce'], {
      stdio: 'ignore',
    });
    const opensslReq = readFileSync(reqFile);
    if (!opensslReq.equals(reqs[1]!)) throw new Error('the OCSP request differs from the one openssl builds');
    sanity.requestMatchesOpenssl = 'yes';

    const post = (path: string) =>
      reqs.map((body) => ({
        method: 'POST' as const,
        path,
        headers: { 'content-type': 'application/ocsp-request' },
        body,
      }));
    const get = (prefix: string) =>
      reqs.map((r) => ({
        method: 'GET' as const,
        path: `${prefix}${encodeURIComponent(r.toString('base64'))}`,
      }));

    // 2. Our server, in a child process.
    const server = spawn(process.execPath, [BIN_BENCH, 'ocsp-server', ca.dir], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    stops.push(async () => {
      server.stdin?.end();
      server.kill('SIGTERM');
      await waitExit(server);
    });
    const { port } = await firstJsonLine<{ port: number }>(server, 60_000);
    const revoked = issued.find((c) => c.revokedAt)!;
    const good = issued.find((c) => !c.revokedAt)!;
    sanity.openJpkiGood = opensslClientStatus(
      `http://127.0.0.1:${port}/ocsp`,
      ca.dir,
      good.pem,
      rootPem,
      signPem,
    );
    sanity.openJpkiRevoked = opensslClientStatus(
      `http://127.0.0.1:${port}/ocsp`,
      ca.dir,
      revoked.pem,
      rootPem,
      signPem,
    );
    log(`ocsp sanity (open-jpki): good -> ${sanity.openJpkiGood}, revoked -> ${sanity.openJpkiRevoked}`);

    const host = '127.0.0.1';
    const rawPost = (prefix: string) =>
      reqs.map((body) =>
        httpRequest('POST', prefix, { body, contentType: 'application/ocsp-request', close: true, host }),
      );
    const rawGet = (prefix: string) =>
      reqs.map((r) =>
        httpRequest('GET', `${prefix}${encodeURIComponent(r.toString('base64'))}`, { close: true, host }),
      );
    const viaAutocannon = (p: number, requests: autocannon.Request[]) => (seconds: number) =>
      load(p, requests, o, seconds);
    const viaRaw = (p: number, requests: Buffer[]) => async (seconds: number) => {
      const r = await rawLoad({ port: p, requests, connections: o.connections, seconds, mode: 'close' });
      return {
        rps: round(r.rps, 1),
        p50: r.p50,
        p99: r.p99,
        ok2xx: r.ok,
        non2xx: r.non200,
        errors: r.errors,
        timeouts: 0,
      };
    };
    const targets: Target[] = [
      { server: 'open-jpki', method: 'POST', loader: 'autocannon', run: viaAutocannon(port, post('/ocsp')) },
      { server: 'open-jpki', method: 'GET', loader: 'autocannon', run: viaAutocannon(port, get('/ocsp/')) },
      { server: 'open-jpki', method: 'POST', loader: 'raw-close', run: viaRaw(port, rawPost('/ocsp')) },
      { server: 'open-jpki', method: 'GET', loader: 'raw-close', run: viaRaw(port, rawGet('/ocsp/')) },
    ];

    const ourGet = await rawOnce(port, rawGet('/ocsp/')[1]!);
    sanity.openJpkiGet = `HTTP ${ourGet.status}: ${respinStatus(ourGet.body, ca.dir, issued[1]!.pem, rootPem, signPem)}`;
    log(`ocsp sanity (open-jpki): GET -> ${sanity.openJpkiGet}`);

    // The same server as two processes (node:cluster, one listening socket), each with its own
    // connection to the same SQLite store: the counterpart of openssl's -multi 2.
    const server2 = spawn(process.execPath, [BIN_BENCH, 'ocsp-server', ca.dir, '2'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    stops.push(async () => {
      server2.stdin?.end();
      server2.kill('SIGTERM');
      await waitExit(server2);
    });
    const { port: port2 } = await firstJsonLine<{ port: number }>(server2, 60_000);
    await sleep(1000); // the second worker
    sanity.openJpki2procRevoked = opensslClientStatus(
      `http://127.0.0.1:${port2}/ocsp`,
      ca.dir,
      revoked.pem,
      rootPem,
      signPem,
    );
    const ourGet2 = await rawOnce(port2, rawGet('/ocsp/')[1]!);
    sanity.openJpki2procGet = `HTTP ${ourGet2.status}: ${respinStatus(ourGet2.body, ca.dir, issued[1]!.pem, rootPem, signPem)}`;
    log(
      `ocsp sanity (open-jpki, 2 processes): revoked -> ${sanity.openJpki2procRevoked}, GET -> ${sanity.openJpki2procGet}`,
    );
    targets.push(
      {
        server: 'open-jpki-2proc',
        method: 'POST',
        loader: 'autocannon',
        run: viaAutocannon(port2, post('/ocsp')),
      },
      {
        server: 'open-jpki-2proc',
        method: 'GET',
        loader: 'autocannon',
        run: viaAutocannon(port2, get('/ocsp/')),
      },
      {
        server: 'open-jpki-2proc',
        method: 'POST',
        loader: 'raw-close',
        run: viaRaw(port2, rawPost('/ocsp')),
      },
      { server: 'open-jpki-2proc', method: 'GET', loader: 'raw-close', run: viaRaw(port2, rawGet('/ocsp/')) },
    );

    // 3. openssl ocsp on the same certificates.
    const shim = buildLoopbackShim(ca.dir);
    if (!shim) {
      opensslSkipped =
        'no C compiler to build the loopback-bind shim; openssl ocsp would listen on every interface';
      log(`ocsp: ${opensslSkipped}`);
    } else {
      const index = issued
        .map((c) => {
          const serial = c.serialHex.replace(/^00/, '').toUpperCase();
          const exp = indexTime(c.notAfter);
          return c.revokedAt
            ? `R\t${exp}\t${indexTime(c.revokedAt)},keyCompromise\t${serial}\tunknown\t${c.subject}\n`
            : `V\t${exp}\t\t${serial}\tunknown\t${c.subject}\n`;
        })
        .join('');
      writeFileSync(join(ca.dir, 'index.txt'), index);
      writeFileSync(join(ca.dir, 'index.txt.attr'), 'unique_subject = no\n');
      const keyFile = join(ca.dir, 'sign-ocsp.key.pem');
      writeFileSync(
        keyFile,
        decryptKey(ca.dir, 'sign-ocsp').export({ type: 'pkcs8', format: 'pem' }) as string,
        {
          mode: 0o600,
        },
      );
      const common = ['-index', 'index.txt', '-rsigner', ca.certPath('sign-ocsp'), '-rkey', keyFile];
      const multi = await startOpenssl(
        [...common, '-CA', signPem, '-multi', '2', '-nmin', '30'],
        shim,
        ca.dir,
        stops,
      );
      const single = await startOpenssl([...common, '-CA', signPem, '-nmin', '30'], shim, ca.dir, stops);
      sanity.opensslGood = opensslClientStatus(
        `http://127.0.0.1:${multi.port}`,
        ca.dir,
        good.pem,
        rootPem,
        signPem,
      );
      sanity.opensslRevoked = opensslClientStatus(
        `http://127.0.0.1:${multi.port}`,
        ca.dir,
        revoked.pem,
        rootPem,
        signPem,
      );
      // GET: openssl 3.0 takes the base64 request as the path, at the root.
      const getRes = await rawOnce(multi.port, rawGet('/')[1]!);
      sanity.opensslGet = `HTTP ${getRes.status}: ${respinStatus(getRes.body, ca.dir, issued[1]!.pem, rootPem, signPem)}`;
      log(
        `ocsp sanity (openssl): good -> ${sanity.opensslGood}, revoked -> ${sanity.opensslRevoked}, GET -> ${sanity.opensslGet}`,
      );
      targets.push(
        {
          server: 'openssl-multi2',
          method: 'POST',
          loader: 'raw-close',
          run: viaRaw(multi.port, rawPost('/')),
        },
        {
          server: 'openssl-multi2',
          method: 'GET',
          loader: 'raw-close',
          run: viaRaw(multi.port, rawGet('/')),
        },
        {
          server: 'openssl-1proc',
          method: 'POST',
          loader: 'raw-close',
          run: viaRaw(single.port, rawPost('/')),
        },
      );
      notes.push(
        'openssl ocsp answers HTTP/1.0 and closes the connection after every response, so each of its requests includes a TCP connect; open-jpki keeps connections alive.',
        'openssl ocsp signs every response; open-jpki reuses a signed response (no nonce) while the status in the store is unchanged and the response is younger than 15 minutes, so after the warm-up it answers from its cache after one store lookup.',
        'openssl-multi2 is `-multi 2` (two worker processes); openssl-1proc is one process, for a per-core comparison. open-jpki is one Node.js process. The load generator (autocannon) runs in the parent process on the same 2 cores.',
      );
    }

    // 4. Warm-up (JIT, our response cache for every certificate), then interleaved rounds.
    for (const t of targets) await t.run(o.warmupSeconds);
    const cases: OcspCase[] = targets.map((t) => ({
      server: t.server,
      method: t.method,
      loader: t.loader,
      runs: [],
      medianRps: 0,
      medianP50Ms: 0,
      medianP99Ms: 0,
    }));
    for (let r = 0; r < o.rounds; r++) {
      const parts: string[] = [];
      for (const [i, t] of targets.entries()) {
        const run = await t.run(o.seconds);
        cases[i]!.runs.push(run);
        const bad = run.non2xx || run.errors ? ` (non-2xx ${run.non2xx}, errors ${run.errors})` : '';
        parts.push(`${t.server} ${t.method} ${t.loader} ${round(run.rps)}/s p99 ${run.p99} ms${bad}`);
      }
      log(`ocsp round ${r + 1}/${o.rounds}:\n  ${parts.join('\n  ')}`);
    }
    for (const c of cases) {
      c.medianRps = round(median(c.runs.map((x) => x.rps)), 1);
      c.medianP50Ms = round(median(c.runs.map((x) => x.p50)), 3);
      c.medianP99Ms = round(median(c.runs.map((x) => x.p99)), 3);
    }
    const find = (s: ServerId, m: Method, l: Loader) =>
      cases.find((c) => c.server === s && c.method === m && c.loader === l);
    const ratios: OcspResult['ratios'] = [];
    const p99: OcspResult['p99'] = [];
    for (const server of ['open-jpki', 'open-jpki-2proc'] as const)
      for (const m of ['POST', 'GET'] as const) {
        for (const l of ['autocannon', 'raw-close'] as const) {
          const ours = find(server, m, l);
          if (!ours) continue;
          p99.push({
            server,
            method: m,
            loader: l,
            p99Ms: ours.medianP99Ms,
            meetsTarget: ours.medianP99Ms < OCSP_TARGET.p99Ms,
          });
          const theirs = find('openssl-multi2', m, 'raw-close');
          if (!theirs) continue;
          // Per-round ratios (measured a few seconds apart in the same round), then the median.
          const ratio = round(median(ours.runs.map((x, i) => x.rps / theirs.runs[i]!.rps)), 2);
          ratios.push({
            method: m,
            ours: `${server === 'open-jpki' ? 'open-jpki (1 process)' : 'open-jpki (2 processes)'} via ${l === 'autocannon' ? 'autocannon (keep-alive)' : 'raw-close (connection per request)'}`,
            oursRps: ours.medianRps,
            opensslRps: theirs.medianRps,
            ratio,
            meetsTarget: ratio >= OCSP_TARGET.ratio,
          });
        }
      }
    printTable(
      `OCSP (${o.certificates} certificates, ${o.connections} connections, pipelining ${o.pipelining}; median of ${o.rounds} rounds of ${o.seconds} s)`,
      ['server', 'method', 'load generator', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
      cases.map((c) => [
        c.server,
        c.method,
        c.loader === 'autocannon' ? 'autocannon, keep-alive' : 'raw, connection per request',
        c.medianRps,
        c.medianP50Ms,
        c.medianP99Ms,
        c.runs.reduce((a, x) => a + x.non2xx, 0),
        c.runs.reduce((a, x) => a + x.errors, 0),
      ]),
    );
    printTable(
      'OCSP targets',
      ['what', 'measured', 'target', 'met'],
      [
        ...ratios.map((x) => [
          `${x.method}: ${x.ours} / openssl -multi 2 (raw-close)`,
          x.ratio,
          `>= ${OCSP_TARGET.ratio}`,
          x.meetsTarget ? 'met' : 'NOT met',
        ]),
        ...p99.map((x) => [
          `${x.method}: ${x.server} p99 ms (${x.loader})`,
          x.p99Ms,
          `< ${OCSP_TARGET.p99Ms}`,
          x.meetsTarget ? 'met' : 'NOT met',
        ]),
      ],
    );
    printTable(
      'OCSP: parts of one answer, each measured alone (median of 3 x 5,000 calls, in-process)',
      ['part', 'µs per call'],
      breakdown.map((b) => [b.part, b.microseconds]),
    );
    return {
      options: o,
      target: `open-jpki req/s >= ${OCSP_TARGET.ratio} x openssl ocsp -multi 2 (POST and GET), p99 < ${OCSP_TARGET.p99Ms} ms`,
      notes,
      sanity,
      cases,
      ratios,
      p99,
      breakdown,
      ...(opensslSkipped ? { opensslSkipped } : {}),
    };
  } finally {
    for (const stop of stops.reverse())
      await stop().catch((e) => log(`ocsp: stopping a server failed: ${e}`));
    ca.cleanup();
  }
}

const STATUS_SQL =
  'select c.ca, c.not_after, r.id, r.reason, r.revoked_at from certificates c left join revocations r on r.serial = c.serial where c.serial = ?';

/** Times the parts of Authority.ocsp on the cached path (µs per call, median of 3 batches). */
async function measureParts(
  authority: Authority,
  dir: string,
  serials: string[],
  requests: Buffer[],
): Promise<{ part: string; microseconds: number }[]> {
  const n = 5000;
  const time = async (f: (i: number) => unknown) => {
    for (let i = 0; i < 1000; i++) await f(i);
    const per: number[] = [];
    for (let b = 0; b < 3; b++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await f(i);
      per.push(((performance.now() - t0) * 1000) / n);
    }
    return round(median(per), 1);
  };
  const pick = <T>(xs: T[], i: number) => xs[i % xs.length]!;
  // Fill the response cache first: the steady state of a responder.
  for (const r of requests) await authority.ocsp(r);
  const raw = new SQLite(dataPaths(dir).sqlite, { readonly: true });
  try {
    const stmt = raw.prepare(STATUS_SQL);
    const certIdOf = (r: Buffer) => parseOcspRequest(r).certIds[0]!.der;
    const certIds = requests.slice(0, 100).map(certIdOf);
    return [
      {
        part: 'Authority.ocsp, cached response (parse, CA match, status, cache hit)',
        microseconds: await time((i) => authority.ocsp(pick(requests, i))),
      },
      {
        part: 'parseOcspRequest (strict DER walk; CertID and extensions read from it)',
        microseconds: await time((i) => parseOcspRequest(pick(requests, i))),
      },
      {
        part: 'certificateStatus (SQL compiled once, statement prepared once)',
        microseconds: await time((i) => certificateStatus(authority.store.db, pick(serials, i))),
      },
      {
        part: '  the same SQL, better-sqlite3 statement prepared once, get()',
        microseconds: await time((i) => stmt.get(pick(serials, i))),
      },
      {
        part: 'no longer on the path: the same SQL, prepare() + get() per call (Kysely’s SQLite driver)',
        microseconds: await time((i) => raw.prepare(STATUS_SQL).get(pick(serials, i))),
      },
      {
        part: 'no longer on the path: asn1-schema parse of the CertID (AsnParser.parse(CertID))',
        microseconds: await time((i) => AsnParser.parse(pick(certIds, i), CertID)),
      },
    ];
  } finally {
    raw.close();
  }
}

/**
 * The child: `node bin/bench.js ocsp-server <dataDir> [workers]`. Prints {"port": n} once listening.
 * With workers > 1, a node:cluster primary that forks that many server processes sharing the
 * listening socket, each with its own connection to the same store.
 */
export async function ocspServerChild(dir: string, workers = 1): Promise<void> {
  if (workers > 1 && cluster.isPrimary) {
    // The workers accept connections themselves from the shared socket. With node's default
    // round-robin the primary accepts every connection and hands it to a worker over IPC, which
    // costs more than the answer when each request has its own connection.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    let printed = false;
    cluster.on('listening', (_worker, address) => {
      if (printed) return;
      printed = true;
      process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
    });
    for (let i = 0; i < workers; i++) cluster.fork();
    const stop = () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.stdin.on('end', stop);
    process.stdin.resume();
    return;
  }
  const authority = await Authority.open(dir, { env: ENV });
  const app = await buildServer({
    authority,
    operatorToken: createHash('sha256').update(randomBytes(32)).digest('hex'),
    logger: false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as { port: number };
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await app.close();
    await authority.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (cluster.isWorker) {
    // The primary exits as it signals the workers: closing the shared socket then has no one to tell (EPIPE).
    cluster.worker?.on('error', () => undefined);
    return; // the primary prints the port and watches the parent
  }
  // Also stop when the parent goes away (its end of our stdin closes).
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}
