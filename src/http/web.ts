// The clerks' web page (web/, React + Vite) served at /counter/ from its build output (web/dist by
// default), and the verifier console of the same build (verifier.html) at /verifier/; both load their
// assets from /counter/assets/. The pages talk to the API of the same server only, so their content
// security policy allows nothing from elsewhere. When the pages were never built, /counter/ and
// /verifier/ say how to build them instead of answering 404.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

export interface CounterWebOptions {
  /** Directory of the built page (index.html, assets/). Default: web/dist of this checkout. */
  root?: string;
}

export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export async function counterWeb(app: FastifyInstance, opts: CounterWebOptions): Promise<void> {
  const root = opts.root ?? DEFAULT_WEB_ROOT;

  app.get('/counter', { schema: { hide: true } }, (_req, reply) => reply.redirect('/counter/', 301));
  app.get('/verifier', { schema: { hide: true } }, (_req, reply) => reply.redirect('/verifier/', 301));

  const consolePage = join(root, 'verifier.html');
  if (!existsSync(join(root, 'index.html')) || !existsSync(consolePage)) {
    const notBuilt = (_req: unknown, reply: FastifyReply) =>
      reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send(
          '画面はまだビルドされていません / The web pages have not been built: run `npm run build:web` (npm start does it).\n',
        );
    app.get('/counter/*', { schema: { hide: true } }, notBuilt);
    app.get('/verifier/', { schema: { hide: true } }, notBuilt);
    return;
  }

  // The console is one page (views are hash routes); read at each request, like the static files, so a
  // rebuild is served without a restart.
  app.get('/verifier/', { schema: { hide: true } }, async (_req, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return reply
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(await readFile(consolePage));
  });

  await app.register(fastifyStatic, {
    root,
    prefix: '/counter/',
    decorateReply: false,
    index: ['index.html'],
    wildcard: true,
    cacheControl: false,
    setHeaders(reply, path) {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
      // Vite puts a content hash into every asset's name: those never change; index.html always may.
      reply.header(
        'cache-control',
        path.includes(`${join(root, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
}
