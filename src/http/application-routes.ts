// The applications API (docs/applications.md): the procedure catalogue, the submission gateway,
// the case view, and the agencies' side (their parts, actions on them, the evidence download).
//
//   GET  /api/v1/procedures[?level&agency&municipality]   the catalogue
//   GET  /api/v1/procedures/{id}                          one procedure with its form schema
//   POST /api/v1/applications                             submit (201 receipt; 200 for a replay)
//   GET  /api/v1/applications/{id}                        the case: parts, status and history
//   POST /api/v1/agencies/{id}/keys                       operator: a new agency API key
//   GET  /api/v1/agency/parts[?status&since]              agency: its parts (polling)
//   GET  /api/v1/agency/applications/{id}                 agency: the case, its own parts only
//   GET  /api/v1/agency/applications/{id}/evidence        agency: the CAdES-T .p7s / XAdES-T .xml
//   POST /api/v1/agency/applications/{id}/parts/{part}/actions   agency: accept, … (with history)

import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AgencyDesk, PART_ACTIONS, type PartAction } from '../applications/agencies.ts';
import { type AgencyLevel, defaultCatalogue, type Procedure } from '../applications/catalogue.ts';
import {
  ApplicationError,
  type ApplicationErrorCode,
  ApplicationGateway,
  MAX_SIGNED_DOCUMENT_BYTES,
  type PartStatus,
} from '../applications/gateway.ts';
import type { Authority } from '../authority/authority.ts';

export interface ApplicationRoutesOptions {
  authority: Authority;
  operatorToken: string;
}

const STATUS: Record<ApplicationErrorCode, number> = {
  'bad-request': 400,
  'unknown-procedure': 404,
  'not-found': 404,
  'too-large': 413,
  'invalid-form': 422,
  refused: 422,
  'idempotency-conflict': 409,
  'invalid-transition': 409,
};

const bilingual = {
  type: 'object',
  properties: { ja: { type: 'string' }, en: { type: 'string' } },
  required: ['ja', 'en'],
} as const;
const errorSchema = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    summary: bilingual,
    fieldErrors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { field: { type: 'string' }, keyword: { type: 'string' }, message: bilingual },
      },
    },
    report: { type: 'object', additionalProperties: true },
  },
  required: ['error', 'message'],
} as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const receiptResponse = {
  type: 'object',
  properties: {
    receipt: anyObject,
    receiptSignature: {
      type: 'string',
      description: 'base64 DER RFC 3161 token over SHA-256(canonical receipt)',
    },
    replayed: { type: 'boolean' },
  },
} as const;
const PART_STATUSES: PartStatus[] = ['received', 'accepted', 'correction-requested', 'rejected', 'completed'];

/** Base64 of the largest signed document, plus room for the form and the other fields. */
const MAX_SUBMISSION_BODY_BYTES = Math.ceil(MAX_SIGNED_DOCUMENT_BYTES / 3) * 4 + 512 * 1024;

