// The municipal counter's HTTP API (a Fastify plugin registered by buildServer): staff log-in, resident
// look-up, the counter workflow (src/counter/workflow.ts), loss reports, PIN resets, issuance statistics,
// and the register's event feed. See docs/counter.md.
//
// Authentication: `Authorization: Bearer <session token>` from POST /api/v1/staff/login, checked on every
// request by StaffService.authenticate (401 without a valid session). Authorisation is the role table
// (can()): the workflow checks the municipality of the resident or case concerned and audits refusals
// (403). The operator-token routes of server.ts are unaffected.
//
// The card: this API drives a SOFTWARE card kept by the counter in DATA/cards/<card-id>.json, for
// development and demonstrations (a real counter has the card in its reader and drives it through
// Pkcs11Card; the workflow service takes any IcCard). The counter's unblock credential of each software
// card is HMAC-SHA256(DATA/secrets/counter-unblock-key, card id): nothing per card is stored, and the
// key never leaves the counter's data directory.

import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { appendAudit, staffActor } from '../audit/audit-log.ts';
import type { Authority } from '../authority/authority.ts';
import { CardError, type CardSlot, type IcCard, PinFormatError } from '../card/card.ts';
import { SoftwareCard } from '../card/software-card.ts';
import { CsrError } from '../core/csr.ts';
import { ConcurrentIssuanceError, FactsChangedError } from '../counter/issuance.ts';
import { issuanceStats, issuanceStatsCsv, StatsInputError } from '../counter/stats.ts';
import {
  AlreadyIssuedError,
  CardMismatchError,
  CaseStateError,
  type CounterCase,
  type CounterConfig,
  CounterInputError,
  CounterWorkflow,
  IDENTITY_DOCUMENT_TYPES,
  jstDay,
  PAYMENT_METHODS,
  RenewalWindowError,
  ResidentNotEligibleError,
  receiptText,
  UnknownCaseError,
} from '../counter/workflow.ts';
import { residentCertificates } from '../register/certificates.ts';
import {
  EventConflictError,
  RegisterStateError,
  RegisterValidationError,
  UnknownResidentError,
} from '../register/errors.ts';
import type { ResidentState } from '../register/facts.ts';
import {
  getResident,
  REGISTER_EVENT_TYPES,
  type RegisterEventInput,
  recordEvent,
} from '../register/register.ts';
import { can, ForbiddenError, type Principal } from '../staff/roles.ts';
import { LoginError, SessionError, StaffService } from '../staff/service.ts';

export interface CounterRoutesOptions {
  authority: Authority;
  /** Defaults: DATA/counter.json (feeYen, renewalWindowDays, capacity, keyAlgorithm, counterId), then built-in. */
  config?: Partial<CounterConfig>;
  staff?: StaffService;
}

const CARD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;
const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

const principalSchema = {
  type: 'object',
  properties: {
    staffId: { type: 'integer' },
    username: { type: 'string' },
    role: { type: 'string' },
    municipalityCode: { type: ['string', 'null'] },
  },
} as const;

const caseSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['issuance', 'renewal', 'pin-reset'] },
    state: {
      type: 'string',
      enum: [
        'opened',
        'identity-verified',
        'fee-paid',
        'keys-generated',
        'partially-issued',
        'issued',
        'completed',
      ],
    },
    residentId: { type: 'string' },
    municipalityCode: { type: 'string' },
    openedBy: { type: 'integer' },
    openedAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    identity: {
      type: ['object', 'null'],
      properties: {
        documents: {
          type: 'array',
          items: {
            type: 'object',
            properties: { type: { type: 'string' }, last4: { type: ['string', 'null'] } },
          },
        },
        verifiedBy: { type: 'integer' },
        verifiedAt: { type: 'string', format: 'date-time' },
      },
    },
    fee: {
      type: ['object', 'null'],
      properties: {
        amountYen: { type: 'integer' },
        method: { type: 'string' },
        receiptNumber: { type: 'string' },
        paidBy: { type: 'integer' },
        paidAt: { type: 'string', format: 'date-time' },
      },
    },
    cardId: { type: ['string', 'null'] },
    signSerial: { type: ['string', 'null'] },
    authSerial: { type: ['string', 'null'] },
    completedAt: { type: ['string', 'null'], format: 'date-time' },
    lastError: {
      type: ['object', 'null'],
      properties: { message: { type: 'string' }, at: { type: 'string', format: 'date-time' } },
    },
  },
} as const;

const caseParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^C[0-9a-f]{20}$' } },
  required: ['id'],
} as const;
const residentParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9]{11}$' } },
  required: ['id'],
} as const;

const residentSchema = {
  type: 'object',
  properties: {
    residentId: { type: 'string' },
    municipalityCode: { type: 'string' },
    name: { type: 'string' },
    nameKana: { type: ['string', 'null'] },
    dateOfBirth: { type: ['string', 'null'] },
    sex: { type: 'string' },
    address: { type: 'string' },
    status: { type: 'string' },
    version: { type: 'integer' },
  },
} as const;

const iso = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();

function caseJson(c: CounterCase) {
  return {
    ...c,
    openedAt: iso(c.openedAt),
    updatedAt: iso(c.updatedAt),
    identity: c.identity ? { ...c.identity, verifiedAt: iso(c.identity.verifiedAt) } : null,
    fee: c.fee ? { ...c.fee, paidAt: iso(c.fee.paidAt) } : null,
    completedAt: iso(c.completedAt),
    lastError: c.lastError ? { message: c.lastError.message, at: iso(c.lastError.at) } : null,
  };
}

function residentJson(r: ResidentState) {
  return {
    residentId: r.residentId,
    municipalityCode: r.municipalityCode,
    name: r.name,
    nameKana: r.nameKana,
    dateOfBirth: r.dateOfBirth,
    sex: r.sex,
    address: r.address,
    status: r.status,
    version: r.version,
  };
}

/** HTTP status of an error thrown by the counter's services. */
export function counterStatus(e: Error & { statusCode?: number; validation?: unknown }): number {
  if (e instanceof SessionError || e instanceof LoginError) return 401;
  if (e instanceof ForbiddenError) return 403;
  if (e instanceof UnknownResidentError || e instanceof UnknownCaseError) return 404;
  if (
    e instanceof CounterInputError ||
    e instanceof StatsInputError ||
    e instanceof RegisterValidationError ||
    e instanceof PinFormatError ||
    e instanceof CsrError ||
    e.validation
  )
    return 400;
  if (
    e instanceof AlreadyIssuedError ||
    e instanceof CaseStateError ||
    e instanceof ConcurrentIssuanceError ||
    e instanceof FactsChangedError ||
    e instanceof ResidentNotEligibleError ||
    e instanceof RenewalWindowError ||
    e instanceof CardMismatchError ||
    e instanceof RegisterStateError ||
    e instanceof EventConflictError ||
    e instanceof CardError
  )
    return 409;
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return e.statusCode;
  return 500;
}

function readCounterConfig(dataDir: string): Partial<CounterConfig> {
  const path = join(dataDir, 'counter.json');
  if (!existsSync(path)) return {};
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const out: Partial<CounterConfig> = {};
  if (typeof raw.feeYen === 'number') out.feeYen = raw.feeYen;
  if (typeof raw.renewalWindowDays === 'number') out.renewalWindowDays = raw.renewalWindowDays;
  if (typeof raw.capacity === 'number') out.capacity = raw.capacity;
  if (raw.keyAlgorithm === 'rsa-2048' || raw.keyAlgorithm === 'ecdsa-p256')
    out.keyAlgorithm = raw.keyAlgorithm;
  if (typeof raw.counterId === 'string') out.counterId = raw.counterId;
  return out;
}

