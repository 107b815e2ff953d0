// The authority's HTTP face as its users see it: operators issuing and revoking through the API,
// relying parties fetching CA certificates and CRLs and asking OCSP. Real keys, real store (SQLite,
// and PostgreSQL when JPKI_TEST_POSTGRES_URL is set), requests and answers checked with openssl.

import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBasicFactsSan } from '../../src/core/basic-facts.ts';
import { OID } from '../../src/core/oids.ts';
import { decodePem, encodePem } from '../../src/core/pem.ts';
import { buildServer, MAX_OCSP_REQUEST_BYTES } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures shared by every backend: requests made by openssl, and a foreign CA.

const tmp = tempDir('jpki-http-');
const csr: Record<'rsa' | 'rsa2' | 'ec' | 'rsa1024' | 'p384', string> = {
  rsa: '',
  rsa2: '',
  ec: '',
  rsa1024: '',
  p384: '',
};

function mustOpenssl(args: readonly string[], input?: string | Buffer): string {
  const r = openssl(args, { cwd: tmp.dir, input });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}

beforeAll(() => {
  csr.rsa = readFileSync(opensslCsr(tmp.dir, 'rsa', 'rsa:2048').csrPath, 'utf8');
  csr.rsa2 = readFileSync(opensslCsr(tmp.dir, 'rsa2', 'rsa:2048').csrPath, 'utf8');
  csr.ec = readFileSync(opensslCsr(tmp.dir, 'ec', 'ec').csrPath, 'utf8');
  csr.rsa1024 = readFileSync(opensslCsr(tmp.dir, 'rsa1024', 'rsa:1024').csrPath, 'utf8');
  csr.p384 = readFileSync(opensslCsr(tmp.dir, 'p384', 'ec-p384').csrPath, 'utf8');
  // A CA that is not ours, with a certificate of its own.
  mustOpenssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'other-ca.key',
    '-out',
    'other-ca.pem',
    '-subj',
    '/C=JP/O=Other/CN=Other CA',
    '-days',
    '30',
  ]);
});

afterAll(() => tmp.cleanup());

const FACTS = {
  name: '山田 太郎',
  dateOfBirth: '1990-04-01',
  sex: 'M',
  address: '東京都千代田区霞が関1-2-2',
};

/** The signature value is the last bytes of the DER: flip one of them. */
function tamperSignature(pem: string): string {
  const der = decodePem(pem, ['CERTIFICATE REQUEST']);
  der[der.length - 5]! ^= 0x01;
  return encodePem('CERTIFICATE REQUEST', der);
}

function truncatePem(pem: string): string {
  const der = decodePem(pem, ['CERTIFICATE REQUEST']);
  return encodePem('CERTIFICATE REQUEST', der.subarray(0, der.length - 40));
}

interface OcspView {
  responseStatus: number;
  certStatus?: 'good' | 'revoked' | 'unknown';
  revocationReason?: number;
  revocationTime?: Date;
  thisUpdate?: Date;
  nextUpdate?: Date;
}

function parseOcspResponse(der: Buffer): OcspView {
  const resp = AsnConvert.parse(der, OCSPResponse);
  if (!resp.responseBytes) return { responseStatus: resp.responseStatus };
  expect(resp.responseBytes.responseType).toBe(OID.ocspBasic);
  const basic = AsnConvert.parse(resp.responseBytes.response.buffer, BasicOCSPResponse);
  const single = basic.tbsResponseData.responses[0]!;
  const s = single.certStatus;
  const certStatus = s.revoked ? 'revoked' : s.unknown !== undefined ? 'unknown' : 'good';
  return {
    responseStatus: resp.responseStatus,
    certStatus,
    revocationReason: s.revoked?.revocationReason?.reason,
    revocationTime: s.revoked?.revocationTime,
    thisUpdate: single.thisUpdate,
    nextUpdate: single.nextUpdate,
  };
}

