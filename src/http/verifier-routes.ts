// The verifier API (a Fastify plugin registered by buildServer after verifierAccess, whose services it
// uses): operators manage the registry, credentials, usage and statements; a verifier reads its own usage
// and statements. See docs/verifiers.md.
//
// Operators: `Authorization: Bearer <token>` with either the operator token (as the other /api/v1 operator
// routes; audited as `api:operator-token`) or a staff session of an account the role table allows
// `verifier.manage` (audited as `staff:<id>`). A verifier: its own credential (API key or client
// certificate), as on the revocation endpoints; it reaches its own data only.

import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authority } from '../authority/authority.ts';
import { CsrError } from '../core/csr.ts';
import { ProfileError } from '../core/profiles.ts';
import { ForbiddenError } from '../staff/roles.ts';
import { SessionError, StaffService } from '../staff/service.ts';
import { overviewCsv, type Statement, statementCsv, UsageAccessError } from '../verifiers/billing.ts';
import { jstMonth } from '../verifiers/calendar.ts';
import { issueVerifierCertificate, revokeVerifierCertificate } from '../verifiers/certificates.ts';
import { CertificateCredentialError } from '../verifiers/credentials.ts';
import {
  type ApiKeyInfo,
  type AuthenticatedVerifier,
  type CertificateInfo,
  type StatusChange,
  UnknownCredentialError,
  UnknownVerifierError,
  VERIFIER_CATEGORIES,
  VERIFIER_KINDS,
  VERIFIER_STATUSES,
  type Verifier,
  type VerifierActor,
  type VerifierCategory,
  VerifierExistsError,
  VerifierInputError,
  type VerifierKind,
  VerifierStateError,
  type VerifierStatus,
} from '../verifiers/registry.ts';

export interface VerifierRoutesOptions {
  authority: Authority;
  /** The operator token of the /api/v1 operator routes. */
  operatorToken: string;
  staff?: StaffService;
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

const dateTime = { type: 'string', format: 'date-time' } as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;
const day = { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' } as const;
const month = { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}$' } as const;

/** sign: revocation information of signature certificates; auth: of user-authentication certificates. */
const verifierKinds = {
  type: 'array',
  minItems: 1,
  maxItems: 2,
  uniqueItems: true,
  items: { type: 'string', enum: [...VERIFIER_KINDS] },
} as const;

const verifierSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    category: { type: 'string', enum: [...VERIFIER_CATEGORIES] },
    kinds: verifierKinds,
    contractFrom: day,
    contractTo: day,
    status: { type: 'string', enum: [...VERIFIER_STATUSES] },
    statusChangedAt: dateTime,
    createdAt: dateTime,
    createdBy: { type: 'string' },
    updatedAt: dateTime,
    updatedBy: { type: 'string' },
  },
} as const;

const credentialState = { type: 'string', enum: ['valid', 'revoked', 'expired'] } as const;
const apiKeySchema = {
  type: 'object',
  properties: {
    keyId: { type: 'string' },
    label: { type: ['string', 'null'] },
    createdAt: dateTime,
    createdBy: { type: 'string' },
    expiresAt: nullableDateTime,
    revokedAt: nullableDateTime,
    revokedBy: { type: ['string', 'null'] },
    state: credentialState,
  },
} as const;
const certificateSchema = {
  type: 'object',
  properties: {
    fingerprintSha256: { type: 'string' },
    serial: { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
    notBefore: dateTime,
    notAfter: dateTime,
    createdAt: dateTime,
    createdBy: { type: 'string' },
    revokedAt: nullableDateTime,
    revokedBy: { type: ['string', 'null'] },
    state: credentialState,
  },
} as const;
const detailsSchema = {
  type: 'object',
  properties: {
    verifier: verifierSchema,
    history: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          status: { type: 'string' },
          previousStatus: { type: ['string', 'null'] },
          reason: { type: ['string', 'null'] },
          at: dateTime,
          actor: { type: 'string' },
        },
      },
    },
    apiKeys: { type: 'array', items: apiKeySchema },
    certificates: { type: 'array', items: certificateSchema },
  },
} as const;