export async function applicationRoutes(app: FastifyInstance, opts: ApplicationRoutesOptions): Promise<void> {
  const catalogue = defaultCatalogue();
  const gateway = new ApplicationGateway(opts.authority, { catalogue });
  const desk = new AgencyDesk(opts.authority, { catalogue });
  const operatorToken = Buffer.from(opts.operatorToken);

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApplicationError)
      return reply.code(STATUS[err.code]).send({
        error: err.code,
        message: err.message,
        ...(err.details.summary ? { summary: err.details.summary } : {}),
        ...(err.details.fieldErrors ? { fieldErrors: err.details.fieldErrors } : {}),
        ...(err.details.report ? { report: err.details.report } : {}),
      });
    const e = err as Error & { statusCode?: number; validation?: unknown };
    const status = e.statusCode && e.statusCode >= 400 ? e.statusCode : 500;
    if (status >= 500) req.log.error({ err: e }, 'request failed');
    const error = status === 413 ? 'too-large' : status >= 500 ? 'internal-error' : 'bad-request';
    return reply.code(status).send({ error, message: status >= 500 ? 'internal error' : e.message });
  });

  const summary = (p: Procedure, withForm: boolean) => ({
    id: p.id,
    level: p.level,
    agency: p.agency,
    name: p.name,
    certificate: p.certificate,
    signatureFormat: p.signatureFormat,
    fee: p.fee,
    parts: p.parts,
    ...(withForm ? { form: p.form } : {}),
  });

  app.get<{ Querystring: { level?: AgencyLevel; agency?: string; municipality?: string } }>(
    '/api/v1/procedures',
    {
      schema: {
        tags: ['applications'],
        description: 'The procedure catalogue: what residents can file, with whom, and the fee per part',
        querystring: {
          type: 'object',
          properties: {
            level: { type: 'string', enum: ['national', 'prefecture', 'municipality'] },
            agency: { type: 'string', maxLength: 64 },
            municipality: { type: 'string', pattern: '^[0-9]{6}$' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              procedures: { type: 'array', items: anyObject },
              agencies: { type: 'array', items: anyObject },
            },
          },
        },
      },
    },
    async (req) => ({
      procedures: catalogue
        .list({ level: req.query.level, agency: req.query.agency, municipalityCode: req.query.municipality })
        .map((p) => summary(p, false)),
      agencies: [...catalogue.agencies.values()],
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/procedures/:id',
    {
      schema: {
        tags: ['applications'],
        description: 'One procedure, with the JSON Schema of its form',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 128 } }, required: ['id'] },
        response: { 200: anyObject, 404: errorSchema },
      },
    },
    async (req) => {
      const p = catalogue.procedure(req.params.id);
      if (!p) throw new ApplicationError('unknown-procedure', `no procedure ${req.params.id}`);
      return summary(p, true);
    },
  );

  app.post<{
    Body: {
      procedureId: string;
      form: unknown;
      signedDocument: string;
      idempotencyKey: string;
      residentRef?: string;
    };
  }>(
    '/api/v1/applications',
    {
      bodyLimit: MAX_SUBMISSION_BODY_BYTES,
      schema: {
        tags: ['applications'],
        description:
          'Submits a signed application. The signed document is the application (see docs/applications.md) signed with the resident’s signature certificate: CMS with attached content, or enveloped XML. 201 with the receipt; 200 with the same receipt for a replay of the same idempotency key and content; 409 when the key was used for other content; 422 with per-field errors (ja/en) or the validation report’s reason; 413 when too large.',
        body: {
          type: 'object',
          properties: {
            procedureId: { type: 'string', minLength: 1, maxLength: 128 },
            form: {},
            signedDocument: { type: 'string', contentEncoding: 'base64', minLength: 1 },
            idempotencyKey: { type: 'string', minLength: 8, maxLength: 128 },
            residentRef: { type: 'string', minLength: 1, maxLength: 64 },
          },
          required: ['procedureId', 'form', 'signedDocument', 'idempotencyKey'],
          additionalProperties: false,
        },
        response: {
          200: receiptResponse,
          201: receiptResponse,
          400: errorSchema,
          404: errorSchema,
          409: errorSchema,
          413: errorSchema,
          422: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b.signedDocument))
        throw new ApplicationError('bad-request', 'signedDocument must be base64');
      const r = await gateway.submit({
        procedureId: b.procedureId,
        form: b.form,
        signedDocument: Buffer.from(b.signedDocument, 'base64'),
        idempotencyKey: b.idempotencyKey,
        residentRef: b.residentRef,
      });
      return reply.code(r.replayed ? 200 : 201).send({
        receipt: r.receipt,
        receiptSignature: r.receiptSignature.toString('base64'),
        replayed: r.replayed,
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/applications/:id',
    {
      schema: {
        tags: ['applications'],
        description:
          'The case: each part’s status and the history. The submission id (128 random bits) is the capability until resident log-in lands.',
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
          required: ['id'],
        },
        response: { 200: anyObject, 404: errorSchema },
      },
    },
    async (req) => {
      const c = await gateway.getApplication(req.params.id);
      if (!c) throw new ApplicationError('not-found', 'no such application');
      const { revocationEvidence: _r, report, ...rest } = c;
      return {
        ...rest,
        report: { indication: report.indication, summary: report.summary, format: report.format },
      };
    },
  );

  // ---- operators: agency keys ----

  async function operator(req: FastifyRequest, reply: FastifyReply) {
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? '');
    if (!m || given.length !== operatorToken.length || !timingSafeEqual(given, operatorToken))
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'operator token required (Bearer)' });
  }

  app.post<{ Params: { id: string } }>(
    '/api/v1/agencies/:id/keys',
    {
      onRequest: operator,
      schema: {
        tags: ['applications (operators)'],
        description: 'A new API key for an agency; the key is shown once',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        response: {
          201: { type: 'object', properties: { keyId: { type: 'string' }, apiKey: { type: 'string' } } },
          401: errorSchema,
          404: errorSchema,
        },
      },
    },
    async (req, reply) => reply.code(201).send(await desk.createApiKey(req.params.id)),
  );

  // ---- agencies ----

  const agencies = new WeakMap<FastifyRequest, string>();
  async function agency(req: FastifyRequest, reply: FastifyReply) {
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(req.headers.authorization ?? '');
    const id = m ? await desk.authenticate(m[1]!) : undefined;
    if (!id)
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'agency API key required (Bearer jpka_…)' });
    agencies.set(req, id);
  }
  const agencyOf = (req: FastifyRequest) => agencies.get(req)!;
  const appParams = {
    type: 'object',
    properties: { id: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
    required: ['id'],
  } as const;

  app.get<{ Querystring: { status?: PartStatus; since?: string; limit?: number } }>(
    '/api/v1/agency/parts',
    {
      onRequest: agency,
      schema: {
        tags: ['applications (agencies)'],
        description: 'The agency’s parts, most recently changed first; `since` polls for changes',
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: PART_STATUSES },
            since: { type: 'string', format: 'date-time' },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { agency: { type: 'string' }, parts: { type: 'array', items: anyObject } },
          },
          401: errorSchema,
        },
      },
    },
    async (req) => ({
      agency: agencyOf(req),
      parts: await desk.listParts(agencyOf(req), {
        status: req.query.status,
        since: req.query.since ? new Date(req.query.since) : undefined,
        limit: req.query.limit,
      }),
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/agency/applications/:id',
    {
      onRequest: agency,
      schema: {
        tags: ['applications (agencies)'],
        description:
          'The application with the agency’s own parts and their history (other agencies’ parts are not shown)',
        params: appParams,
        response: { 200: anyObject, 401: errorSchema, 404: errorSchema },
      },
    },
    async (req) => {
      const me = agencyOf(req);
      const c = await gateway.getApplication(req.params.id);
      if (!c?.parts.some((p) => p.agency === me))
        throw new ApplicationError('not-found', 'no such application');
      const mine = new Set(c!.parts.filter((p) => p.agency === me).map((p) => p.id));
      const { receipt: _receipt, ...rest } = c;
      return {
        ...rest,
        parts: c.parts.filter((p) => mine.has(p.id)),
        history: c.history.filter((h) => mine.has(h.partId)),
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/agency/applications/:id/evidence',
    {
      onRequest: agency,
      schema: {
        tags: ['applications (agencies)'],
        description:
          'The evidence file: the signature with the gateway’s time stamp (CAdES-T .p7s or XAdES-T .xml); check it offline with `jpki verify --in FILE --trust root.pem --crl …`',
        params: appParams,
      },
    },
    async (req, reply) => {
      if (!(await desk.hasPart(agencyOf(req), req.params.id)))
        throw new ApplicationError('not-found', 'no such application');
      const e = (await gateway.evidence(req.params.id))!;
      const [type, ext] =
        e.format === 'cms' ? ['application/pkcs7-signature', 'p7s'] : ['application/xml', 'xml'];
      return reply
        .type(type)
        .header('content-disposition', `attachment; filename="application-${req.params.id}.${ext}"`)
        .send(e.data);
    },
  );

  app.post<{ Params: { id: string; part: string }; Body: { action: PartAction; note?: string } }>(
    '/api/v1/agency/applications/:id/parts/:part/actions',
    {
      onRequest: agency,
      schema: {
        tags: ['applications (agencies)'],
        description:
          'Acts on the agency’s part: accept, request-correction (note required), reject (note required), complete (after accept). 409 when the part’s status does not allow it.',
        params: {
          type: 'object',
          properties: { id: appParams.properties.id, part: { type: 'string', maxLength: 64 } },
          required: ['id', 'part'],
        },
        body: {
          type: 'object',
          properties: {
            action: { type: 'string', enum: [...PART_ACTIONS] },
            note: { type: 'string', maxLength: 2000 },
          },
          required: ['action'],
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { status: { type: 'string' } } },
          400: errorSchema,
          401: errorSchema,
          404: errorSchema,
          409: errorSchema,
        },
      },
    },
    async (req) => desk.act(agencyOf(req), req.params.id, req.params.part, req.body.action, req.body.note),
  );
}
