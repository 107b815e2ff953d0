// Access to the revocation endpoints for authorised verifiers (a Fastify plugin registered by buildServer
// before the routes; it adds root-level hooks, so it is not encapsulated).
//
// Protected: OCSP (POST /ocsp, GET /ocsp/*), CRLs (/crl/*) and POST /verify. CA certificates (/ca/*), the
// TSA, health, metrics and the APIs are not. With `revocationAccess: 'verifiers'` (authority.json) every
// protected request needs a credential; with 'public' (the default for now) anyone may ask, and a
// credential that is presented is still checked, counted and rate limited, so verifiers can switch over
// before the default flips.
//
// Credentials, in this order: `X-API-Key: <key>` or `Authorization: Bearer <key>`; else the TLS client
// certificate, when the server runs TLS with requestCert (the registry knows certificates by fingerprint).
//
// Answers that refuse:
//   401  no credential, or one that is unknown, revoked or expired;
//   403  a known verifier that is suspended, has ended, or is outside its contract period, or one asking for
//        a CRL of (or /verify with) certificate kinds it is not authorised for (VerifierRegistry kinds);
//   429  the verifier's token bucket is empty (Retry-After: seconds).
// CRLs and /verify get JSON {error, message}. OCSP gets the same HTTP status with an OCSP response as its
// body, as RFC 6960 clients expect one: `unauthorized` (6) for 401/403 and `tryLater` (3) for 429 (openssl
// ocsp prints "code=401, reason=Unauthorized"; clients that read the body see the OCSP status). Refusals
// are `Cache-Control: no-store` and carry `X-JPKI-Refusal: <code>`; a 401 carries WWW-Authenticate.
//
// The check runs in onRequest, before the body is read: a stranger's 16 MiB /verify body is never parsed.
// Metering (onSend): a successful OCSP answer, a CRL sent in full (200, not 304 or HEAD) and a
// verification report are counted for the verifier who asked.

import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Authority } from '../authority/authority.ts';
import type { UsageKind } from '../store/verifier-schema.ts';
import { VerifierBilling } from '../verifiers/billing.ts';
import { sha256Hex } from '../verifiers/credentials.ts';
import { UsageMeter } from '../verifiers/meter.ts';
import { RateLimiter } from '../verifiers/rate-limit.ts';
import {
  type AccessRefusal,
  type AuthenticatedVerifier,
  type Authentication,
  kindRefusal,
  MISSING_CREDENTIAL,
  revocationRefusal,
  VerifierRegistry,
} from '../verifiers/registry.ts';
import {
  loadVerifierSettings,
  type VerifierSettings,
  type VerifierSettingsInput,
} from '../verifiers/settings.ts';

export type RevocationAccess = 'public' | 'verifiers';
export const REVOCATION_ACCESS_MODES: readonly RevocationAccess[] = ['public', 'verifiers'];

export interface VerifierAccessOptions {
  authority: Authority;
  /** Default: `revocationAccess` of authority.json, else 'public'. */
  revocationAccess?: RevocationAccess;
  /** Over DATA/verifiers.json. */
  settings?: VerifierSettingsInput;
  now?: () => number;
}

/** What the plugin shares with the verifier routes (app.verifiers). */
export interface VerifierServices {
  revocationAccess: RevocationAccess;
  settings: VerifierSettings;
  registry: VerifierRegistry;
  meter: UsageMeter;
  billing: VerifierBilling;
  rateLimiter: RateLimiter;
  /** Recognises the request's credential (API key, else client certificate): the verifier, or a 401 refusal. */
  identify(req: FastifyRequest): Promise<Authentication>;
}

declare module 'fastify' {
  interface FastifyInstance {
    verifiers: VerifierServices;
  }
  interface FastifyRequest {
    /** The authorised verifier making a revocation request, once verifier access has let it through. */
    verifier: AuthenticatedVerifier | null;
  }
}

const OCSP_UNAUTHORIZED = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x06]);
const OCSP_TRY_LATER = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]);

/** Which metered kind a route is, from its URL pattern; undefined for routes anyone may use. */
export function revocationKind(routeUrl: string | undefined): UsageKind | undefined {
  if (!routeUrl) return undefined;
  if (routeUrl === '/ocsp' || routeUrl.startsWith('/ocsp/')) return 'ocsp';
  if (routeUrl.startsWith('/crl/')) return 'crl';
  if (routeUrl === '/verify') return 'verification';
  return undefined;
}

/** Whether a DER OCSPResponse says `successful` (its responseStatus ENUMERATED is 0). */
export function isSuccessfulOcsp(der: unknown): boolean {
  if (!Buffer.isBuffer(der) || der.length < 5 || der[0] !== 0x30) return false;
  const len = der[1]!;
  const at = len < 0x80 ? 2 : 2 + (len & 0x7f);
  return der[at] === 0x0a && der[at + 1] === 0x01 && der[at + 2] === 0x00;
}

/**
 * 403 when a verifier asks for what its authorisation does not cover: a CRL of signature certificates
 * (`/crl/sign*`) needs 'sign', one of authentication certificates (`/crl/auth*`) 'auth', and /verify
 * (signed documents, whose signers hold signature certificates) 'sign'. OCSP is checked per request
 * by the authority (a CertID of another CA is answered `unauthorized`).
 */
function certificateKindRefusal(v: AuthenticatedVerifier, kind: UsageKind, req: FastifyRequest) {
  if (kind === 'verification') return kindRefusal(v, 'sign', 'POST /verify (signed documents)');
  if (kind !== 'crl') return null;
  const file = (req.params as { file?: string }).file ?? '';
  const m = /^(sign|auth)(?:[-.]|$)/.exec(file);
  return m ? kindRefusal(v, m[1] as 'sign' | 'auth', file) : null;
}