/** DATA/secrets/counter-unblock-key (32 random bytes, hex, mode 0600), created on first use. */
function unblockKey(dataDir: string): Buffer {
  const dir = join(dataDir, 'secrets');
  const path = join(dir, 'counter-unblock-key');
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
}

export async function counterRoutes(app: FastifyInstance, opts: CounterRoutesOptions): Promise<void> {
  const { authority } = opts;
  const store = authority.store;
  const staff = opts.staff ?? new StaffService(store.db);
  const key = unblockKey(authority.dataDir);
  const unblockSecret = (cardId: string) =>
    createHmac('sha256', key).update(cardId, 'utf8').digest('base64url');
  const workflow = new CounterWorkflow({
    authority,
    config: { ...readCounterConfig(authority.dataDir), ...opts.config },
    unblockSecret,
  });
  const cardsDir = join(authority.dataDir, 'cards');
  const cardPath = (cardId: string) => {
    if (!CARD_ID.test(cardId)) throw new CounterInputError('a card id is 1-64 letters, digits, _ or -');
    return join(cardsDir, `${cardId}.json`);
  };
  async function withCard<T>(card: IcCard, fn: (card: IcCard) => Promise<T>): Promise<T> {
    try {
      return await fn(card);
    } finally {
      await card.close();
    }
  }

  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { statusCode?: number; validation?: unknown };
    const status = counterStatus(e);
    if (status >= 500) req.log.error({ err: e }, 'request failed');
    const generic = !e.name || e.name === 'Error' || e.name === 'FastifyError' || !!e.validation;
    const name = status >= 500 ? 'InternalError' : generic ? 'BadRequest' : e.name;
    return reply.code(status).send({ error: name, message: status >= 500 ? 'internal error' : e.message });
  });

  const principals = new WeakMap<FastifyRequest, Principal>();
  async function authenticate(req: FastifyRequest, reply: FastifyReply) {
    const m = /^Bearer ([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
    if (!m)
      return reply
        .code(401)
        .send({ error: 'Unauthorized', message: 'staff session token required (Bearer)' });
    try {
      principals.set(req, await staff.authenticate(m[1]!));
    } catch (e) {
      if (e instanceof SessionError)
        return reply.code(401).send({ error: 'Unauthorized', message: e.message });
      throw e;
    }
  }
  const who = (req: FastifyRequest): Principal => {
    const p = principals.get(req);
    if (!p) throw new SessionError('invalid');
    return p;
  };
  const authed = { onRequest: authenticate };

  // ---- sessions ----

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/staff/login',
    {
      schema: {
        tags: ['counter'],
        description: 'Staff log-in: a session token for the counter API (30 min idle, 12 h at most)',
        body: {
          type: 'object',
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 256 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
          },
          required: ['username', 'password'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              token: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
              principal: principalSchema,
            },
          },
          400: errorSchema,
          401: errorSchema,
        },
      },
    },
    async (req) => {
      const r = await staff.login(req.body.username, req.body.password);
      return { token: r.token, expiresAt: iso(r.expiresAt), principal: r.principal };
    },
  );

  app.post(
    '/api/v1/staff/logout',
    {
      schema: {
        tags: ['counter'],
        description: 'Ends the session of the bearer token',
        response: {
          200: { type: 'object', properties: { loggedOut: { type: 'boolean' } } },
          401: errorSchema,
        },
      },
      ...authed,
    },
    async (req) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      return { loggedOut: await staff.logout(token) };
    },
  );

  app.get(
    '/api/v1/counter/config',
    {
      schema: {
        tags: ['counter'],
        description: "The counter's configuration as staff need it before a step (the fee to collect)",
        response: {
          200: {
            type: 'object',
            properties: {
              feeYen: { type: 'integer' },
              renewalWindowDays: { type: 'integer' },
              capacity: { type: 'integer' },
              keyAlgorithm: { type: 'string' },
            },
          },
          401: errorSchema,
        },
      },
      ...authed,
    },
    async () => {
      const { feeYen, renewalWindowDays, capacity, keyAlgorithm } = workflow.config;
      return { feeYen, renewalWindowDays, capacity, keyAlgorithm };
    },
  );

  // ---- residents ----

  app.get<{ Params: { id: string } }>(
    '/api/v1/residents/:id',
    {
      schema: {
        tags: ['counter'],
        description: "A resident of the clerk's municipality: facts and certificates (each read is audited)",
        params: residentParams,
        response: {
          200: {
            type: 'object',
            properties: {
              resident: residentSchema,
              certificates: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    serial: { type: 'string' },
                    kind: { type: 'string' },
                    status: { type: 'string' },
                    current: { type: 'boolean' },
                    notAfter: { type: 'string', format: 'date-time' },
                    reason: { type: 'string' },
                    message: {
                      type: 'object',
                      properties: { ja: { type: 'string' }, en: { type: 'string' } },
                    },
                  },
                },
              },
              cardId: { type: ['string', 'null'] },
            },
          },
          ...errors,
        },
      },
      ...authed,
    },
    async (req) => {
      const resident = await workflow.readResident(who(req), req.params.id);
      const certs = await residentCertificates(store, resident.residentId);
      return {
        resident: residentJson(resident),
        certificates: certs.map((c) => ({
          serial: c.serial,
          kind: c.kind,
          status: c.status,
          current: c.current,
          notAfter: c.notAfter.toISOString(),
          ...(c.revocation ? { reason: c.revocation.reason } : {}),
          ...(c.message ? { message: c.message } : {}),
        })),
        // The card last issued to the resident at a counter (a PIN reset needs it; development: the
        // software card's id).
        cardId:
          (
            await store.db
              .selectFrom('counter_cases')
              .select('card_id')
              .where('resident_id', '=', resident.residentId)
              .where('state', '=', 'completed')
              .where('card_id', 'is not', null)
              .orderBy('opened_at', 'desc')
              .executeTakeFirst()
          )?.card_id ?? null,
      };
    },
  );

  app.get<{ Querystring: { name?: string; birth?: string } }>(
    '/api/v1/residents',
    {
      schema: {
        tags: ['counter'],
        description:
          "Search residents of the clerk's own municipality by name and/or date of birth (at most 50)",
        querystring: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            birth: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' },
          },
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { residents: { type: 'array', items: residentSchema } } },
          ...errors,
        },
      },
      ...authed,
    },
    async (req) => {
      const found = await workflow.searchResidents(who(req), {
        name: req.query.name,
        dateOfBirth: req.query.birth,
      });
      return { residents: found.map(residentJson) };
    },
  );

  app.post<{ Params: { id: string }; Body: { channel: 'phone' | 'counter' } }>(
    '/api/v1/residents/:id/loss-report',
    {
      schema: {
        tags: ['counter'],
        description:
          'Loss or theft of the card: every valid certificate of the resident is revoked at once (keyCompromise)',
        params: residentParams,
        body: {
          type: 'object',
          properties: { channel: { type: 'string', enum: ['phone', 'counter'] } },
          required: ['channel'],
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { revoked: { type: 'array', items: { type: 'string' } } } },
          ...errors,
        },
      },
      ...authed,
    },
    async (req) => workflow.reportLoss(who(req), req.params.id, { channel: req.body.channel }),
  );

  // ---- cases ----

  const caseReply = { 200: caseSchema, ...errors };

  app.post<{ Body: { residentId: string; type?: 'issuance' | 'renewal' | 'pin-reset' } }>(
    '/api/v1/counter/cases',
    {
      schema: {
        tags: ['counter'],
        description:
          "Opens a counter case (issuance, renewal or PIN reset) for a resident of the clerk's municipality",
        body: {
          type: 'object',
          properties: {
            residentId: { type: 'string', pattern: '^[0-9]{11}$' },
            type: { type: 'string', enum: ['issuance', 'renewal', 'pin-reset'] },
          },
          required: ['residentId'],
          additionalProperties: false,
        },
        response: { 201: caseSchema, ...errors },
      },
      ...authed,
    },
    async (req, reply) => {
      const c = await workflow.openCase(who(req), { residentId: req.body.residentId, type: req.body.type });
      return reply.code(201).send(caseJson(c));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/counter/cases/:id',
    {
      schema: { tags: ['counter'], description: 'A counter case', params: caseParams, response: caseReply },
      ...authed,
    },
    async (req) => caseJson(await workflow.getCase(who(req), req.params.id)),
  );

  app.post<{ Params: { id: string }; Body: { documents: { type: string; last4?: string }[] } }>(
    '/api/v1/counter/cases/:id/identity',
    {
      schema: {
        tags: ['counter'],
        description:
          'Identity documents checked face to face (only the last 4 characters of a number are kept)',
        params: caseParams,
        body: {
          type: 'object',
          properties: {
            documents: {
              type: 'array',
              minItems: 1,
              maxItems: 5,
              items: {
                type: 'object',
                properties: {
                  type: { type: 'string', enum: [...IDENTITY_DOCUMENT_TYPES] },
                  last4: { type: 'string', pattern: '^[0-9A-Z]{4}$' },
                },
                required: ['type'],
                additionalProperties: false,
              },
            },
          },
          required: ['documents'],
          additionalProperties: false,
        },
        response: caseReply,
      },
      ...authed,
    },
    async (req) => caseJson(await workflow.verifyIdentity(who(req), req.params.id, req.body)),
  );

  app.post<{ Params: { id: string }; Body: { method: string } }>(
    '/api/v1/counter/cases/:id/fee',
    {
      schema: {
        tags: ['counter'],
        description:
          'The fee is collected (amount from the counter configuration); a receipt number is assigned',
        params: caseParams,
        body: {
          type: 'object',
          properties: { method: { type: 'string', enum: [...PAYMENT_METHODS] } },
          required: ['method'],
          additionalProperties: false,
        },
        response: caseReply,
      },
      ...authed,
    },
    async (req) => caseJson(await workflow.payFee(who(req), req.params.id, req.body)),
  );

  app.post<{ Params: { id: string }; Body: { cardId?: string; signPin: string; authPin: string } }>(
    '/api/v1/counter/cases/:id/keys',
    {
      schema: {
        tags: ['counter'],
        description:
          'Key pairs generated on the card (development: a software card DATA/cards/<cardId>.json, created with the PINs the resident sets, or opened if it exists)',
        params: caseParams,
        body: {
          type: 'object',
          properties: {
            cardId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' },
            signPin: { type: 'string', maxLength: 64 },
            authPin: { type: 'string', maxLength: 64 },
          },
          required: ['signPin', 'authPin'],
          additionalProperties: false,
        },
        response: caseReply,
      },
      ...authed,
    },
    async (req) => {
      const principal = who(req);
      const c = await workflow.getCase(principal, req.params.id);
      if (c.state !== 'fee-paid') throw new CaseStateError(c.id, c.state, 'keys');
      const cardId = req.body.cardId ?? `SC${randomBytes(8).toString('hex').toUpperCase()}`;
      const path = cardPath(cardId);
      mkdirSync(cardsDir, { recursive: true, mode: 0o700 });
      const card = existsSync(path)
        ? await SoftwareCard.open(path)
        : await SoftwareCard.create(path, {
            id: cardId,
            signPin: req.body.signPin,
            authPin: req.body.authPin,
            unblock: unblockSecret(cardId),
          });
      return caseJson(
        await withCard(card, (card) =>
          workflow.generateKeys(principal, req.params.id, card, {
            sign: req.body.signPin,
            auth: req.body.authPin,
          }),
        ),
      );
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/counter/cases/:id/issue',
    {
      schema: {
        tags: ['counter'],
        description:
          'Issues the signature and authentication certificates (retry completes a partial issuance)',
        params: caseParams,
        response: caseReply,
      },
      ...authed,
    },
    async (req) => caseJson(await workflow.issue(who(req), req.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/counter/cases/:id/card',
    {
      schema: {
        tags: ['counter'],
        description: 'Writes both certificates to the card; the case is completed',
        params: caseParams,
        response: caseReply,
      },
      ...authed,
    },
    async (req) => {
      const principal = who(req);
      const c = await workflow.getCase(principal, req.params.id);
      if (c.state !== 'issued' || !c.cardId) throw new CaseStateError(c.id, c.state, 'card');
      const card = await SoftwareCard.open(cardPath(c.cardId));
      return caseJson(await withCard(card, (card) => workflow.writeToCard(principal, c.id, card)));
    },
  );

  app.post<{ Params: { id: string }; Body: { cardId: string; slot: CardSlot; newPin: string } }>(
    '/api/v1/counter/cases/:id/pin-reset',
    {
      schema: {
        tags: ['counter'],
        description:
          "Resets a card PIN (pin-reset case, identity verified) with the counter's unblock credential",
        params: caseParams,
        body: {
          type: 'object',
          properties: {
            cardId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' },
            slot: { type: 'string', enum: ['sign', 'auth'] },
            newPin: { type: 'string', maxLength: 64 },
          },
          required: ['cardId', 'slot', 'newPin'],
          additionalProperties: false,
        },
        response: caseReply,
      },
      ...authed,
    },
    async (req) => {
      const principal = who(req);
      await workflow.getCase(principal, req.params.id);
      const path = cardPath(req.body.cardId);
      if (!existsSync(path)) throw new CardMismatchError(`no card ${req.body.cardId} at this counter`);
      const card = await SoftwareCard.open(path);
      return caseJson(
        await withCard(card, (card) =>
          workflow.resetPin(principal, req.params.id, card, { slot: req.body.slot, newPin: req.body.newPin }),
        ),
      );
    },
  );

  app.get<{ Params: { id: string }; Querystring: { format?: 'json' | 'text' } }>(
    '/api/v1/counter/cases/:id/receipt',
    {
      schema: {
        tags: ['counter'],
        description: 'The fee receipt, as JSON or printable plain text (?format=text or Accept: text/plain)',
        params: caseParams,
        querystring: {
          type: 'object',
          properties: { format: { type: 'string', enum: ['json', 'text'] } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              receiptNumber: { type: 'string' },
              caseId: { type: 'string' },
              municipalityCode: { type: 'string' },
              residentId: { type: 'string' },
              amountYen: { type: 'integer' },
              method: { type: 'string' },
              paidAt: { type: 'string' },
              receivedBy: { type: 'string' },
              item: { type: 'object', properties: { ja: { type: 'string' }, en: { type: 'string' } } },
            },
          },
          ...errors,
        },
      },
      ...authed,
    },
    async (req, reply) => {
      const receipt = await workflow.receipt(who(req), req.params.id);
      const text =
        req.query.format === 'text' ||
        (req.query.format === undefined && /text\/plain/.test(req.headers.accept ?? ''));
      if (text)
        return reply
          .type('text/plain; charset=utf-8')
          .serializer((s: string) => s)
          .send(receiptText(receipt));
      return receipt;
    },
  );

  // ---- statistics ----

  app.get<{ Querystring: { from?: string; to?: string; municipality?: string; format?: 'json' | 'csv' } }>(
    '/api/v1/stats/issuance',
    {
      schema: {
        tags: ['counter'],
        description:
          'Certificates issued at counters per day and month, per municipality and in total, against the design capacity (supervisors: own municipality; operators: any)',
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' },
            to: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' },
            municipality: { type: 'string', pattern: '^[0-9]{6}$' },
            format: { type: 'string', enum: ['json', 'csv'] },
          },
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', additionalProperties: true },
          ...errors,
        },
      },
      ...authed,
    },
    async (req, reply) => {
      const principal = who(req);
      const municipality =
        req.query.municipality ?? (principal.role === 'operator' ? null : principal.municipalityCode);
      if (!can(principal, 'stats.read', { municipalityCode: municipality })) {
        await appendAudit(store.db, {
          actor: staffActor(principal.staffId),
          action: 'access.denied',
          subject: null,
          municipalityCode: municipality,
          details: { attempted: 'stats.read', role: principal.role },
        });
        throw new ForbiddenError(principal, 'stats.read', { municipalityCode: municipality });
      }
      const today = jstDay(Date.now());
      const to = req.query.to ?? today;
      const from = req.query.from ?? `${to.slice(0, 7)}-01`;
      const stats = await issuanceStats(store, {
        from,
        to,
        municipalityCode: municipality,
        capacity: workflow.config.capacity,
      });
      if (req.query.format === 'csv')
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="issuance-${from}-${to}.csv"`)
          .serializer((s: string) => s)
          .send(issuanceStatsCsv(stats));
      return stats;
    },
  );

  // ---- the register's event feed ----

  app.post<{ Body: RegisterEventInput }>(
    '/api/v1/register/events',
    {
      schema: {
        tags: ['counter'],
        description:
          'A resident register event (住民基本台帳の異動): a supervisor of the municipality concerned (resident.write). Idempotent by sourceEventId; certificates are revoked by the outbox processor',
        body: {
          type: 'object',
          properties: {
            sourceEventId: { type: 'string', minLength: 1, maxLength: 200 },
            residentId: { type: 'string', pattern: '^[0-9]{11}$' },
            type: { type: 'string', enum: [...REGISTER_EVENT_TYPES] },
            effectiveDate: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' },
            facts: {
              type: 'object',
              properties: {
                municipalityCode: { type: 'string' },
                name: { type: 'string' },
                nameKana: { type: ['string', 'null'] },
                dateOfBirth: { type: ['string', 'null'] },
                sex: { type: 'string' },
                address: { type: 'string' },
                nameSubstitutes: { type: 'string' },
                addressSubstitutes: { type: 'string' },
              },
              additionalProperties: false,
            },
          },
          required: ['sourceEventId', 'residentId', 'type', 'effectiveDate'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              eventId: { type: 'integer' },
              duplicate: { type: 'boolean' },
              late: { type: 'boolean' },
              outbox: { type: ['string', 'null'] },
              applied: { type: 'array', items: { type: 'string' } },
            },
          },
          ...errors,
        },
      },
      ...authed,
    },
    async (req) => {
      const principal = who(req);
      const input = req.body;
      // Registration and move-in concern the municipality the resident enters; other events the one
      // whose register holds the resident now.
      let municipality: string | null;
      if (input.type === 'registered' || input.type === 'moved-in')
        municipality = input.facts?.municipalityCode ?? null;
      else {
        const r = await getResident(store, input.residentId);
        if (!r) throw new UnknownResidentError(input.residentId);
        municipality = r.municipalityCode;
      }
      if (!can(principal, 'resident.write', { municipalityCode: municipality })) {
        await appendAudit(store.db, {
          actor: staffActor(principal.staffId),
          action: 'access.denied',
          subject: `resident:${input.residentId}`,
          municipalityCode: municipality && /^\d{6}$/.test(municipality) ? municipality : null,
          details: { attempted: 'resident.write', role: principal.role },
        });
        throw new ForbiddenError(principal, 'resident.write', { municipalityCode: municipality });
      }
      const r = await recordEvent(store, input, {
        audit: (r) => ({
          actor: staffActor(principal.staffId),
          action: 'register.event',
          subject: `resident:${input.residentId}`,
          municipalityCode: r.resident.municipalityCode,
          details: {
            event: r.event.id,
            type: input.type,
            sourceEventId: input.sourceEventId,
            duplicate: r.duplicate,
            outbox: r.outbox,
          },
        }),
      });
      return {
        eventId: r.event.id,
        duplicate: r.duplicate,
        late: r.event.late,
        outbox: r.outbox,
        applied: r.applied,
      };
    },
  );
}
