// Fetching revocation data over HTTP from a local server (127.0.0.1 only): the authority's CRLs and
// OCSP responder, then the ways fetching fails.

import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crlDistributionPoints, distributionPoint } from '../../src/core/certificate.ts';
import { parseCertificate } from '../../src/core/path/index.ts';
import { RevocationSource } from '../../src/verifier/revocation-source.ts';
import { validateCertificate } from '../../src/verifier/validate-certificate.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { opensslCsr, tempDir } from '../helpers/openssl.ts';
import { makeCert, type TestCert } from './helpers.ts';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void | Promise<void>;

/** An HTTP server on 127.0.0.1 whose routes the tests set; counts requests per path. */
async function startServer() {
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const h = routes.get(path);
      if (!h) {
        res.statusCode = 404;
        res.end();
        return;
      }
      Promise.resolve(h(req, Buffer.concat(chunks), res)).catch(() => {
        res.statusCode = 500;
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    routes,
    hits,
    count: (path: string) => hits.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('online revocation data from the authority', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let ta: TestAuthority;
  const tmp = tempDir('jpki-online-');

  beforeAll(async () => {
    srv = await startServer();
    ta = await createTestAuthority({ baseUrl: srv.base });
    for (const ca of ['root', 'sign', 'auth'] as const) {
      await ta.authority.generateCrl(ca);
      for (const kind of ['full', 'delta'] as const)
        srv.routes.set(`/crl/${ca}${kind === 'delta' ? '-delta' : ''}.crl`, async (_req, _body, res) => {
          const crl = await ta.authority.currentCrl(ca, kind);
          if (!crl) {
            res.statusCode = 404;
            res.end();
            return;
          }
          res.setHeader('content-type', 'application/pkix-crl');
          res.end(crl.der);
        });
    }
    await ta.authority.generateCrl('sign', { delta: true });
    srv.routes.set('/ocsp', async (req, body, res) => {
      if (req.method !== 'POST') {
        res.statusCode = 405;
        res.end();
        return;
      }
      const answer = await ta.authority.ocsp(body);
      res.setHeader('content-type', 'application/ocsp-response');
      res.end(answer.der);
    });
  });
  afterAll(async () => {
    await ta?.close();
    await srv?.close();
    tmp.cleanup();
  });

  async function issue(name: string) {
    const { csrPath } = opensslCsr(tmp.dir, name);
    return ta.authority.issue({
      kind: 'sign',
      csr: readFileSync(csrPath, 'utf8'),
      facts: {
        name: '鈴木 一郎',
        dateOfBirth: '1975-05-05',
        sex: 'male',
        address: '北海道札幌市中央区北1条西2丁目',
      },
    });
  }

  it('fetches the CRLs and the OCSP answer named in the certificates, then serves them from the cache', async () => {
    const cert = await issue('online');
    const source = new RevocationSource({ online: true });
    const input = {
      target: cert.der,
      untrusted: [ta.authority.certificate('sign')],
      trust: [ta.authority.certificate('root')],
      source,
    };
    const r = await validateCertificate(input);
    expect(r.indication, r.message).toBe('TOTAL_PASSED');
    expect(r.fetchErrors).toEqual([]);
    expect(r.revocation[0]).toMatchObject({ source: 'ocsp', status: 'good' });
    expect(r.revocation[1]).toMatchObject({ source: 'crl', status: 'good' });
    expect(srv.count('/ocsp')).toBe(1);
    expect(srv.count('/crl/root.crl')).toBe(1);
    const before = [...srv.hits.values()].reduce((a, b) => a + b, 0);
    const again = await validateCertificate(input);
    expect(again.indication).toBe('TOTAL_PASSED');
    expect([...srv.hits.values()].reduce((a, b) => a + b, 0)).toBe(before);
  });

  it('with OCSP off, uses the CRL and its delta; refetches once the cached CRL reaches nextUpdate', async () => {
    const cert = await issue('crl-only');
    let now = new Date();
    const source = new RevocationSource({ online: true, useOcsp: false, now: () => now });
    const input = {
      target: cert.der,
      untrusted: [ta.authority.certificate('sign')],
      trust: [ta.authority.certificate('root')],
      source,
    };
    const sign0 = srv.count('/crl/sign.crl');
    const r = await validateCertificate(input);
    expect(r.indication, r.message).toBe('TOTAL_PASSED');
    expect(r.revocation[0]).toMatchObject({ source: 'crl', status: 'good' });
    expect(r.revocation[0]!.deltaCrlNumber).toMatch(/^\d+$/);
    expect(srv.count('/crl/sign.crl')).toBe(sign0 + 1);
    await validateCertificate(input);
    expect(srv.count('/crl/sign.crl')).toBe(sign0 + 1); // cached
    // a day later the cached CRL is past its nextUpdate: fetched again (the server still has only
    // that one, so the result is REVOCATION_OUT_OF_BOUNDS)
    now = new Date(Date.now() + 25 * 3600_000);
    const later = await validateCertificate({ ...input, at: now });
    expect(srv.count('/crl/sign.crl')).toBe(sign0 + 2);
    expect(later.subIndication).toBe('REVOCATION_OUT_OF_BOUNDS');
  });

  it('offline, nothing is fetched and the message says so', async () => {
    const cert = await issue('offline');
    const hits = [...srv.hits.values()].reduce((a, b) => a + b, 0);
    const r = await validateCertificate({
      target: cert.der,
      untrusted: [ta.authority.certificate('sign')],
      trust: [ta.authority.certificate('root')],
    });
    expect(r.subIndication).toBe('TRY_LATER');
    expect(r.message).toContain('Offline');
    expect([...srv.hits.values()].reduce((a, b) => a + b, 0)).toBe(hits);
  });
});

describe('fetch failures', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let root: TestCert;

  beforeAll(async () => {
    srv = await startServer();
    root = await makeCert({ subject: [['CN', 'Fetch Root']], ca: true });
  });
  afterAll(async () => {
    await srv?.close();
  });

  /** A leaf whose CRL distribution point is `url`. */
  async function leafWithCrlAt(url: string) {
    const leaf = await makeCert({
      subject: [['CN', `leaf for ${url}`]],
      issuer: root,
      extensions: [crlDistributionPoints(distributionPoint({ uris: [url] }))],
    });
    return { leaf, parsed: parseCertificate(leaf.der), issuer: parseCertificate(root.der) };
  }

  it('an HTTP error becomes TRY_LATER naming the URL', async () => {
    srv.routes.set('/broken.crl', (_q, _b, res) => {
      res.statusCode = 500;
      res.end();
    });
    const { leaf } = await leafWithCrlAt(`${srv.base}/broken.crl`);
    const r = await validateCertificate({ target: leaf.der, trust: [root.der], online: true });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('TRY_LATER');
    expect(r.fetchErrors).toEqual([`${srv.base}/broken.crl: HTTP 500`]);
    expect(r.message).toContain(`${srv.base}/broken.crl: HTTP 500`);
  });

  it('a connection refused, a timeout, an oversized body, a body that is not a CRL', async () => {
    srv.routes.set('/slow.crl', () => {
      /* never answers */
    });
    srv.routes.set('/big.crl', (_q, _b, res) => {
      res.setHeader('content-type', 'application/pkix-crl');
      res.write(Buffer.alloc(3000));
      res.end(Buffer.alloc(3000));
    });
    srv.routes.set('/junk.crl', (_q, _b, res) => {
      res.end('hello');
    });
    const source = new RevocationSource({ online: true, timeoutMs: 300, maxBytes: 4096 });
    const errorFor = async (url: string) => {
      const { parsed, issuer } = await leafWithCrlAt(url);
      const { errors } = await source.fetchFor([{ cert: parsed, issuer }]);
      return errors.join('\n');
    };
    expect(await errorFor('http://127.0.0.1:1/none.crl')).toMatch(/request failed/);
    expect(await errorFor(`${srv.base}/slow.crl`)).toMatch(/no answer within 300 ms/);
    expect(await errorFor(`${srv.base}/big.crl`)).toMatch(/exceeds the limit of 4096 bytes/);
    expect(await errorFor(`${srv.base}/junk.crl`)).toMatch(/not a CRL/);
  });

  it('follows redirects to http only', async () => {
    const crl = await makeCrlFor(root);
    srv.routes.set('/real.crl', (_q, _b, res) => {
      res.end(crl);
    });
    srv.routes.set('/moved.crl', (_q, _b, res) => {
      res.statusCode = 302;
      res.setHeader('location', '/real.crl');
      res.end();
    });
    srv.routes.set('/to-https.crl', (_q, _b, res) => {
      res.statusCode = 301;
      res.setHeader('location', 'https://127.0.0.1/real.crl');
      res.end();
    });
    srv.routes.set('/to-file.crl', (_q, _b, res) => {
      res.statusCode = 302;
      res.setHeader('location', 'file:///etc/passwd');
      res.end();
    });
    const source = new RevocationSource({ online: true });
    const fetchOne = async (url: string) => {
      const { parsed, issuer } = await leafWithCrlAt(url);
      return source.fetchFor([{ cert: parsed, issuer }]);
    };
    expect(await fetchOne(`${srv.base}/moved.crl`)).toEqual({ fetched: 1, errors: [] });
    expect((await fetchOne(`${srv.base}/to-https.crl`)).errors[0]).toMatch(
      /redirect to https:\/\/127\.0\.0\.1\/real\.crl refused/,
    );
    expect((await fetchOne(`${srv.base}/to-file.crl`)).errors[0]).toMatch(/refused/);
    // an https distribution point is not fetched at all
    const { parsed, issuer } = await leafWithCrlAt('https://127.0.0.1/x.crl');
    expect(await source.fetchFor([{ cert: parsed, issuer }])).toEqual({ fetched: 0, errors: [] });
  });

  it('a failed URL is not asked again at once', async () => {
    srv.routes.set('/flaky.crl', (_q, _b, res) => {
      res.statusCode = 503;
      res.end();
    });
    const source = new RevocationSource({ online: true });
    const { parsed, issuer } = await leafWithCrlAt(`${srv.base}/flaky.crl`);
    await source.fetchFor([{ cert: parsed, issuer }]);
    const second = await source.fetchFor([{ cert: parsed, issuer }]);
    expect(second.errors[0]).toContain('HTTP 503');
    expect(srv.count('/flaky.crl')).toBe(1);
  });
});

/** An empty CRL signed by a test CA. */
async function makeCrlFor(ca: TestCert): Promise<Buffer> {
  const { buildCrl } = await import('../../src/core/crl.ts');
  const { keyIdentifier } = await import('../../src/core/spki.ts');
  return buildCrl(
    ca.signer,
    {
      issuerNameDer: ca.name,
      authorityKeyId: keyIdentifier(ca.signer.publicKeySpki),
      crlNumber: 1n,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 3600_000),
    },
    [],
  );
}
