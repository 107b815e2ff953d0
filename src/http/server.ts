import { createHash, timingSafeEqual } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { type Authority, AuthorityError } from '../authority/authority.ts';
import { CA_CERTIFICATE_IDS, type CaCertificateId } from '../authority/config.ts';
import { ReasonError, type RevocationReason, reasonName, revocationReasons } from '../authority/reasons.ts';
import { BasicFactsError, parseSex } from '../core/basic-facts.ts';
import { CsrError } from '../core/csr.ts';
import { encodePem } from '../core/pem.ts';
import { type CaId, type CrlIssuerId, ProfileError } from '../core/profiles.ts';
import { SerialFormatError } from '../core/serial.ts';
import { crlDer, UnknownCertificateError } from '../store/certificates.ts';
import { RevocationSource } from '../verifier/revocation-source.ts';
import { type ValidationReport, verifySignature } from '../verifier/verify-signature.ts';
import { applicationRoutes } from './application-routes.ts';
import { counterRoutes } from './counter-routes.ts';
import { type VerifierAccessOptions, verifierAccess } from './verifier-access.ts';
import { verifierRoutes } from './verifier-routes.ts';
import { counterWeb } from './web.ts';

export interface ServerOptions {
  authority: Authority;
  /** Bearer token of operators (issuance, revocation, CRL generation). */
  operatorToken: string;
  logger?: boolean | object;
  /** Verifier access to OCSP, CRLs and /verify (docs/verifiers.md); defaults from authority.json and verifiers.json. */
  verifiers?: Omit<VerifierAccessOptions, 'authority'>;
  /** TLS (node:https options); with requestCert, verifiers may authenticate with client certificates. */
  https?: import('node:https').ServerOptions;
  /** Directory of the built counter page served at /counter/ (default web/dist). */
  webRoot?: string;
}

/** OCSP requests are small; RFC 5019 clients send one CertID. Anything bigger is refused before parsing. */
export const MAX_OCSP_REQUEST_BYTES = 4096;
const MAX_API_BODY_BYTES = 64 * 1024;
/** POST /verify carries a signed document (base64 in JSON): a few MiB. */
export const MAX_VERIFY_BODY_BYTES = 16 * 1024 * 1024;

const CA_FILES: Record<string, { id: CaCertificateId; pem: boolean }> = {};
for (const id of CA_CERTIFICATE_IDS) {
  CA_FILES[`${id}.der`] = { id, pem: false };
  CA_FILES[`${id}.crt`] = { id, pem: false };
  CA_FILES[`${id}.pem`] = { id, pem: true };
}

const CRL_FILES: Record<string, { ca: CrlIssuerId; kind: 'full' | 'delta' }> = {};
for (const ca of ['root', 'sign', 'auth'] as const) {
  CRL_FILES[`${ca}.crl`] = { ca, kind: 'full' };
  CRL_FILES[`${ca}-delta.crl`] = { ca, kind: 'delta' };
}
// The verifier CA's CRL (verifiers' client certificates): full CRLs only, like the root's.
CRL_FILES['verifier.crl'] = { ca: 'verifier', kind: 'full' };