const countsProperties = {
  ocsp: { type: 'integer' },
  crl: { type: 'integer' },
  verification: { type: 'integer' },
} as const;
const usageSchema = {
  type: 'object',
  properties: {
    verifierId: { type: 'integer' },
    month: { type: 'string' },
    days: {
      type: 'array',
      items: { type: 'object', properties: { day: { type: 'string' }, ...countsProperties } },
    },
    total: { type: 'object', properties: countsProperties },
  },
} as const;
const tariffSchema = {
  type: 'object',
  properties: {
    monthlyBaseFeeYen: { type: 'integer' },
    ocspYen: { type: 'integer' },
    crlYen: { type: 'integer' },
    verificationYen: { type: 'integer' },
  },
} as const;
const statementSchema = {
  type: 'object',
  properties: {
    verifier: {
      type: 'object',
      properties: { id: { type: 'integer' }, name: { type: 'string' }, category: { type: 'string' } },
    },
    month: { type: 'string' },
    period: { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' } } },
    currency: { type: 'string' },
    lines: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          item: { type: 'string', enum: ['base-fee', 'ocsp', 'crl', 'verification'] },
          description: { type: 'string' },
          quantity: { type: 'integer' },
          unitPriceYen: { type: 'integer' },
          amountYen: { type: 'integer' },
        },
      },
    },
    totalYen: { type: 'integer' },
    final: { type: 'boolean', description: 'false while the month is not over' },
    generatedAt: dateTime,
    tariff: tariffSchema,
  },
} as const;
const overviewSchema = {
  type: 'object',
  properties: {
    month: { type: 'string' },
    final: { type: 'boolean' },
    verifiers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          verifierId: { type: 'integer' },
          name: { type: 'string' },
          category: { type: 'string' },
          status: { type: 'string' },
          ...countsProperties,
          amountYen: { type: 'integer' },
        },
      },
    },
    total: { type: 'object', properties: { ...countsProperties, amountYen: { type: 'integer' } } },
  },
} as const;

const idParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1 } },
  required: ['id'],
} as const;
const monthQuery = {
  type: 'object',
  properties: { month },
  additionalProperties: false,
} as const;
const formatQuery = {
  type: 'object',
  properties: { format: { type: 'string', enum: ['json', 'csv'] } },
  additionalProperties: false,
} as const;
const reasonBody = {
  type: 'object',
  properties: { reason: { type: 'string', maxLength: 500 } },
  additionalProperties: false,
} as const;

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

function verifierJson(v: Verifier) {
  return {
    ...v,
    statusChangedAt: iso(v.statusChangedAt),
    createdAt: iso(v.createdAt),
    updatedAt: iso(v.updatedAt),
  };
}
const historyJson = (h: StatusChange) => ({ ...h, at: iso(h.at) });
const apiKeyJson = (k: ApiKeyInfo) => ({
  ...k,
  createdAt: iso(k.createdAt),
  expiresAt: isoOrNull(k.expiresAt),
  revokedAt: isoOrNull(k.revokedAt),
});
const certificateJson = (c: CertificateInfo) => ({
  ...c,
  notBefore: iso(c.notBefore),
  notAfter: iso(c.notAfter),
  createdAt: iso(c.createdAt),
  revokedAt: isoOrNull(c.revokedAt),
});
const statementJson = (s: Statement) => ({ ...s, generatedAt: iso(s.generatedAt) });