function apiKeyOf(req: FastifyRequest): string | undefined {
  const x = req.headers['x-api-key'];
  if (typeof x === 'string' && x !== '') return x.trim();
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

const peerFingerprints = new WeakMap<object, string>();
/** SHA-256 (hex) of the TLS client certificate, once per connection; undefined without one. */
function clientCertificateFingerprint(req: FastifyRequest): string | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (!socket.encrypted || typeof socket.getPeerX509Certificate !== 'function') return undefined;
  let fp = peerFingerprints.get(socket);
  if (fp === undefined) {
    const peer = socket.getPeerX509Certificate();
    fp = peer ? sha256Hex(peer.raw) : '';
    peerFingerprints.set(socket, fp);
  }
  return fp || undefined;
}

async function plugin(app: FastifyInstance, opts: VerifierAccessOptions): Promise<void> {
  const { authority } = opts;
  const now = opts.now ?? Date.now;
  const configured = opts.revocationAccess ?? authority.config.revocationAccess ?? 'public';
  if (!REVOCATION_ACCESS_MODES.includes(configured))
    throw new Error(`authority.json: revocationAccess must be one of ${REVOCATION_ACCESS_MODES.join(', ')}`);
  const revocationAccess: RevocationAccess = configured;
  const settings = loadVerifierSettings(authority.dataDir, opts.settings);
  const db = authority.store.db;
  const registry = new VerifierRegistry(db, {
    now,
    credentialCacheMs: settings.credentialCacheMs,
    // verifiers.json names another CA, or else the authority's own verifier CA trusts the client certificates.
    clientCa: settings.clientCa
      ? { path: settings.clientCa }
      : authority.hasVerifierCa
        ? authority.certificate('verifier')
        : undefined,
  });
  const meter = new UsageMeter(db, {
    flushIntervalMs: settings.metering.flushIntervalMs,
    flushCount: settings.metering.flushCount,
    now,
    onError: (err) => app.log.error({ err }, 'usage flush failed; the counts are kept and retried'),
  });
  const billing = new VerifierBilling(db, registry, { tariff: settings.tariff, meter, now });
  const rateLimiter = new RateLimiter(settings.rateLimit, now);

  async function identify(req: FastifyRequest): Promise<Authentication> {
    const key = apiKeyOf(req);
    if (key !== undefined) return registry.authenticateApiKey(key);
    const fp = clientCertificateFingerprint(req);
    if (fp !== undefined) return registry.authenticateCertificate(fp);
    return MISSING_CREDENTIAL;
  }

  app.decorate('verifiers', { revocationAccess, settings, registry, meter, billing, rateLimiter, identify });
  app.decorateRequest('verifier', null);

  function refuse(reply: FastifyReply, kind: UsageKind, r: AccessRefusal): FastifyReply {
    reply.code(r.status).header('cache-control', 'no-store').header('x-jpki-refusal', r.code);
    if (r.status === 401) {
      const error =
        r.code === 'missing-credential'
          ? ''
          : `, error="invalid_token", error_description="${r.message.replace(/["\\]/g, '')}"`;
      reply.header('www-authenticate', `Bearer realm="jpki-revocation"${error}`);
    }
    if (kind === 'ocsp') return reply.type('application/ocsp-response').send(OCSP_UNAUTHORIZED);
    return reply.send({ error: r.status === 401 ? 'Unauthorized' : 'Forbidden', message: r.message });
  }

  app.addHook('onRequest', async (req, reply) => {
    const kind = revocationKind(req.routeOptions.url);
    if (!kind) return;
    const presented = apiKeyOf(req) !== undefined || clientCertificateFingerprint(req) !== undefined;
    if (!presented) {
      if (revocationAccess === 'public') return;
      return refuse(reply, kind, MISSING_CREDENTIAL);
    }
    const auth = await identify(req);
    if (!auth.ok) return refuse(reply, kind, auth);
    const refused =
      revocationRefusal(auth.verifier, now()) ?? certificateKindRefusal(auth.verifier, kind, req);
    if (refused) return refuse(reply, kind, refused);
    const wait = rateLimiter.take(auth.verifier.verifierId);
    if (wait > 0) {
      reply.code(429).header('retry-after', String(wait)).header('cache-control', 'no-store');
      reply.header('x-jpki-refusal', 'rate-limited');
      if (kind === 'ocsp') return reply.type('application/ocsp-response').send(OCSP_TRY_LATER);
      return reply.send({
        error: 'TooManyRequests',
        message: `verifier ${auth.verifier.verifierId} is over its rate limit of ${settings.rateLimit.requestsPerSecond} requests per second; retry after ${wait} s`,
      });
    }
    req.verifier = auth.verifier;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const v = req.verifier;
    if (!v || reply.statusCode !== 200 || req.method === 'HEAD') return payload;
    const kind = revocationKind(req.routeOptions.url);
    if (kind && (kind !== 'ocsp' || isSuccessfulOcsp(payload))) meter.count(v.verifierId, kind);
    return payload;
  });

  meter.start();
  app.addHook('onClose', async () => {
    try {
      await meter.stop();
    } catch (err) {
      app.log.error({ err, pending: meter.pending }, 'usage could not be written at shutdown');
    }
  });
}

// Not encapsulated (what fastify-plugin does): the hooks and decorations belong to the server itself.
(plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export const verifierAccess: FastifyPluginAsync<VerifierAccessOptions> = plugin;
