import { existsSync, readFileSync } from 'node:fs';
import { Authority } from '../authority/authority.ts';
import { dataPaths } from '../authority/config.ts';
import { encodePem } from '../core/pem.ts';
import { OutboxProcessor } from '../register/outbox.ts';
import { jstDay } from '../verifiers/calendar.ts';
import { buildServer } from './server.ts';

export interface ServeOptions {
  dataDir: string;
  port: number;
  host: string;
  /** Create the authority first when the data directory has none (`npm start` on a fresh machine). */
  init?: boolean;
  /**
   * 'all' (default): the whole authority. 'ocsp': an OCSP responder only (docs/ocsp.md): no CRL
   * schedule, no outbox, no batch signing of OCSP responses.
   */
  role?: 'all' | 'ocsp';
  /**
   * Serve HTTPS with this certificate (chain) and key, PEM files. Client certificates are requested
   * and checked against `clientCa` (default: the authority's verifier CA), but the handshake does not
   * reject a missing or unknown one: the verifier access plugin answers 401 with a reason instead.
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

/** node:https options for `jpki serve --tls-cert … --tls-key … [--client-ca …]`. */
export function tlsOptions(authority: Authority, tls: NonNullable<ServeOptions['tls']>) {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(
        `cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  };
  const ca = tls.clientCaFile
    ? read(tls.clientCaFile, 'client CA')
    : authority.hasVerifierCa
      ? encodePem('CERTIFICATE', authority.certificate('verifier'))
      : undefined;
  return {
    cert: read(tls.certFile, 'TLS certificate'),
    key: read(tls.keyFile, 'TLS key'),
    ...(ca ? { ca } : {}),
    requestCert: true,
    rejectUnauthorized: false,
  };
}

/** How often `jpki serve` looks for OCSP responses to sign ahead (missing, or within the refresh margin). */
export const PRESIGN_INTERVAL_MS = 5 * 60_000;

/**
 * Runs the authority as a service: opens it (creating it if asked), makes sure every CA has a
 * current CRL, keeps CRLs fresh on a schedule, and serves HTTP until SIGINT/SIGTERM.
 */
export async function serve(o: ServeOptions): Promise<void> {
  const paths = dataPaths(o.dataDir);
  if (o.init && !existsSync(paths.config)) {
    await Authority.init({
      dataDir: o.dataDir,
      baseUrl: `http://${hostForUrl(o.host)}:${o.port}`,
      revocationAccess: 'verifiers',
    });
    process.stderr.write(`created a new authority in ${o.dataDir}\n`);
  }
  const authority = await Authority.open(o.dataDir);
  const operatorToken =
    process.env.JPKI_OPERATOR_TOKEN ??
    (existsSync(paths.operatorTokenFile) ? readFileSync(paths.operatorTokenFile, 'utf8').trim() : '');
  if (operatorToken.length < 16)
    throw new Error('no operator token: set JPKI_OPERATOR_TOKEN (16+ characters)');

  const responderOnly = o.role === 'ocsp';
  if (!responderOnly) await refreshCrls(authority);
  // One CRL refresh at a time: at national scale a tick that rebuilds many partitions can outlast a minute.
  let refreshing = false;
  const timer = setInterval(() => {
    if (responderOnly || refreshing) return;
    refreshing = true;
    refreshCrls(authority)
      .catch((e) => app.log.error({ err: e }, 'CRL refresh failed'))
      .finally(() => {
        refreshing = false;
      });
  }, 60_000);
  timer.unref();

  const app = await buildServer({
    authority,
    operatorToken,
    ...(o.tls ? { https: tlsOptions(authority, o.tls) } : {}),
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
  });
  // Register events revoke certificates through the outbox: process it while serving.
  const outbox = new OutboxProcessor(authority, {
    onError: (e) => app.log.error({ err: e }, 'outbox processing failed'),
  });
  if (!responderOnly) outbox.start();
  // OCSP responses signed ahead, in the background: a large store takes hours the first time.
  const presign = responderOnly ? undefined : schedulePresign(authority, app.log);
  await app.listen({ port: o.port, host: o.host });
  const base = `${o.tls ? 'https' : 'http'}://${hostForUrl(o.host)}:${o.port}`;
  const today = jstDay(Date.now());
  const inAYear = `${Number(today.slice(0, 4)) + 1}${today.slice(4)}`;
  process.stdout.write(
    [
      responderOnly
        ? `open-jpki OCSP responder listening on ${base}`
        : `open-jpki authority listening on ${base}`,
      `  OCSP:            ${base}/ocsp`,
      `  CRLs:            ${base}/crl/sign.crl  ${base}/crl/auth.crl  ${base}/crl/root.crl (deltas: sign-delta.crl, auth-delta.crl)`,
      ...(authority.crlPartitions > 1
        ? [
            `                   partitions: ${base}/crl/sign-p0.crl … sign-p${authority.crlPartitions - 1}.crl, auth-p0.crl …, each with -delta.crl`,
          ]
        : []),
      `  CA certificates: ${base}/ca/root.pem  ${base}/ca/sign.pem  ${base}/ca/auth.pem`,
      `  counter page:    ${base}/counter/  (clerks, supervisors)`,
      `  API docs:        ${base}/docs`,
      `  health/metrics:  ${base}/healthz  ${base}/metrics`,
      `  operator token:  ${process.env.JPKI_OPERATOR_TOKEN ? '(from JPKI_OPERATOR_TOKEN)' : paths.operatorTokenFile}`,
      `  URLs written into certificates start with ${authority.config.baseUrl}`,
      ...(authority.config.revocationAccess === 'verifiers'
        ? [
            '  OCSP, CRLs and /verify answer authorised verifiers only (docs/verifiers.md). A first verifier and its key:',
            `    npx jpki verifier add --data ${o.dataDir} --name "Example City" --category administrative-body --from ${today} --to ${inAYear}`,
            `    npx jpki verifier key --data ${o.dataDir} --verifier 1     (prints the key once; send it as Authorization: Bearer <key>)`,
          ]
        : ['  OCSP, CRLs and /verify are open to anyone (revocationAccess "public" in authority.json)']),
      '',
    ].join('\n'),
  );
  const stop = async () => {
    clearInterval(timer);
    await presign?.stop();
    await outbox.stop();
    await app.close();
    await authority.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/**
 * Builds a full CRL for each CA and each CRL partition when there is none or the current one is
 * within a quarter of its life of nextUpdate, and a delta CRL on the same rule for the issuing CAs
 * and their partitions, or as soon as the series has a revocation its delta does not list
 * (Authority.refreshCrls).
 */
export async function refreshCrls(authority: Authority, now = Date.now()): Promise<void> {
  await authority.refreshCrls(now);
}

/**
 * Runs the batch signer of OCSP responses now and then every PRESIGN_INTERVAL_MS (never two at once).
 * stop() aborts a run in progress after its current page.
 */
export function schedulePresign(
  authority: Authority,
  log: { info(o: object, m: string): void; error(o: object, m: string): void },
  intervalMs = PRESIGN_INTERVAL_MS,
): { stop(): Promise<void> } {
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const run = () => {
    if (running || abort.signal.aborted) return;
    running = authority.ocspResponses
      .presign({ signal: abort.signal })
      .then((r) => {
        if (r.signed > 0) log.info({ presign: r }, 'OCSP responses signed ahead');
      })
      .catch((err) => log.error({ err }, 'signing OCSP responses ahead failed'))
      .finally(() => {
        running = undefined;
      });
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      abort.abort();
      await running;
    },
  };
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