/** HTTP status of an error thrown by the verifier services. */
export function verifierStatus(e: Error & { statusCode?: number; validation?: unknown }): number {
  if (e instanceof SessionError) return 401;
  if (e instanceof ForbiddenError || e instanceof UsageAccessError) return 403;
  if (e instanceof UnknownVerifierError || e instanceof UnknownCredentialError) return 404;
  if (
    e instanceof VerifierInputError ||
    e instanceof CertificateCredentialError ||
    e instanceof CsrError ||
    e instanceof ProfileError ||
    e.validation
  )
    return 400;
  if (e instanceof VerifierStateError || e instanceof VerifierExistsError) return 409;
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return e.statusCode;
  return 500;
}

function sendStatement(reply: FastifyReply, s: Statement, format: 'json' | 'csv' | undefined) {
  if (format === 'csv')
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="statement-${s.verifier.id}-${s.month}.csv"`)
      .send(statementCsv(s));
  return statementJson(s);
}

export async function verifierRoutes(app: FastifyInstance, opts: VerifierRoutesOptions): Promise<void> {
  if (!app.hasDecorator('verifiers')) throw new Error('register verifierAccess before verifierRoutes');
  const { registry, billing } = app.verifiers;
  const staff = opts.staff ?? new StaffService(opts.authority.store.db);
  const operatorToken = Buffer.from(opts.operatorToken);

  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { statusCode?: number; validation?: unknown };
    const status = verifierStatus(e);
    if (status >= 500) req.log.error({ err: e }, 'request failed');
    const generic = !e.name || e.name === 'Error' || e.name === 'FastifyError' || !!e.validation;
    const name = status >= 500 ? 'InternalError' : generic ? 'BadRequest' : e.name;
    return reply.code(status).send({ error: name, message: status >= 500 ? 'internal error' : e.message });
  });

  // ---- who is asking ----

  const operators = new WeakMap<FastifyRequest, VerifierActor>();
  async function operator(req: FastifyRequest, reply: FastifyReply) {
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(req.headers.authorization ?? '');
    if (!m)
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'Unauthorized', message: 'operator token or staff session token required (Bearer)' });
    const given = Buffer.from(m[1]!);
    if (given.length === operatorToken.length && timingSafeEqual(given, operatorToken)) {
      operators.set(req, 'api:operator-token');
      return;
    }
    try {
      operators.set(req, await staff.authenticate(m[1]!));
    } catch (e) {
      if (e instanceof SessionError)
        return reply.code(401).send({ error: 'Unauthorized', message: e.message });
      throw e;
    }
  }
  const actorOf = (req: FastifyRequest): VerifierActor => {
    const a = operators.get(req);
    if (a === undefined) throw new SessionError('invalid');
    return a;
  };

  const selves = new WeakMap<FastifyRequest, AuthenticatedVerifier>();
  async function verifierSelf(req: FastifyRequest, reply: FastifyReply) {
    const auth = await app.verifiers.identify(req);
    // X-JPKI-Refusal as on the revocation endpoints: the console tells unknown, revoked and expired keys apart.
    if (!auth.ok)
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="jpki-verifier"')
        .header('x-jpki-refusal', auth.code)
        .send({ error: 'Unauthorized', message: auth.message });
    selves.set(req, auth.verifier);
  }
  const selfOf = (req: FastifyRequest): AuthenticatedVerifier => {
    const v = selves.get(req);
    if (!v) throw new SessionError('invalid');
    return v;
  };

  const security = [{ operator: [] }];
  const byOperator = { onRequest: operator };
  const tags = ['verifiers'];

  // ---- the registry (operators) ----

  app.post<{
    Body: {
      name: string;
      category: VerifierCategory;
      kinds?: VerifierKind[];
      contractFrom: string;
      contractTo: string;
    };
  }>(
    '/api/v1/verifiers',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: 'Registers an authorised verifier (active from its contract start)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'category', 'contractFrom', 'contractTo'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            category: { type: 'string', enum: [...VERIFIER_CATEGORIES] },
            kinds: { ...verifierKinds, description: 'default: both' },
            contractFrom: day,
            contractTo: day,
          },
        },
        response: { 201: verifierSchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(verifierJson(await registry.register(req.body, actorOf(req)))),
  );

  app.get<{ Querystring: { status?: VerifierStatus } }>(
    '/api/v1/verifiers',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: 'The registered verifiers, by id',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'string', enum: [...VERIFIER_STATUSES] } },
        },
        response: {
          200: { type: 'object', properties: { verifiers: { type: 'array', items: verifierSchema } } },
          ...errors,
        },
      },
    },
    async (req) => ({
      verifiers: (await registry.list({ status: req.query.status, actor: actorOf(req) })).map(verifierJson),
    }),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/verifiers/:id',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description:
          'A verifier with its status history, API keys (never their secrets) and client certificates',
        params: idParams,
        response: { 200: detailsSchema, ...errors },
      },
    },
    async (req) => {
      const d = await registry.details(req.params.id, actorOf(req));
      return {
        verifier: verifierJson(d.verifier),
        history: d.history.map(historyJson),
        apiKeys: d.apiKeys.map(apiKeyJson),
        certificates: d.certificates.map(certificateJson),
      };
    },
  );

  app.post<{ Params: { id: number }; Body: { status: VerifierStatus; reason?: string } }>(
    '/api/v1/verifiers/:id/status',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description:
          'Suspends (status suspended, reason required), reinstates (active) or ends (ended, reason required, final) a verifier',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['status'],
          properties: { ...reasonBody.properties, status: { type: 'string', enum: [...VERIFIER_STATUSES] } },
        },
        response: { 200: verifierSchema, ...errors },
      },
    },
    async (req) => {
      const { status, reason } = req.body;
      const actor = actorOf(req);
      const v =
        status === 'suspended'
          ? await registry.suspend(req.params.id, reason ?? '', actor)
          : status === 'ended'
            ? await registry.end(req.params.id, reason ?? '', actor)
            : await registry.reinstate(req.params.id, reason, actor);
      return verifierJson(v);
    },
  );

  app.put<{ Params: { id: number }; Body: { contractFrom: string; contractTo: string } }>(
    '/api/v1/verifiers/:id/contract',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: 'Sets the contract period (first and last day in Japan, inclusive)',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['contractFrom', 'contractTo'],
          properties: { contractFrom: day, contractTo: day },
        },
        response: { 200: verifierSchema, ...errors },
      },
    },
    async (req) =>
      verifierJson(
        await registry.changeContract(
          req.params.id,
          { from: req.body.contractFrom, to: req.body.contractTo },
          actorOf(req),
        ),
      ),
  );

  app.put<{ Params: { id: number }; Body: { kinds: VerifierKind[] } }>(
    '/api/v1/verifiers/:id/kinds',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description:
          'Sets which certificates the verifier may receive revocation information of (its authorisation): sign, auth or both',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kinds'],
          properties: { kinds: verifierKinds },
        },
        response: { 200: verifierSchema, ...errors },
      },
    },
    async (req) => verifierJson(await registry.changeKinds(req.params.id, req.body.kinds, actorOf(req))),
  );

  // ---- credentials (operators) ----

  app.post<{ Params: { id: number }; Body: { label?: string; expiresAt?: string } }>(
    '/api/v1/verifiers/:id/keys',
    {
      ...byOperator,
      preValidation: async (req) => {
        req.body ??= {};
      },
      schema: {
        tags,
        security,
        description:
          'Issues an API key. The key is in this answer only: it is not stored (only its hash) and cannot be shown again. It stops working when revoked, at expiresAt, or when the contract ends.',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { label: { type: 'string', maxLength: 100 }, expiresAt: dateTime },
        },
        response: {
          201: {
            type: 'object',
            properties: {
              keyId: { type: 'string' },
              apiKey: { type: 'string' },
              expiresAt: nullableDateTime,
              validUntil: dateTime,
            },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const k = await registry.issueApiKey(
        req.params.id,
        { label: req.body.label, expiresAt: req.body.expiresAt ? Date.parse(req.body.expiresAt) : undefined },
        actorOf(req),
      );
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ ...k, expiresAt: isoOrNull(k.expiresAt), validUntil: iso(k.validUntil) });
    },
  );

  app.post<{ Params: { id: number; keyId: string } }>(
    '/api/v1/verifiers/:id/keys/:keyId/revocation',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: 'Revokes an API key at once. Revoking again answers revoked: false.',
        params: {
          type: 'object',
          required: ['id', 'keyId'],
          properties: {
            id: { type: 'integer', minimum: 1 },
            keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
          },
        },
        response: { 200: { type: 'object', properties: { revoked: { type: 'boolean' } } }, ...errors },
      },
    },
    async (req) => registry.revokeApiKey(req.params.id, req.params.keyId, actorOf(req)),
  );

  app.post<{ Params: { id: number }; Body: { certificate?: string; csr?: string } }>(
    '/api/v1/verifiers/:id/certificates',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description:
          "A client certificate for mTLS: `certificate` (PEM) registers one issued by the verifier CA (clientCa; no CA, clientAuth, valid); `csr` (PKCS#10 PEM) has the authority's verifier CA issue one and registers it in the same transaction, and the answer carries it as `pem`.",
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          properties: {
            certificate: { type: 'string', maxLength: 16384 },
            csr: { type: 'string', maxLength: 16384 },
          },
        },
        response: {
          201: {
            ...certificateSchema,
            properties: { ...certificateSchema.properties, pem: { type: 'string' } },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      if (req.body.csr !== undefined) {
        const { issued, registered } = await issueVerifierCertificate(
          opts.authority,
          registry,
          req.params.id,
          req.body.csr,
          actorOf(req),
        );
        return reply.code(201).send({ ...certificateJson(registered), pem: issued.pem });
      }
      return reply
        .code(201)
        .send(
          certificateJson(
            await registry.registerCertificate(req.params.id, req.body.certificate ?? '', actorOf(req)),
          ),
        );
    },
  );

  app.post<{ Params: { id: number; fingerprint: string } }>(
    '/api/v1/verifiers/:id/certificates/:fingerprint/revocation',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: 'Revokes a registered client certificate (by its SHA-256 fingerprint, hex) at once',
        params: {
          type: 'object',
          required: ['id', 'fingerprint'],
          properties: {
            id: { type: 'integer', minimum: 1 },
            fingerprint: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
          },
        },
        response: { 200: { type: 'object', properties: { revoked: { type: 'boolean' } } }, ...errors },
      },
    },
    async (req) =>
      revokeVerifierCertificate(
        opts.authority,
        registry,
        req.params.id,
        req.params.fingerprint,
        actorOf(req),
      ),
  );

  // ---- usage and statements (operators) ----

  app.get<{ Params: { id: number }; Querystring: { month?: string } }>(
    '/api/v1/verifiers/:id/usage',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: "A verifier's daily usage in a month (default: this month, JST)",
        params: idParams,
        querystring: monthQuery,
        response: { 200: usageSchema, ...errors },
      },
    },
    async (req) =>
      billing.usage({ operator: actorOf(req) }, req.params.id, req.query.month ?? jstMonth(Date.now())),
  );

  app.get<{ Params: { id: number; month: string }; Querystring: { format?: 'json' | 'csv' } }>(
    '/api/v1/verifiers/:id/statements/:month',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: "A verifier's monthly statement, JSON or CSV (?format=csv)",
        params: {
          type: 'object',
          required: ['id', 'month'],
          properties: { id: { type: 'integer', minimum: 1 }, month },
        },
        querystring: formatQuery,
        response: { 200: statementSchema, ...errors },
      },
    },
    async (req, reply) =>
      sendStatement(
        reply,
        await billing.statement({ operator: actorOf(req) }, req.params.id, req.params.month),
        req.query.format,
      ),
  );

  app.get<{ Querystring: { month?: string; format?: 'json' | 'csv' } }>(
    '/api/v1/verifier-usage',
    {
      ...byOperator,
      schema: {
        tags,
        security,
        description: "Every verifier's usage and amount for a month (default: this month, JST), JSON or CSV",
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { month, format: { type: 'string', enum: ['json', 'csv'] } },
        },
        response: { 200: overviewSchema, ...errors },
      },
    },
    async (req, reply) => {
      const o = await billing.overview(actorOf(req), req.query.month ?? jstMonth(Date.now()));
      if (req.query.format === 'csv')
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="verifier-usage-${o.month}.csv"`)
          .send(overviewCsv(o));
      return o;
    },
  );

  // ---- a verifier's own account ----

  const selfTags = ['verifier (own account)'];
  const selfSecurity = [{ verifierKey: [] }];
  const bySelf = { onRequest: verifierSelf };

  app.get(
    '/api/v1/verifier',
    {
      ...bySelf,
      schema: {
        tags: selfTags,
        security: selfSecurity,
        description: 'The verifier the credential belongs to',
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'integer' },
              name: { type: 'string' },
              category: { type: 'string' },
              kinds: verifierKinds,
              status: { type: 'string' },
              contractFrom: day,
              contractTo: day,
              credential: {
                type: 'object',
                properties: {
                  type: { type: 'string', enum: ['api-key', 'certificate'] },
                  keyId: { type: 'string' },
                  fingerprintSha256: { type: 'string' },
                },
              },
            },
          },
          401: errorSchema,
        },
      },
    },
    async (req) => {
      const v = selfOf(req);
      return {
        id: v.verifierId,
        name: v.name,
        category: v.category,
        kinds: v.kinds,
        status: v.status,
        contractFrom: v.contractFrom,
        contractTo: v.contractTo,
        credential: v.credential,
      };
    },
  );

  app.get(
    '/api/v1/verifier/credentials',
    {
      ...bySelf,
      schema: {
        tags: selfTags,
        security: selfSecurity,
        description: 'Own API keys (ids and states, never secrets) and registered client certificates',
        response: {
          200: {
            type: 'object',
            properties: {
              apiKeys: { type: 'array', items: apiKeySchema },
              certificates: { type: 'array', items: certificateSchema },
            },
          },
          401: errorSchema,
        },
      },
    },
    async (req) => {
      const d = await registry.details(selfOf(req).verifierId);
      return { apiKeys: d.apiKeys.map(apiKeyJson), certificates: d.certificates.map(certificateJson) };
    },
  );

  app.get<{ Querystring: { month?: string } }>(
    '/api/v1/verifier/usage',
    {
      ...bySelf,
      schema: {
        tags: selfTags,
        security: selfSecurity,
        description: 'Own daily usage in a month (default: this month, JST)',
        querystring: monthQuery,
        response: { 200: usageSchema, ...errors },
      },
    },
    async (req) => {
      const v = selfOf(req);
      return billing.usage({ verifier: v }, v.verifierId, req.query.month ?? jstMonth(Date.now()));
    },
  );

  app.get<{ Params: { month: string }; Querystring: { format?: 'json' | 'csv' } }>(
    '/api/v1/verifier/statements/:month',
    {
      ...bySelf,
      schema: {
        tags: selfTags,
        security: selfSecurity,
        description: 'Own monthly statement, JSON or CSV (?format=csv)',
        params: { type: 'object', required: ['month'], properties: { month } },
        querystring: formatQuery,
        response: { 200: statementSchema, ...errors },
      },
    },
    async (req, reply) => {
      const v = selfOf(req);
      return sendStatement(
        reply,
        await billing.statement({ verifier: v }, v.verifierId, req.params.month),
        req.query.format,
      );
    },
  );
}