describe.each(testStores())('HTTP server (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  let auth: Record<string, string>;
  /** Files in the fixture directory, per backend. */
  const f = (name: string) => tmp.path(`${backend}-${name}`);

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    app = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken });
    auth = { authorization: `Bearer ${ta.operatorToken}` };
    for (const id of ['root', 'sign', 'auth'] as const) writeFileSync(f(`${id}.pem`), ta.certPem(id));
  });

  afterAll(async () => {
    await app?.close();
    await ta?.close();
  });

  async function countCertificates(): Promise<number> {
    const row = await ta.authority.store.db
      .selectFrom('certificates')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  function issue(body: unknown, headers: Record<string, string> = auth) {
    return app.inject({ method: 'POST', url: '/api/v1/certificates', headers, payload: body as object });
  }

  /** Issues through the API and returns the JSON (expects 201). */
  async function issueOk(kind: 'sign' | 'auth', csrPem = csr.rsa) {
    const res = await issue(kind === 'sign' ? { kind, csr: csrPem, facts: FACTS } : { kind, csr: csrPem });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { serial: string; pem: string; kind: string; subject: string; status: string };
  }

  function revoke(serial: string, body: unknown, headers: Record<string, string> = auth) {
    return app.inject({
      method: 'POST',
      url: `/api/v1/certificates/${serial}/revocation`,
      headers,
      payload: body as object,
    });
  }

  function ocspRequest(name: string, issuer: string, cert: string, opts: { nonce?: boolean } = {}): Buffer {
    const out = f(`${name}.req.der`);
    mustOpenssl([
      'ocsp',
      '-issuer',
      issuer,
      ...(cert.startsWith('0x') ? ['-serial', cert] : ['-cert', cert]),
      opts.nonce ? '-nonce' : '-no_nonce',
      '-reqout',
      out,
    ]);
    return readFileSync(out);
  }

  function postOcsp(body: Buffer | string, contentType = 'application/ocsp-request') {
    return app.inject({
      method: 'POST',
      url: '/ocsp',
      headers: { 'content-type': contentType },
      payload: body,
    });
  }

  // -------------------------------------------------------------------------------------------
  describe('operator API: issuance', () => {
    it('refuses a request without a token (401) and with a wrong token (403)', async () => {
      const before = await countCertificates();
      const none = await issue({ kind: 'auth', csr: csr.rsa }, {});
      expect(none.statusCode).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect(none.json()).toMatchObject({ error: 'Unauthorized' });
      const basic = await issue({ kind: 'auth', csr: csr.rsa }, { authorization: 'Basic dXNlcjpwYXNz' });
      expect(basic.statusCode).toBe(401);
      const sameLength = `${ta.operatorToken.slice(0, -1)}${ta.operatorToken.endsWith('A') ? 'B' : 'A'}`;
      for (const token of ['wrong', sameLength, `${ta.operatorToken}x`]) {
        const res = await issue({ kind: 'auth', csr: csr.rsa }, { authorization: `Bearer ${token}` });
        expect(res.statusCode, token).toBe(403);
        expect(res.json()).toMatchObject({ error: 'Forbidden' });
      }
      expect(await countCertificates()).toBe(before);
    });

    it('checks the token before the body: no schema details or parsing for anonymous callers', async () => {
      for (const payload of [{}, { kind: 'root' }, 'not json']) {
        const res = await app.inject({
          method: 'POST',
          url: '/api/v1/certificates',
          headers: { 'content-type': 'application/json' },
          payload: payload as string,
        });
        expect(res.statusCode, JSON.stringify(payload)).toBe(401);
      }
      const big = await app.inject({
        method: 'POST',
        url: '/api/v1/crls/sign',
        headers: { 'content-type': 'text/plain', authorization: 'Bearer nope' },
        payload: 'x'.repeat(1000),
      });
      expect(big.statusCode).toBe(403);
    });

    it('issues an authentication certificate (201) chained to the auth CA, with no personal data', async () => {
      const before = await countCertificates();
      const body = await issueOk('auth', csr.ec);
      expect(body).toMatchObject({ kind: 'auth', status: 'valid', revocation: null });
      expect(body.serial).toMatch(/^[0-9a-f]+$/);
      const cert = new X509Certificate(body.pem);
      const ca = new X509Certificate(ta.certPem('auth'));
      expect(cert.issuer).toBe(ca.subject);
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.serialNumber.toLowerCase()).toBe(body.serial.replace(/^00/, ''));
      expect(cert.subjectAltName).toBeUndefined();
      expect(cert.subject).not.toMatch(/L=/);
      // the public key is the request's
      const reqKey = mustOpenssl(['req', '-in', 'ec.csr', '-pubkey', '-noout']);
      expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(reqKey);
      expect(await countCertificates()).toBe(before + 1);
      // openssl agrees it chains to the root
      writeFileSync(f('auth-ee.pem'), body.pem);
      const v = openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('auth.pem'), f('auth-ee.pem')]);
      expect(v.output).toMatch(/: OK/);
    });

    it('issues a signature certificate carrying the four basic facts in subjectAltName', async () => {
      const body = await issueOk('sign');
      const cert = new X509Certificate(body.pem);
      expect(cert.issuer).toBe(new X509Certificate(ta.certPem('sign')).subject);
      expect(cert.subject).toContain('L=東京都');
      expect(cert.subject).toContain('L=千代田区');
      const parsed = AsnConvert.parse(cert.raw, Certificate);
      const san = parsed.tbsCertificate.extensions?.find((e) => e.extnID === OID.subjectAltName);
      expect(san).toBeDefined();
      expect(decodeBasicFactsSan(new Uint8Array(san!.extnValue.buffer))).toEqual({
        name: '山田\u3000太郎',
        dateOfBirth: '1990-04-01',
        sex: 'male',
        address: '東京都千代田区霞が関1-2-2',
        nameSubstitutes: '00000',
        addressSubstitutes: '000000000000000',
      });
      writeFileSync(f('sign-ee.pem'), body.pem);
      const text = mustOpenssl(['x509', '-in', f('sign-ee.pem'), '-noout', '-ext', 'subjectAltName']);
      expect(text).toContain('othername: 1.2.392.200149.8.5.5.1::山田\u3000太郎');
      expect(text).toContain('1.2.392.200149.8.5.5.4::419900401');
      expect(text).toContain('1.2.392.200149.8.5.5.5::東京都千代田区霞が関1-2-2');
    });

    it('refuses a signature certificate without facts and an authentication certificate with facts (400)', async () => {
      const before = await countCertificates();
      const noFacts = await issue({ kind: 'sign', csr: csr.rsa });
      expect(noFacts.statusCode).toBe(400);
      expect(noFacts.json().message).toMatch(/facts/);
      const withFacts = await issue({ kind: 'auth', csr: csr.rsa, facts: FACTS });
      expect(withFacts.statusCode).toBe(400);
      expect(withFacts.json().message).toMatch(/no personal data/);
      const badDate = await issue({
        kind: 'sign',
        csr: csr.rsa,
        facts: { ...FACTS, dateOfBirth: '1990-02-30' },
      });
      expect(badDate.statusCode).toBe(400);
      expect(badDate.json().message).toMatch(/date of birth/);
      const future = await issue({
        kind: 'sign',
        csr: csr.rsa,
        facts: { ...FACTS, dateOfBirth: '2999-01-01' },
      });
      expect(future.statusCode).toBe(400);
      const badSex = await issue({ kind: 'sign', csr: csr.rsa, facts: { ...FACTS, sex: 'X' } });
      expect(badSex.statusCode).toBe(400);
      const badKind = await issue({ kind: 'root', csr: csr.rsa });
      expect(badKind.statusCode).toBe(400);
      // an unknown field is refused, not silently dropped (a misspelt counterId would be lost)
      const extra = await issue({ kind: 'auth', csr: csr.rsa, counterID: 'C1' });
      expect(extra.statusCode).toBe(400);
      expect(extra.json()).toEqual({
        error: 'BadRequest',
        message: expect.stringMatching(/additional properties/),
      });
      const missing = await issue({ kind: 'auth' });
      expect(missing.statusCode).toBe(400);
      expect(missing.json()).toEqual({ error: 'BadRequest', message: expect.stringMatching(/'csr'/) });
      expect(await countCertificates()).toBe(before);
    });

    const badRequests: [string, () => string, RegExp][] = [
      ['garbage', () => 'hello, I am not a certificate request', /PEM block|PKCS#10/],
      ['truncated', () => truncatePem(csr.rsa), /not valid PKCS#10/],
      ['damaged base64', () => csr.rsa.replace(/\n[A-Za-z]/, '\n!'), /damaged base64/],
      ['tampered signature', () => tamperSignature(csr.rsa), /signature does not verify/],
      ['RSA-1024', () => csr.rsa1024, /1024 bits is too weak/],
      ['P-384', () => csr.p384, /P-256 only/],
      ['a certificate instead of a request', () => ta.certPem('root'), /no CERTIFICATE REQUEST PEM block/],
    ];
    it.each(badRequests)(
      'refuses a %s request with 400, a clear message and no row',
      async (_, make, message) => {
        for (const kind of ['auth', 'sign'] as const) {
          const before = await countCertificates();
          const res = await issue(
            kind === 'sign' ? { kind, csr: make(), facts: FACTS } : { kind, csr: make() },
          );
          expect(res.statusCode, res.body).toBe(400);
          const body = res.json();
          expect(body.error).toBe('CsrError');
          expect(body.message).toMatch(message);
          expect(await countCertificates()).toBe(before);
        }
      },
    );

    it('refuses a body over 64 KB (413), a non-JSON content type (415) and malformed JSON (400)', async () => {
      const before = await countCertificates();
      const big = await app.inject({
        method: 'POST',
        url: '/api/v1/certificates',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: JSON.stringify({ kind: 'auth', csr: csr.rsa, pad: 'x'.repeat(70 * 1024) }),
      });
      expect(big.statusCode).toBe(413);
      expect(big.json()).toMatchObject({ error: 'PayloadTooLarge' });

      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
        const res = await app.inject({
          method: 'POST',
          url: '/api/v1/certificates',
          headers: { ...auth, 'content-type': type },
          payload: type === 'text/plain' ? csr.rsa : `kind=auth&csr=${encodeURIComponent(csr.rsa)}`,
        });
        expect(res.statusCode, `${type}: ${res.body}`).toBe(415);
        expect(res.json()).toEqual({ error: 'UnsupportedMediaType', message: expect.any(String) });
      }

      const malformed = await app.inject({
        method: 'POST',
        url: '/api/v1/certificates',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: '{"kind": "auth", "csr": ',
      });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json()).toEqual({ error: 'BadRequest', message: expect.stringMatching(/JSON/) });
      expect(await countCertificates()).toBe(before);
    });

    it('never answers 500 to a client mistake on the API', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/certificates',
        headers: { ...auth, 'content-type': 'application/json' },
        payload: 'null',
      });
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('operator API: lookup and revocation', () => {
    let serial: string;
    beforeAll(async () => {
      serial = (await issueOk('auth')).serial;
    });

    it('finds a certificate by serial in any usual spelling, 404 for an unknown one, 400 for garbage', async () => {
      const res = await app.inject({ url: `/api/v1/certificates/${serial}`, headers: auth });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ serial, kind: 'auth', status: 'valid', revocation: null });
      expect(new X509Certificate(body.pem).serialNumber.toLowerCase()).toBe(serial.replace(/^00/, ''));

      const upper = serial.replace(/^00/, '').toUpperCase();
      const colons = upper.match(/../g)!.join(':');
      for (const spelling of [upper, colons, `0x${upper}`]) {
        const alt = await app.inject({
          url: `/api/v1/certificates/${encodeURIComponent(spelling)}`,
          headers: auth,
        });
        expect(alt.statusCode, spelling).toBe(200);
        expect(alt.json().serial).toBe(serial);
      }

      const unknown = await app.inject({ url: '/api/v1/certificates/0123456789abcdef', headers: auth });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ error: 'NotFound' });
      for (const garbage of ['not-a-serial', 'zz', '12g4']) {
        const bad = await app.inject({ url: `/api/v1/certificates/${garbage}`, headers: auth });
        expect(bad.statusCode, garbage).toBe(400);
        expect(bad.json().message).toMatch(/serial/);
      }
      const tooLong = await app.inject({ url: `/api/v1/certificates/${'a'.repeat(100)}`, headers: auth });
      expect(tooLong.statusCode).toBe(400);
      const anonymous = await app.inject({ url: `/api/v1/certificates/${serial}` });
      expect(anonymous.statusCode).toBe(401);
    });

    it('revokes once: the first reason and time stand, a second revocation reports created false', async () => {
      const anonymous = await revoke(serial, { reason: 'keyCompromise' }, {});
      expect(anonymous.statusCode).toBe(401);

      const first = await revoke(serial, { reason: 'keyCompromise' });
      expect(first.statusCode).toBe(200);
      const a = first.json();
      expect(a).toMatchObject({ serial, reason: 'keyCompromise', created: true });
      expect(Math.abs(Date.parse(a.revokedAt) - Date.now())).toBeLessThan(60_000);

      const second = await revoke(serial, { reason: 'superseded' });
      expect(second.statusCode).toBe(200);
      expect(second.json()).toEqual({ ...a, created: false });

      const found = await app.inject({ url: `/api/v1/certificates/${serial}`, headers: auth });
      expect(found.json()).toMatchObject({
        status: 'revoked',
        revocation: { reason: 'keyCompromise', revokedAt: a.revokedAt },
      });
    });

    it('revocation: 404 for an unknown serial, 400 for an invalid reason, serial or time', async () => {
      const unknown = await revoke('0123456789abcdef', { reason: 'keyCompromise' });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toHaveProperty('message');

      const other = (await issueOk('auth')).serial;
      for (const body of [
        { reason: 'lostMyCard' },
        { reason: 'certificateHold' },
        { reason: 1 },
        { reason: 'keyCompromise', extra: 1 },
        { reason: 'keyCompromise', revokedAt: 'yesterday' },
        { reason: 'keyCompromise', revokedAt: new Date(Date.now() + 86400_000).toISOString() },
      ]) {
        const res = await revoke(other, body);
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        expect(res.json()).toHaveProperty('message');
      }
      const garbage = await revoke('xyz', { reason: 'keyCompromise' });
      expect(garbage.statusCode).toBe(400);
      // none of those revoked it
      const still = await app.inject({ url: `/api/v1/certificates/${other}`, headers: auth });
      expect(still.json()).toMatchObject({ status: 'valid', revocation: null });
    });

    it('revokes with an explicit past time and reason, and with no body (unspecified)', async () => {
      const a = (await issueOk('auth')).serial;
      const at = new Date(Date.now() - 3600_000);
      at.setMilliseconds(0);
      const res = await revoke(a, { reason: 'affiliationChanged', revokedAt: at.toISOString() });
      expect(res.json()).toMatchObject({
        reason: 'affiliationChanged',
        revokedAt: at.toISOString(),
        created: true,
      });

      const b = (await issueOk('auth')).serial;
      const noBody = await app.inject({
        method: 'POST',
        url: `/api/v1/certificates/${b}/revocation`,
        headers: auth,
      });
      expect(noBody.statusCode, noBody.body).toBe(200);
      expect(noBody.json()).toMatchObject({ reason: 'unspecified', created: true });
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('CA certificates', () => {
    it('serves each certificate as DER and PEM, byte for byte the files', async () => {
      for (const id of ['root', 'sign', 'auth', 'sign-ocsp', 'auth-ocsp'] as const) {
        const pem = ta.certPem(id);
        const der = decodePem(pem, ['CERTIFICATE']);
        for (const ext of ['der', 'crt']) {
          const res = await app.inject({ url: `/ca/${id}.${ext}` });
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-type']).toBe('application/pkix-cert');
          expect(res.rawPayload.equals(der)).toBe(true);
          expect(res.headers.etag).toMatch(/^"[0-9a-f]+"$/);
          expect(res.headers['cache-control']).toMatch(/max-age=\d+/);
        }
        const res = await app.inject({ url: `/ca/${id}.pem` });
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/x-pem-file/);
        expect(res.body).toBe(pem);
      }
    });

    it('404 for anything else', async () => {
      for (const name of ['nope.der', 'root', 'root.key', 'root.pem.bak', '..%2Fauthority.json']) {
        const res = await app.inject({ url: `/ca/${name}` });
        expect(res.statusCode, name).toBe(404);
      }
      const traversal = await app.inject({ url: '/ca/../keys/jpki-root.key.pem' });
      expect(traversal.statusCode).toBe(404);
      expect(traversal.body).not.toMatch(/PRIVATE KEY/);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('CRLs', () => {
    const buildCrl = (ca: string, body: object = {}) =>
      app.inject({ method: 'POST', url: `/api/v1/crls/${ca}`, headers: auth, payload: body });

    function crlText(name: string, der: Buffer): string {
      writeFileSync(f(name), der);
      return mustOpenssl(['crl', '-inform', 'DER', '-in', f(name), '-noout', '-text']);
    }

    it('building needs the operator token and a known CA', async () => {
      expect((await app.inject({ method: 'POST', url: '/api/v1/crls/sign', payload: {} })).statusCode).toBe(
        401,
      );
      expect((await buildCrl('nope')).statusCode).toBe(400);
      expect((await buildCrl('sign', { delta: 'yes' })).statusCode).toBe(400);
    });

    it('a delta CRL needs a full one first; no CRL is served before one is built', async () => {
      expect((await app.inject({ url: '/crl/auth.crl' })).statusCode).toBe(404);
      expect((await app.inject({ url: '/crl/auth-delta.crl' })).statusCode).toBe(404);
      const delta = await buildCrl('auth', { delta: true });
      expect(delta.statusCode).toBe(400);
      expect(delta.json().message).toMatch(/no full CRL/);
      expect((await app.inject({ url: '/crl/nope.crl' })).statusCode).toBe(404);
    });

    it('serves a full CRL with validators and caching headers, 304 on If-None-Match', async () => {
      const built = await buildCrl('sign');
      expect(built.statusCode).toBe(201);
      const info = built.json();
      expect(info).toMatchObject({ ca: 'sign', kind: 'full' });

      expect((await app.inject({ url: '/crl/sign-delta.crl' })).statusCode).toBe(404);

      const res = await app.inject({ url: '/crl/sign.crl' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/pkix-crl');
      const etag = res.headers.etag as string;
      expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
      expect(Date.parse(res.headers['last-modified'] as string)).toBe(Date.parse(info.thisUpdate));
      expect(Date.parse(res.headers.expires as string)).toBe(Date.parse(info.nextUpdate));
      const maxAge = Number(/max-age=(\d+)/.exec(res.headers['cache-control'] as string)?.[1]);
      const expected = (Date.parse(info.nextUpdate) - Date.now()) / 1000;
      expect(Math.abs(maxAge - expected)).toBeLessThan(5);
      expect(maxAge).toBeGreaterThan(23 * 3600);

      const text = crlText('sign-full.crl', res.rawPayload);
      expect(text).toMatch(/Issuer: C\s*=\s*JP, O\s*=\s*JPKI, OU\s*=\s*JPKI for digital signature/);
      expect(text).toMatch(new RegExp(`X509v3 CRL Number: \\n\\s*${info.number}\\b`));
      // signed by the sign CA
      const verified = openssl([
        'crl',
        '-inform',
        'DER',
        '-in',
        f('sign-full.crl'),
        '-noout',
        '-CAfile',
        f('sign.pem'),
      ]);
      expect(verified.output).toMatch(/verify OK/);

      const again = await app.inject({ url: '/crl/sign.crl', headers: { 'if-none-match': etag } });
      expect(again.statusCode).toBe(304);
      expect(again.rawPayload.length).toBe(0);
      const list = await app.inject({ url: '/crl/sign.crl', headers: { 'if-none-match': `"x", ${etag}` } });
      expect(list.statusCode).toBe(304);
      const stale = await app.inject({ url: '/crl/sign.crl', headers: { 'if-none-match': '"0000"' } });
      expect(stale.statusCode).toBe(200);
    });

    it('a delta CRL built after a revocation lists it, the full CRL built before does not', async () => {
      const cert = await issueOk('sign');
      const full = await buildCrl('sign');
      expect(full.statusCode).toBe(201);
      const fullDer = (await app.inject({ url: '/crl/sign.crl' })).rawPayload;
      const hex = cert.serial.replace(/^00/, '').toUpperCase();
      expect(crlText('sign-before.crl', fullDer)).not.toContain(hex);

      expect((await revoke(cert.serial, { reason: 'keyCompromise' })).json().created).toBe(true);
      const built = await buildCrl('sign', { delta: true });
      expect(built.statusCode).toBe(201);
      expect(built.json()).toMatchObject({ kind: 'delta', entries: 1 });
      expect(built.json().number).toBe(full.json().number + 1);

      const res = await app.inject({ url: '/crl/sign-delta.crl' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/pkix-crl');
      const maxAge = Number(/max-age=(\d+)/.exec(res.headers['cache-control'] as string)?.[1]);
      expect(maxAge).toBeGreaterThan(3500);
      expect(maxAge).toBeLessThanOrEqual(3600);
      const text = crlText('sign-delta.crl', res.rawPayload);
      expect(text).toMatch(/Delta CRL Indicator: critical\n\s*(\d+)/);
      expect(text).toContain(`Serial Number: ${hex}`);
      expect(text).toMatch(/Key Compromise/);

      // the next full CRL lists it too
      await buildCrl('sign');
      const next = (await app.inject({ url: '/crl/sign.crl' })).rawPayload;
      expect(crlText('sign-after.crl', next)).toContain(`Serial Number: ${hex}`);
    });

    it('builds a CRL when the POST has no body at all (curl -X POST)', async () => {
      const res = await app.inject({ method: 'POST', url: '/api/v1/crls/root', headers: auth });
      expect(res.statusCode, res.body).toBe(201);
      const crl = await app.inject({ url: '/crl/root.crl' });
      expect(crl.statusCode).toBe(200);
      writeFileSync(f('root.crl'), crl.rawPayload);
      const verified = openssl([
        'crl',
        '-inform',
        'DER',
        '-in',
        f('root.crl'),
        '-noout',
        '-CAfile',
        f('root.pem'),
      ]);
      expect(verified.output).toMatch(/verify OK/);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('OCSP', () => {
    let certPem: string;
    let serial: string;
    let reqDer: Buffer;

    beforeAll(async () => {
      const issued = await issueOk('sign');
      certPem = issued.pem;
      serial = issued.serial;
      writeFileSync(f('ocsp-ee.pem'), certPem);
      reqDer = ocspRequest('ocsp-ee', f('sign.pem'), f('ocsp-ee.pem'));
    });

    function opensslCheck(respDer: Buffer, name: string) {
      writeFileSync(f(`${name}.resp.der`), respDer);
      return openssl([
        'ocsp',
        '-respin',
        f(`${name}.resp.der`),
        '-issuer',
        f('sign.pem'),
        '-cert',
        f('ocsp-ee.pem'),
        '-CAfile',
        f('root.pem'),
        '-no_nonce',
      ]).output;
    }

    it('POST answers good, signed by the delegated responder (openssl verifies)', async () => {
      const res = await postOcsp(reqDer);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/ocsp-response');
      expect(res.headers['cache-control']).toBe('no-store');
      const view = parseOcspResponse(res.rawPayload);
      expect(view).toMatchObject({ responseStatus: 0, certStatus: 'good' });
      const out = opensslCheck(res.rawPayload, 'good');
      expect(out).toMatch(/Response verify OK/);
      expect(out).toMatch(/ocsp-ee\.pem: good/);
    });

    it('echoes a nonce (openssl checks it) and does not let HTTP caches keep such answers', async () => {
      const withNonce = ocspRequest('ocsp-nonce', f('sign.pem'), f('ocsp-ee.pem'), { nonce: true });
      const res = await postOcsp(withNonce);
      writeFileSync(f('nonce.resp.der'), res.rawPayload);
      // -reqin (and no -cert, which would make openssl build a new request with a new nonce): the
      // response is checked against the request it answers, nonce included
      const out = openssl([
        'ocsp',
        '-reqin',
        f('ocsp-nonce.req.der'),
        '-respin',
        f('nonce.resp.der'),
        '-issuer',
        f('sign.pem'),
        '-CAfile',
        f('root.pem'),
        '-resp_text',
      ]).output;
      expect(out).toMatch(/Response verify OK/);
      expect(out).not.toMatch(/Nonce Verify error|no nonce/);
      expect(out).toMatch(/Cert Status: good/);
      const get = await app.inject({ url: `/ocsp/${encodeURIComponent(withNonce.toString('base64'))}` });
      expect(get.statusCode).toBe(200);
      expect(get.headers['cache-control']).toBe('no-store');
      expect(get.headers.etag).toBeUndefined();
    });

    it('GET (RFC 5019) answers the same, with Cache-Control, ETag and Last-Modified', async () => {
      for (const encoded of [
        encodeURIComponent(reqDer.toString('base64')),
        reqDer.toString('base64url'),
        reqDer.toString('base64url').replace(/=+$/, ''),
      ]) {
        const res = await app.inject({ url: `/ocsp/${encoded}` });
        expect(res.statusCode, encoded).toBe(200);
        expect(res.headers['content-type']).toBe('application/ocsp-response');
        expect(parseOcspResponse(res.rawPayload)).toMatchObject({ responseStatus: 0, certStatus: 'good' });
        const cc = res.headers['cache-control'] as string;
        expect(cc).toMatch(/public/);
        const maxAge = Number(/max-age=(\d+)/.exec(cc)?.[1]);
        expect(maxAge).toBeGreaterThan(0);
        expect(maxAge).toBeLessThanOrEqual(ta.authority.config.ocsp.httpMaxAgeSeconds);
        expect(res.headers.etag).toMatch(/^"[0-9a-f]+"$/);
        expect(res.headers['last-modified']).toBeDefined();
        expect(Date.parse(res.headers.expires as string)).toBeGreaterThan(Date.now());
      }
    });

    it('a request for another CA’s certificate is answered unauthorized (6)', async () => {
      const foreign = ocspRequest('foreign', tmp.path('other-ca.pem'), '0x01');
      const res = await postOcsp(foreign);
      expect(res.statusCode).toBe(200);
      expect(parseOcspResponse(res.rawPayload)).toEqual({ responseStatus: 6 });
      // openssl with the wrong issuer file: the sign CA's name hash with the auth CA's key hash
      // matches no CA of ours
      const mixed = ocspRequest('mixed', f('auth.pem'), f('ocsp-ee.pem'));
      expect(parseOcspResponse((await postOcsp(mixed)).rawPayload)).toEqual({ responseStatus: 6 });
      // asking the auth CA about the serial of a sign certificate: it did not issue it
      const wrongCa = ocspRequest('wrong-ca', f('auth.pem'), `0x${serial.replace(/^00/, '')}`);
      expect(parseOcspResponse((await postOcsp(wrongCa)).rawPayload)).toMatchObject({
        responseStatus: 0,
        certStatus: 'unknown',
      });
      // a serial that was never issued
      const never = parseOcspResponse(
        (await postOcsp(ocspRequest('never', f('sign.pem'), '0x0123456789'))).rawPayload,
      );
      expect(never).toMatchObject({ responseStatus: 0, certStatus: 'unknown' });
    });

    it('after revocation both POST and GET say revoked (no stale good from any cache)', async () => {
      // warm every cache with "good" first
      const getUrl = `/ocsp/${encodeURIComponent(reqDer.toString('base64'))}`;
      expect(parseOcspResponse((await app.inject({ url: getUrl })).rawPayload).certStatus).toBe('good');
      expect(parseOcspResponse((await postOcsp(reqDer)).rawPayload).certStatus).toBe('good');
      const goodEtag = (await app.inject({ url: getUrl })).headers.etag;

      const r = await revoke(serial, { reason: 'keyCompromise' });
      expect(r.json().created).toBe(true);

      const post = await postOcsp(reqDer);
      const pv = parseOcspResponse(post.rawPayload);
      expect(pv).toMatchObject({ responseStatus: 0, certStatus: 'revoked', revocationReason: 1 });
      expect(pv.revocationTime?.toISOString()).toBe(r.json().revokedAt);
      const get = await app.inject({ url: getUrl });
      expect(parseOcspResponse(get.rawPayload)).toMatchObject({ certStatus: 'revoked', revocationReason: 1 });
      expect(get.headers.etag).not.toBe(goodEtag);
      const out = opensslCheck(get.rawPayload, 'revoked');
      expect(out).toMatch(/Response verify OK/);
      expect(out).toMatch(/ocsp-ee\.pem: revoked/);
      expect(out).toMatch(/Reason: keyCompromise/);
    });

    it('answers malformedRequest (1) with an OCSP body to garbage, never a crash', async () => {
      const bodies: [string, Buffer][] = [
        ['random bytes', Buffer.from('this is not DER at all')],
        ['empty SEQUENCE', Buffer.from([0x30, 0x00])],
        ['truncated request', reqDer.subarray(0, reqDer.length - 3)],
        ['trailing data', Buffer.concat([reqDer, Buffer.from([0])])],
        ['a certificate', decodePem(certPem, ['CERTIFICATE'])],
      ];
      for (const [what, body] of bodies) {
        const res = await postOcsp(body);
        expect([200, 400], what).toContain(res.statusCode);
        expect(res.headers['content-type'], what).toBe('application/ocsp-response');
        expect(parseOcspResponse(res.rawPayload), what).toEqual({ responseStatus: 1 });
      }
      const empty = await app.inject({
        method: 'POST',
        url: '/ocsp',
        headers: { 'content-type': 'application/ocsp-request' },
      });
      expect(empty.statusCode).toBeLessThan(500);
      expect(parseOcspResponse(empty.rawPayload).responseStatus).toBe(1);
    });

    it('refuses a body over the OCSP limit with 413 or malformedRequest', async () => {
      const big = Buffer.alloc(MAX_OCSP_REQUEST_BYTES + 1, 0x30);
      const res = await postOcsp(big);
      expect([200, 400, 413]).toContain(res.statusCode);
      expect(res.headers['content-type']).toBe('application/ocsp-response');
      expect(parseOcspResponse(res.rawPayload)).toEqual({ responseStatus: 1 });
      const huge = await postOcsp(Buffer.alloc(2 * 1024 * 1024, 0x30));
      expect([200, 400, 413]).toContain(huge.statusCode);
      expect(parseOcspResponse(huge.rawPayload)).toEqual({ responseStatus: 1 });
      const longGet = await app.inject({ url: `/ocsp/${'A'.repeat(8000)}` });
      expect(longGet.statusCode).toBeLessThan(500);
      expect(parseOcspResponse(longGet.rawPayload)).toEqual({ responseStatus: 1 });
    });

    it('refuses a wrong content type with 415 and an OCSP body', async () => {
      for (const type of ['text/plain', 'application/json', 'application/octet-stream']) {
        const res = await postOcsp(type === 'application/json' ? '{}' : reqDer, type);
        expect(res.statusCode, type).toBe(415);
        expect(res.headers['content-type'], type).toBe('application/ocsp-response');
        expect(parseOcspResponse(res.rawPayload), type).toEqual({ responseStatus: 1 });
      }
    });

    it('GET with garbage base64 answers malformedRequest', async () => {
      for (const garbage of ['!!!', 'MAo%3D%3D', 'AAAA', 'a%2Fb%2Fc', '%25ZZ', 'A%20B']) {
        const res = await app.inject({ url: `/ocsp/${garbage}` });
        expect(res.statusCode, garbage).toBeLessThan(500);
        expect(res.headers['content-type'], garbage).toBe('application/ocsp-response');
        expect(parseOcspResponse(res.rawPayload), garbage).toEqual({ responseStatus: 1 });
      }
      // a URL that is not valid percent-encoding is refused by the router itself (plain 400)
      const badUrl = await app.inject({ url: '/ocsp/%E0%A4%A' });
      expect(badUrl.statusCode).toBe(400);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('operations', () => {
    it('/healthz reports the store', async () => {
      const res = await app.inject({ url: '/healthz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', store: backend });
    });

    it('/metrics counts OCSP answers by status', async () => {
      await postOcsp(Buffer.from('garbage'));
      const res = await app.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body).toContain('jpki_ocsp_responses_total');
      expect(res.body).toMatch(/jpki_ocsp_responses_total\{status="malformedRequest",method="POST"\} [1-9]/);
      expect(res.body).toMatch(/jpki_certificates_issued_total\{kind="sign"\} [1-9]/);
      expect(res.body).toContain('jpki_http_request_duration_seconds');
    });

    it('/docs/json is an OpenAPI document of the routes', async () => {
      const res = await app.inject({ url: '/docs/json' });
      expect(res.statusCode).toBe(200);
      const doc = res.json();
      expect(doc.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(['/ocsp', '/api/v1/certificates', '/api/v1/certificates/{serial}/revocation']),
      );
      expect(doc.paths['/api/v1/certificates'].post.security).toEqual([{ operator: [] }]);
      expect(JSON.stringify(doc)).not.toContain(ta.operatorToken);
    });
  });
});