/** A CRL file name: a CA's complete CRLs (`sign.crl`) or a partition's (`sign-p17-delta.crl`). */
function crlFile(
  file: string,
  partitions: number,
): { ca: CrlIssuerId; kind: 'full' | 'delta'; partition?: number } | undefined {
  const whole = CRL_FILES[file];
  if (whole) return whole;
  const m = /^(sign|auth)-p(0|[1-9][0-9]{0,3})(-delta)?\.crl$/.exec(file);
  if (!m) return undefined;
  const partition = Number(m[2]);
  if (partition >= partitions || partitions === 1) return undefined;
  return { ca: m[1] as CaId, kind: m[3] ? 'delta' : 'full', partition };
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;

const certificateSchema = {
  type: 'object',
  properties: {
    serial: { type: 'string' },
    kind: { type: 'string' },
    subject: { type: 'string' },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    pem: { type: 'string' },
    status: { type: 'string', enum: ['valid', 'revoked', 'expired'] },
    revocation: {
      type: 'object',
      nullable: true,
      properties: { reason: { type: 'string' }, revokedAt: { type: 'string', format: 'date-time' } },
    },
  },
} as const;

/**
 * The authority's HTTP face: the public publication points (CA certificates, CRLs, OCSP) and the
 * operators' API. Every route has a JSON schema; OpenAPI is at /docs.
 */
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { authority } = opts;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: MAX_API_BODY_BYTES,
    // The schemas say additionalProperties: false; refuse unknown fields instead of dropping them silently.
    ajv: { customOptions: { removeAdditional: false } },
    ...(opts.https ? ({ https: opts.https } as object) : {}),
  });

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'jpki_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2],
    registers: [registry],
  });
  const ocspAnswers = new Counter({
    name: 'jpki_ocsp_responses_total',
    help: 'OCSP responses by response status',
    labelNames: ['status', 'method'],
    registers: [registry],
  });
  const timeStamps = new Counter({
    name: 'jpki_timestamps_total',
    help: 'RFC 3161 responses by status',
    labelNames: ['status'],
    registers: [registry],
  });
  const issued = new Counter({
    name: 'jpki_certificates_issued_total',
    help: 'Certificates issued',
    labelNames: ['kind'],
    registers: [registry],
  });
  const revoked = new Counter({
    name: 'jpki_certificates_revoked_total',
    help: 'Revocations recorded',
    labelNames: ['reason'],
    registers: [registry],
  });

  app.addHook('onResponse', async (req, reply) => {
    httpDuration.observe(
      { route: req.routeOptions.url ?? 'unknown', method: req.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'open-jpki authority',
        version: '0.1.0',
        description: 'Public certification service for individuals: publication points and operator API',
      },
      components: {
        securitySchemes: {
          operator: { type: 'http', scheme: 'bearer' },
          verifierKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // The API takes JSON only: a text/plain body is refused with 415, not parsed as a string.
  app.removeContentTypeParser('text/plain');
  // RFC 3161 time-stamp queries arrive as raw DER.
  app.addContentTypeParser(
    'application/timestamp-query',
    { parseAs: 'buffer', bodyLimit: MAX_OCSP_REQUEST_BYTES },
    (_req, body, done) => done(null, body),
  );
  // OCSP requests arrive as raw DER.
  app.addContentTypeParser(
    'application/ocsp-request',
    { parseAs: 'buffer', bodyLimit: MAX_OCSP_REQUEST_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { statusCode?: number; code?: string; validation?: unknown };
    const status = clientStatus(e);
    if (status >= 500) req.log.error({ err: e }, 'request failed');
    // Our own errors keep their names (CsrError, ...); Fastify's and ajv's generic ones get a status name.
    const generic = !e.name || e.name === 'Error' || e.name === 'FastifyError' || !!e.validation;
    const name =
      status === 413
        ? 'PayloadTooLarge'
        : status === 415
          ? 'UnsupportedMediaType'
          : status >= 500
            ? 'InternalError'
            : generic
              ? 'BadRequest'
              : e.name;
    const message = status >= 500 ? 'internal error' : e.message;
    if (req.url.startsWith('/ocsp')) {
      // OCSP clients expect an OCSP response even for errors they caused.
      return reply
        .code(Math.min(status, 500))
        .type('application/ocsp-response')
        .send(Buffer.from([0x30, 0x03, 0x0a, 0x01, status >= 500 ? 2 : 1]));
    }
    return reply.code(status).send({ error: name, message });
  });

  // Before the routes: its hooks guard OCSP, CRLs and /verify, and meter them.
  await app.register(verifierAccess, { ...opts.verifiers, authority });

  app.get(
    '/healthz',
    {
      schema: {
        description: 'Liveness and store reachability',
        response: {
          200: { type: 'object', properties: { status: { type: 'string' }, store: { type: 'string' } } },
        },
      },
    },
    async () => {
      await authority.ping();
      return { status: 'ok', store: authority.store.dialect };
    },
  );

  app.get('/metrics', { schema: { description: 'Prometheus metrics', hide: true } }, async (_req, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });

  app.get<{ Params: { file: string } }>(
    '/ca/:file',
    {
      schema: {
        description:
          'CA certificates (the CA issuers URLs of AIA): root, sign, auth, sign-ocsp, auth-ocsp as .der/.crt or .pem',
        params: {
          type: 'object',
          properties: { file: { type: 'string', maxLength: 32 } },
          required: ['file'],
        },
      },
    },
    async (req, reply) => {
      const f = CA_FILES[req.params.file];
      if (!f || (f.id === 'verifier' && !authority.hasVerifierCa))
        return reply.code(404).send({ error: 'NotFound', message: `no CA certificate ${req.params.file}` });
      const der = authority.certificate(f.id);
      reply.header('cache-control', 'public, max-age=86400');
      reply.header('etag', `"${createHash('sha256').update(der).digest('hex').slice(0, 32)}"`);
      if (f.pem) return reply.type('application/x-pem-file').send(encodePem('CERTIFICATE', der));
      return reply.type('application/pkix-cert').send(der);
    },
  );

  app.get<{ Params: { file: string } }>(
    '/crl/:file',
    {
      schema: {
        description:
          'The latest full or delta CRL of a CA (DER), e.g. sign.crl, sign-delta.crl, or of a CRL partition: sign-p17.crl, sign-p17-delta.crl',
        params: {
          type: 'object',
          properties: { file: { type: 'string', maxLength: 32 } },
          required: ['file'],
        },
      },
    },
    async (req, reply) => {
      const f = crlFile(req.params.file, authority.crlPartitions);
      if (!f) return reply.code(404).send({ error: 'NotFound', message: `no CRL ${req.params.file}` });
      const crl = await authority.currentCrl(f.ca, f.kind, f.partition);
      if (!crl)
        return reply.code(404).send({
          error: 'NotFound',
          message: `no ${f.kind} CRL of ${f.ca}${f.partition !== undefined ? ` partition ${f.partition}` : ''} has been built yet`,
        });
      const etag = `"${crl.sha256}"`;
      const maxAge = Math.max(0, Math.floor((crl.next_update - Date.now()) / 1000));
      reply.header('etag', etag);
      reply.header('last-modified', new Date(crl.this_update).toUTCString());
      reply.header('expires', new Date(crl.next_update).toUTCString());
      reply.header('cache-control', `public, max-age=${maxAge}, no-transform, must-revalidate`);
      const inm = req.headers['if-none-match'];
      if (inm?.split(',').some((t) => t.trim() === etag)) return reply.code(304).send();
      return reply.type('application/pkix-crl').send(crl.der);
    },
  );

  // The OCSP answers are the hot path of the server. A signed response is reused while the store
  // says the same thing (Authority.ocsp), so what HTTP adds to it (ETag, Last-Modified, Expires)
  // is worked out once per response, not per request.
  const ocspHttp = new WeakMap<Buffer, { etag: string; lastModified: string; expires: string }>();
  const ocspAnswerCounters = new Map<string, { inc(): void }>();
  const countOcspAnswer = (status: string, method: string) => {
    const key = `${status} ${method}`;
    let counter = ocspAnswerCounters.get(key);
    if (!counter) {
      counter = ocspAnswers.labels({ status, method });
      ocspAnswerCounters.set(key, counter);
    }
    counter.inc();
  };

  async function answerOcsp(der: Buffer, method: 'GET' | 'POST', req: FastifyRequest, reply: FastifyReply) {
    // An authorised verifier gets answers about the certificate kinds it is authorised for only.
    const ans = await authority.ocsp(der, req.verifier ? { cas: req.verifier.kinds } : {});
    countOcspAnswer(ans.status, method);
    reply.type('application/ocsp-response');
    if (method === 'GET' && ans.cacheable && ans.producedAt && ans.nextUpdate) {
      const maxAge = Math.max(
        0,
        Math.min(
          authority.config.ocsp.httpMaxAgeSeconds,
          Math.floor((ans.nextUpdate.getTime() - Date.now()) / 1000),
        ),
      );
      let http = ocspHttp.get(ans.der);
      if (!http) {
        http = {
          etag: `"${createHash('sha1').update(ans.der).digest('hex')}"`,
          lastModified: ans.producedAt.toUTCString(),
          expires: ans.nextUpdate.toUTCString(),
        };
        ocspHttp.set(ans.der, http);
      }
      reply.header('cache-control', `public, max-age=${maxAge}, no-transform, must-revalidate`);
      reply.header('last-modified', http.lastModified);
      reply.header('expires', http.expires);
      reply.header('etag', http.etag);
    } else {
      reply.header('cache-control', 'no-store');
    }
    return reply.send(ans.der);
  }

  app.post(
    '/ocsp',
    {
      // No per-request log lines on the hot path (two pino lines cost more than the answer); errors still log.
      logLevel: 'warn',
      schema: {
        description:
          'OCSP (RFC 6960) over POST: body is a DER OCSPRequest, Content-Type application/ocsp-request',
        consumes: ['application/ocsp-request'],
      },
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body))
        return reply
          .code(415)
          .type('application/ocsp-response')
          .send(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]));
      return answerOcsp(req.body, 'POST', req, reply);
    },
  );

  app.get<{ Params: { '*': string } }>(
    '/ocsp/*',
    {
      logLevel: 'warn',
      schema: {
        description: 'OCSP over GET (RFC 5019): /ocsp/{url-encoded base64 of the DER OCSPRequest}',
      },
    },
    async (req, reply) => {
      const raw = req.params['*'];
      let b64: string;
      try {
        b64 = decodeURIComponent(raw);
      } catch {
        b64 = '';
      }
      const der =
        /^[A-Za-z0-9+/=_-]+$/.test(b64) && b64.length <= (MAX_OCSP_REQUEST_BYTES * 4) / 3 + 4
          ? Buffer.from(b64, 'base64')
          : Buffer.alloc(0);
      return answerOcsp(der, 'GET', req, reply);
    },
  );

  app.post(
    '/tsa',
    {
      schema: {
        description:
          'RFC 3161 time-stamping authority: body is a DER TimeStampReq, Content-Type application/timestamp-query; answers application/timestamp-reply',
        consumes: ['application/timestamp-query'],
      },
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body))
        return reply
          .code(415)
          .send({ error: 'UnsupportedMediaType', message: 'send application/timestamp-query' });
      const r = await authority.timeStamp(req.body);
      timeStamps.inc({ status: r.status });
      return reply.type('application/timestamp-reply').header('cache-control', 'no-store').send(r.der);
    },
  );

  // ---- signature verification ----
  // Access control comes with a later issue (only registered relying parties may verify); until
  // then POST /verify is open like the publication points.
  //
  // Trust: the authority's own root; its issuing CAs (and TSA) as intermediates. Revocation: the
  // authority's current CRLs, from one RevocationSource per server that is replaced when a new CRL
  // is published. Which CRLs are current is asked of the store for every request (six indexed
  // lookups of a few columns; measured ~0.5 ms on SQLite and ~1 ms on PostgreSQL, against ~3 ms for
  // the whole request), and concurrent requests share one such look, so a CRL published a moment
  // ago already counts; the DER is read and parsed only when a CRL changed (a big CRL costs far more
  // to read and hash than the look). The server never fetches (online: false): every certificate
  // it accepts is the authority's own.
  const verifyTrust = [authority.certificate('root')];
  const verifyUntrusted = [authority.certificate('sign'), authority.certificate('auth')];
  try {
    verifyUntrusted.push(authority.certificate('tsa'));
  } catch (e) {
    if (!(e instanceof AuthorityError)) throw e; // an authority from before the TSA
  }
  const CRL_SET = [
    ['root', 'full'],
    ['root', 'delta'],
    ['sign', 'full'],
    ['sign', 'delta'],
    ['auth', 'full'],
    ['auth', 'delta'],
  ] as const;
  let crlSource: { key: string; source: RevocationSource } | undefined;
  let crlCheck: Promise<RevocationSource> | undefined;
  /** The source with the authority's current CRLs; concurrent requests share one look at the store. */
  function authorityCrls(): Promise<RevocationSource> {
    crlCheck ??= currentCrlSource().finally(() => {
      crlCheck = undefined;
    });
    return crlCheck;
  }
  async function currentCrlSource(): Promise<RevocationSource> {
    const current = await Promise.all(CRL_SET.map(([ca, kind]) => authority.currentCrlInfo(ca, kind)));
    const key = current.map((c) => (c ? `${c.ca}#${c.number}` : '-')).join(',');
    if (crlSource?.key === key) return crlSource.source;
    const source = new RevocationSource({ online: false });
    for (const c of current) {
      const der = c && (await crlDer(authority.store.db, c.ca, c.number));
      if (der) source.addCrl(der);
    }
    crlSource = { key, source };
    return source;
  }

  app.post<{
    Body: { signature: string; content?: string; crls?: string[]; at?: string; includeContent?: boolean };
  }>(
    '/verify',
    {
      bodyLimit: MAX_VERIFY_BODY_BYTES,
      schema: {
        description:
          'Verify a signed document (CMS/CAdES .p7s or signed XML/XAdES) against this authority: the signature, its time stamps, the signer’s certificate path to the root and its revocation (the authority’s current CRLs). Bad input gets a FORMAT_FAILURE report (200); only a body that is not the JSON below gets 400.',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['signature'],
          properties: {
            signature: {
              type: 'string',
              description: 'base64 of the .p7s (DER or PEM) or of the signed XML bytes',
            },
            content: { type: 'string', description: 'base64 of the content of a detached CMS signature' },
            crls: {
              type: 'array',
              maxItems: 16,
              items: { type: 'string' },
              description: 'base64 CRLs (DER or PEM) to use besides the authority’s own',
            },
            at: { type: 'string', format: 'date-time', description: 'validation time (default now)' },
            includeContent: {
              type: 'boolean',
              description: 'return the signed content (base64) in signedContent',
            },
          },
        },
        response: { 200: verifyReportSchema, 400: errorSchema, 413: errorSchema },
      },
    },
    async (req) => {
      const b = req.body;
      const at = b.at ? new Date(b.at) : new Date();
      const decoded: { signature?: Buffer; content?: Buffer; crls: Buffer[] } = { crls: [] };
      const bad: string[] = [];
      decoded.signature = fromBase64(b.signature);
      if (!decoded.signature) bad.push('signature');
      if (b.content !== undefined) {
        decoded.content = fromBase64(b.content);
        if (!decoded.content) bad.push('content');
      }
      for (const [i, c] of (b.crls ?? []).entries()) {
        const der = fromBase64(c);
        if (der) decoded.crls.push(der);
        else bad.push(`crls[${i}]`);
      }
      let report: ValidationReport;
      if (bad.length) {
        // Not base64: the verifier's own answer to unreadable input, with the reason.
        report = await verifySignature({ signature: Buffer.alloc(0), trust: verifyTrust, at });
        report.messages = [`${bad.join(', ')}: not base64`];
      } else {
        report = await verifySignature({
          signature: decoded.signature!,
          content: decoded.content,
          trust: verifyTrust,
          untrusted: verifyUntrusted,
          crls: decoded.crls,
          at,
          source: await authorityCrls(),
        });
      }
      const { signedContent, ...rest } = report;
      return b.includeContent && signedContent
        ? { ...rest, signedContent: signedContent.toString('base64') }
        : rest;
    },
  );

  await app.register(counterRoutes, { authority });
  await app.register(verifierRoutes, { authority, operatorToken: opts.operatorToken });
  await app.register(applicationRoutes, { authority, operatorToken: opts.operatorToken });
  await app.register(counterWeb, { root: opts.webRoot });

  // ---- operators' API ----
  const expected = Buffer.from(opts.operatorToken);
  async function operator(req: FastifyRequest, reply: FastifyReply) {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m)
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'Unauthorized', message: 'operator token required' });
    const given = Buffer.from(m[1]!);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return reply.code(403).send({ error: 'Forbidden', message: 'invalid operator token' });
  }

  const security = [{ operator: [] }];
  // Routes whose body is optional: a bare POST (curl -X POST) means {}.
  const optionalBody = async (req: FastifyRequest) => {
    req.body ??= {};
  };

  app.post<{
    Body: {
      kind: 'sign' | 'auth';
      csr: string;
      facts?: { name: string; dateOfBirth: string | null; sex: string; address: string };
      counterId?: string;
    };
  }>(
    '/api/v1/certificates',
    {
      onRequest: operator,
      schema: {
        description: 'Issue a certificate from a PKCS#10 request (PEM)',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'csr'],
          properties: {
            kind: { type: 'string', enum: ['sign', 'auth'] },
            csr: { type: 'string', maxLength: 32768 },
            counterId: { type: 'string', pattern: '^[A-Za-z0-9]{1,10}$' },
            facts: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'dateOfBirth', 'sex', 'address'],
              properties: {
                name: { type: 'string', minLength: 1, maxLength: 200 },
                dateOfBirth: { type: ['string', 'null'], pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
                sex: { type: 'string', enum: ['M', 'F', 'U', 'male', 'female', 'unknown'] },
                address: { type: 'string', minLength: 1, maxLength: 400 },
              },
            },
          },
        },
        response: { 201: certificateSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.kind === 'sign' && !b.facts)
        return reply.code(400).send({ error: 'BadRequest', message: 'a signature certificate needs facts' });
      if (b.kind === 'auth' && b.facts)
        return reply
          .code(400)
          .send({ error: 'BadRequest', message: 'an authentication certificate carries no personal data' });
      const cert = await authority.issue({
        kind: b.kind,
        csr: b.csr,
        counterId: b.counterId,
        facts: b.facts ? { ...b.facts, sex: parseSex(b.facts.sex) } : undefined,
      });
      issued.inc({ kind: b.kind });
      return reply.code(201).send({
        serial: cert.serial,
        kind: cert.kind,
        subject: cert.subject,
        notBefore: cert.notBefore.toISOString(),
        notAfter: cert.notAfter.toISOString(),
        pem: cert.pem,
        status: 'valid',
        revocation: null,
      });
    },
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/certificates/:serial',
    {
      onRequest: operator,
      schema: {
        description: 'A certificate and its status',
        security,
        params: {
          type: 'object',
          properties: { serial: { type: 'string', maxLength: 64 } },
          required: ['serial'],
        },
        response: { 200: certificateSchema, 404: errorSchema },
      },
    },
    async (req, reply) => {
      const row = await authority.findCertificate(req.params.serial);
      if (!row) return reply.code(404).send({ error: 'NotFound', message: 'no such certificate' });
      const rev = await authority.findRevocation(row.serial);
      return {
        serial: row.serial,
        kind: row.profile,
        subject: row.subject,
        notBefore: new Date(row.not_before).toISOString(),
        notAfter: new Date(row.not_after).toISOString(),
        pem: encodePem('CERTIFICATE', row.der),
        status: rev ? 'revoked' : row.not_after < Date.now() ? 'expired' : 'valid',
        revocation: rev
          ? { reason: reasonName(rev.reason), revokedAt: new Date(rev.revoked_at).toISOString() }
          : null,
      };
    },
  );

  app.post<{ Params: { serial: string }; Body: { reason?: RevocationReason; revokedAt?: string } }>(
    '/api/v1/certificates/:serial/revocation',
    {
      onRequest: operator,
      preValidation: optionalBody,
      schema: {
        description: 'Revoke a certificate. Revoking again keeps the first record (created: false).',
        security,
        params: {
          type: 'object',
          properties: { serial: { type: 'string', maxLength: 64 } },
          required: ['serial'],
        },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            reason: { type: 'string', enum: [...revocationReasons()] },
            revokedAt: { type: 'string', format: 'date-time' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              serial: { type: 'string' },
              reason: { type: 'string' },
              revokedAt: { type: 'string', format: 'date-time' },
              created: { type: 'boolean' },
            },
          },
          404: errorSchema,
        },
      },
    },
    async (req) => {
      const body = req.body ?? {};
      const r = await authority.revoke(
        req.params.serial,
        body.reason ?? 'unspecified',
        body.revokedAt ? new Date(body.revokedAt) : undefined,
      );
      if (r.created) revoked.inc({ reason: body.reason ?? 'unspecified' });
      return {
        serial: r.revocation.serial,
        reason: reasonName(r.revocation.reason),
        revokedAt: new Date(r.revocation.revoked_at).toISOString(),
        created: r.created,
      };
    },
  );

  app.post<{ Params: { ca: CrlIssuerId }; Body: { delta?: boolean; partition?: number } }>(
    '/api/v1/crls/:ca',
    {
      onRequest: operator,
      preValidation: optionalBody,
      schema: {
        description:
          'Build and publish a new full or delta CRL now: of the CA, or of one of its CRL partitions (sign and auth, when the authority partitions its CRLs)',
        security,
        params: {
          type: 'object',
          properties: { ca: { type: 'string', enum: ['root', 'sign', 'auth', 'verifier'] } },
          required: ['ca'],
        },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { delta: { type: 'boolean' }, partition: { type: 'integer', minimum: 0 } },
        },
        response: {
          201: {
            type: 'object',
            properties: {
              ca: { type: 'string' },
              partition: { type: 'integer' },
              url: { type: 'string' },
              number: { type: 'integer' },
              kind: { type: 'string' },
              entries: { type: 'integer' },
              thisUpdate: { type: 'string', format: 'date-time' },
              nextUpdate: { type: 'string', format: 'date-time' },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const partition = req.body?.partition;
      // No such partition (or no full CRL to base a delta on) is an AuthorityError: 400.
      const r = await authority.generateCrl(req.params.ca, {
        delta: !!req.body?.delta,
        ...(partition !== undefined ? { partition } : {}),
      });
      return reply.code(201).send({
        ca: r.ca,
        ...(r.partition !== undefined ? { partition: r.partition } : {}),
        url: `${authority.config.baseUrl}/crl/${r.scope}${r.kind === 'delta' ? '-delta' : ''}.crl`,
        number: r.number,
        kind: r.kind,
        entries: r.entries,
        thisUpdate: r.thisUpdate.toISOString(),
        nextUpdate: r.nextUpdate.toISOString(),
      });
    },
  );

  return app;
}

/** Strict base64 (whitespace allowed between characters, as in wrapped text), or undefined. */
function fromBase64(s: string): Buffer | undefined {
  const t = s.replace(/[\t\n\r ]+/g, '');
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

const dateTime = { type: 'string', format: 'date-time' } as const;

/** The validation report of POST /verify (src/verifier/verify-signature.ts), signedContent as base64. */
const verifyReportSchema = {
  type: 'object',
  required: [
    'indication',
    'format',
    'validationTime',
    'certificateChain',
    'timestamps',
    'revocation',
    'summary',
    'messages',
  ],
  properties: {
    indication: { type: 'string', enum: ['TOTAL_PASSED', 'TOTAL_FAILED', 'INDETERMINATE'] },
    subIndication: { type: 'string', description: 'ETSI EN 319 102-1 sub-indication' },
    format: {
      type: 'string',
      enum: ['CAdES-BES', 'CAdES-T', 'XAdES-BES', 'XAdES-T', 'CMS', 'XML-DSig', 'unknown'],
    },
    signingTime: { ...dateTime, description: 'the time the signer claims: not proof' },
    timestampTime: { ...dateTime, description: 'the earliest valid signature time stamp' },
    validationTime: dateTime,
    longTermValidation: {
      type: 'object',
      properties: {
        at: dateTime,
        reason: { type: 'string', enum: ['revoked-after-timestamp', 'expired-after-timestamp'] },
      },
    },
    signer: {
      type: 'object',
      properties: {
        subject: { type: 'string' },
        issuer: { type: 'string' },
        serial: { type: 'string' },
        notBefore: dateTime,
        notAfter: dateTime,
        kind: { type: 'string', enum: ['sign', 'auth', 'other'] },
        basicFacts: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            dateOfBirth: { type: ['string', 'null'] },
            sex: { type: 'string' },
            address: { type: 'string' },
            nameSubstitutes: { type: 'string' },
            addressSubstitutes: { type: 'string' },
          },
        },
      },
    },
    certificateChain: { type: 'array', items: { type: 'string' } },
    timestamps: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          time: { type: 'string' },
          valid: { type: 'boolean' },
          tsa: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
    revocation: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          subject: { type: 'string' },
          source: { type: 'string', enum: ['crl', 'ocsp', 'none'] },
          status: { type: 'string', enum: ['good', 'revoked', 'unknown', 'skipped'] },
          revokedAt: dateTime,
          reason: { type: 'string' },
          reasonCode: { type: 'integer' },
          crlNumber: { type: 'string' },
          deltaCrlNumber: { type: 'string' },
          thisUpdate: dateTime,
          nextUpdate: dateTime,
          producedAt: dateTime,
          problem: { type: 'string', enum: ['missing', 'stale', 'unusable'] },
          message: { type: 'string' },
        },
      },
    },
    summary: {
      type: 'object',
      properties: { ja: { type: 'string' }, en: { type: 'string' } },
      required: ['ja', 'en'],
    },
    messages: { type: 'array', items: { type: 'string' } },
    signedContent: { type: 'string', description: 'base64, with includeContent: true' },
  },
} as const;

function clientStatus(e: Error & { statusCode?: number; validation?: unknown }): number {
  if (e instanceof UnknownCertificateError) return 404;
  if (
    e instanceof CsrError ||
    e instanceof BasicFactsError ||
    e instanceof ProfileError ||
    e instanceof SerialFormatError ||
    e instanceof ReasonError ||
    e instanceof AuthorityError
  )
    return 400;
  if (e.validation) return 400;
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return e.statusCode;
  return 500;
}
