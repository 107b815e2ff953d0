// Partitioned CRLs (issue 5, point 5): each end-entity certificate names its partition's CRL, the
// partition's CRL lists only that partition's revocations and carries an issuingDistributionPoint
// that openssl and our validator match against the certificate's distribution point; deltas per
// partition; the refresh schedule; HTTP, the operator API and `jpki crl --partition`. On SQLite and
// (with JPKI_TEST_POSTGRES_URL) PostgreSQL.

import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority } from '../../src/authority/authority.ts';
import { ConfigError, dataPaths, readConfig } from '../../src/authority/config.ts';
import { describeCrl, issuingDistributionPoint } from '../../src/core/crl.ts';
import {
  checkPartitionCount,
  crlPartitionOf,
  MAX_CRL_PARTITIONS,
  partitionSerialRange,
} from '../../src/core/crl-partition.ts';
import { parseCertificate, parseCrl } from '../../src/core/path/index.ts';
import { encodePem } from '../../src/core/pem.ts';
import { newSerial } from '../../src/core/serial.ts';
import { buildServer } from '../../src/http/server.ts';
import { validateCertificate } from '../../src/verifier/validate-certificate.ts';
import { jpki, ok } from '../cli/jpki.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

describe('partition of a serial', () => {
  it('every serial falls in exactly one partition range, the one crlPartitionOf names', () => {
    for (const count of [2, 4, 64, 256, MAX_CRL_PARTITIONS]) {
      const ranges = Array.from({ length: count }, (_, p) => partitionSerialRange(p, count)!);
      const serials = [
        ...Array.from({ length: 3000 }, () => newSerial().toString('hex')),
        // short and boundary serials: one-octet magnitudes, the sign octet, the ends of the range
        '01',
        '7f',
        '0080',
        '00ff',
        '0100',
        '7fff',
        '008000',
        '00ffff',
        '00ffffffffffffffffffffffffffffffff',
        '01000000000000000000000000000000',
      ];
      for (const s of serials) {
        const p = crlPartitionOf(s, count);
        expect(crlPartitionOf(Buffer.from(s, 'hex'), count)).toBe(p);
        const holders = ranges.flatMap((r, q) => (s >= r.from && s < r.below ? [q] : []));
        expect(holders, `${s} of ${count}`).toEqual([p]);
      }
    }
  });

  it('partitions are about equally full (the serial is random)', () => {
    const counts = new Array(64).fill(0);
    for (let i = 0; i < 64_000; i++) counts[crlPartitionOf(newSerial(), 64)]++;
    // partition 0 holds the magnitudes 0x0100-0x03ff only (a magnitude never starts with 00): 3/4
    for (const [p, n] of counts.entries()) expect(n, `partition ${p}`).toBeGreaterThan(p === 0 ? 550 : 800);
  });

  it('refuses a count that is not a power of two from 1 to 4096', () => {
    for (const bad of [0, 3, 100, 8192, 1.5, -4, '64'])
      expect(() => checkPartitionCount(bad), String(bad)).toThrow(/power of two from 1 to 4096/);
    expect(() => partitionSerialRange(64, 64)).toThrow(/partition 64 does not exist/);
    expect(partitionSerialRange(0, 1)).toBeUndefined();
  });

  it('encodes the issuingDistributionPoint as our parser and RFC 5280 read it', () => {
    const idp = issuingDistributionPoint({
      uri: 'http://x.test/crl/sign-p3.crl',
      onlyContainsUserCerts: true,
    });
    // SEQUENCE { distributionPoint [0] { fullName [0] { [6] uri } }, onlyContainsUserCerts [1] TRUE }
    const uri = Buffer.from('http://x.test/crl/sign-p3.crl');
    const l = uri.length;
    expect(idp.toString('hex')).toBe(
      Buffer.concat([
        Buffer.from([0x30, l + 9, 0xa0, l + 4, 0xa0, l + 2, 0x86, l]),
        uri,
        Buffer.from([0x81, 0x01, 0xff]),
      ]).toString('hex'),
    );
    expect(issuingDistributionPoint({ uri: 'http://x.test/a.crl' })[1]).toBe(19 + 6);
    expect(() => issuingDistributionPoint({ uri: 'http://x.test/ü' })).toThrow(/printable ASCII/);
  });
});

describe('authority.json crl.partitions', () => {
  const tmp = tempDir('jpki-partition-config-');
  afterAll(() => tmp.cleanup());

  it('is 64 for a new authority, 1 for one created before partitions, and refused when invalid', async () => {
    const dir = tmp.path('a');
    await Authority.init({ dataDir: dir, env: { JPKI_KEY_PASSPHRASE: 'test-passphrase-123' } });
    expect(readConfig(dir).crl.partitions).toBe(64);
    const file = dataPaths(dir).config;
    const cfg = JSON.parse(readFileSync(file, 'utf8'));
    cfg.crl = { fullHours: 24, deltaHours: 1 };
    writeFileSync(file, JSON.stringify(cfg));
    expect(readConfig(dir).crl.partitions).toBe(1);
    cfg.crl.partitions = 48;
    writeFileSync(file, JSON.stringify(cfg));
    expect(() => readConfig(dir)).toThrow(ConfigError);
    expect(() => readConfig(dir)).toThrow(/crl.partitions: .*power of two/);
    await expect(
      Authority.init({
        dataDir: tmp.path('b'),
        crlPartitions: 10,
        env: { JPKI_KEY_PASSPHRASE: 'x'.repeat(12) },
      }),
    ).rejects.toThrow(/power of two/);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe.each(testStores())('partitioned CRLs (%s)', (backend) => {
  const tmp = tempDir('jpki-partitions-');
  let ta: TestAuthority;
  let a: Authority;
  let app: FastifyInstance;
  let base: string;
  const f = (name: string) => tmp.path(name);

  interface Issued {
    serial: string;
    der: Buffer;
    pem: string;
    file: string;
    partition: number;
  }
  let certs: Issued[] = [];
  /** The root's CRL, for the issuing CA certificate's own revocation status. */
  let rootCrl: Buffer;

  /** Issues authentication certificates until there are `n` in pairwise different partitions. */
  async function issueInDifferentPartitions(n: number): Promise<Issued[]> {
    const out: Issued[] = [];
    const { csrPath } = opensslCsr(tmp.dir, `ee-${out.length}`, 'ec');
    const csr = readFileSync(csrPath, 'utf8');
    while (out.length < n) {
      const c = await a.issue({ kind: 'auth', csr });
      const partition = a.crlPartitionOf(c.serial);
      if (out.some((o) => o.partition === partition)) continue;
      const file = f(`ee-${c.serial}.pem`);
      writeFileSync(file, c.pem);
      out.push({ serial: c.serial, der: c.der, pem: c.pem, file, partition });
    }
    return out;
  }

  const crlFile = async (name: string, partition: number | undefined, kind: 'full' | 'delta' = 'full') => {
    const crl = await a.currentCrl('auth', kind, partition);
    const path = f(`${name}.crl.pem`);
    writeFileSync(path, encodePem('X509 CRL', crl!.der));
    return { path, der: crl!.der };
  };

  function opensslVerify(cert: string, crls: string[], extra: string[] = []) {
    const args = ['verify', '-CAfile', ta.certPath('root'), '-untrusted', ta.certPath('auth'), '-crl_check'];
    for (const c of crls) args.push('-CRLfile', c);
    return openssl([...args, ...extra, cert]);
  }

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    ta = await createTestAuthority({ backend, baseUrl: base, crlPartitions: 64 });
    a = ta.authority;
    await a.generateCrl('root');
    rootCrl = (await a.currentCrl('root', 'full'))!.der;
    app = await buildServer({ authority: a, operatorToken: ta.operatorToken });
    await app.listen({ port, host: '127.0.0.1' });
    certs = await issueInDifferentPartitions(2);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await ta?.close();
    tmp.cleanup();
  });

  it("a certificate's CRL distribution point and freshest CRL name its partition", () => {
    for (const c of certs) {
      const parsed = parseCertificate(c.der);
      const uris = (dps: typeof parsed.crlDistributionPoints) =>
        (dps ?? []).flatMap((dp) =>
          (dp.fullName ?? []).map((g) => (g.type === 'uniformResourceIdentifier' ? g.value : g.type)),
        );
      expect(uris(parsed.crlDistributionPoints)).toEqual([`${base}/crl/auth-p${c.partition}.crl`]);
      expect(uris(parsed.freshestCrl)).toEqual([`${base}/crl/auth-p${c.partition}-delta.crl`]);
      // openssl reads the same
      const text = new X509Certificate(c.der).toString();
      expect(text).not.toContain('/crl/auth.crl');
    }
  });

  it('lists a revocation on its partition CRL only; openssl and our validator accept, then reject', async () => {
    const [x, y] = certs as [Issued, Issued];
    const before = await a.generateCrl('auth', { partition: x.partition });
    expect(before).toMatchObject({ scope: `auth-p${x.partition}`, partition: x.partition, entries: 0 });
    const xBefore = await crlFile('x-before', x.partition);
    expect(opensslVerify(x.file, [xBefore.path]).output).toMatch(/: OK/);
    const ours = await validateCertificate({
      target: x.der,
      trust: [Buffer.from(ta.certPem('root'))],
      untrusted: [Buffer.from(ta.certPem('auth'))],
      crls: [rootCrl, xBefore.der],
    });
    expect(ours.indication, ours.message).toBe('TOTAL_PASSED');
    expect(ours.revocation[0]).toMatchObject({
      source: 'crl',
      status: 'good',
      crlNumber: String(before.number),
    });

    await a.revoke(x.serial, 'keyCompromise');
    const xAfterRun = await a.generateCrl('auth', { partition: x.partition });
    const yRun = await a.generateCrl('auth', { partition: y.partition });
    expect(xAfterRun.entries).toBe(1);
    expect(xAfterRun.number).toBe(before.number + 1); // numbered per partition
    expect(yRun).toMatchObject({ entries: 0, number: 1 });
    const xAfter = await crlFile('x-after', x.partition);
    const yCrl = await crlFile('y', y.partition);
    expect(
      parseCrl(xAfter.der).find(Buffer.from(x.serial, 'hex'), parseCertificate(x.der).issuer),
    ).toBeDefined();
    expect(parseCrl(yCrl.der).count).toBe(0);
    // the CA's complete CRL still lists it
    await a.generateCrl('auth');
    expect(describeCrl((await a.currentCrl('auth', 'full'))!.der).count).toBe(1);

    const v = opensslVerify(x.file, [xAfter.path]);
    expect(v.status).not.toBe(0);
    expect(v.output).toMatch(/certificate revoked/);
    const r = await validateCertificate({
      target: x.der,
      trust: [Buffer.from(ta.certPem('root'))],
      untrusted: [Buffer.from(ta.certPem('auth'))],
      crls: [rootCrl, xAfter.der],
    });
    expect(r.indication).toBe('TOTAL_FAILED');
    expect(r.revocation[0]).toMatchObject({ status: 'revoked', reason: 'keyCompromise' });

    // y is still good on its own partition's CRL
    expect(opensslVerify(y.file, [yCrl.path]).output).toMatch(/: OK/);
  });

  it("openssl shows the partition CRL's critical issuingDistributionPoint", async () => {
    const [x] = certs as [Issued];
    const text = openssl([
      'crl',
      '-in',
      (await crlFile('x-text', x.partition)).path,
      '-noout',
      '-text',
    ]).stdout;
    expect(text).toMatch(/X509v3 Issuing Distribution Point: critical/);
    expect(text).toContain(`URI:${base}/crl/auth-p${x.partition}.crl`);
    expect(text).toMatch(/Only User Certificates/);
    expect(text).toContain(`URI:${base}/crl/auth-p${x.partition}-delta.crl`); // freshest CRL
  });

  it('does not take the CRL of another partition for a certificate: revocation status unknown', async () => {
    const [x, y] = certs as [Issued, Issued];
    // x is revoked, y's partition CRL does not list it: relying on it would say "good"
    const yCrl = await crlFile('y-for-x', y.partition);
    const v = opensslVerify(x.file, [yCrl.path]);
    expect(v.status).not.toBe(0);
    expect(v.output).toMatch(/different CRL scope/);
    const r = await validateCertificate({
      target: x.der,
      trust: [Buffer.from(ta.certPem('root'))],
      untrusted: [Buffer.from(ta.certPem('auth'))],
      crls: [rootCrl, yCrl.der],
    });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.revocation[0]).toMatchObject({ status: 'unknown' });
    expect(r.message).toMatch(/issuingDistributionPoint does not match the distribution point/);
  });

  it('builds delta CRLs per partition against that partition’s full CRL', async () => {
    const [x, y] = certs as [Issued, Issued];
    const fullY = await a.generateCrl('auth', { partition: y.partition });
    const fullX = await a.currentCrlInfo('auth', 'full', x.partition);
    await a.revoke(y.serial, 'affiliationChanged');
    const dY = await a.generateCrl('auth', { partition: y.partition, delta: true });
    const dX = await a.generateCrl('auth', { partition: x.partition, delta: true });
    expect(dY).toMatchObject({
      kind: 'delta',
      baseNumber: fullY.number,
      number: fullY.number + 1,
      entries: 1,
    });
    expect(dX).toMatchObject({ kind: 'delta', baseNumber: fullX!.number, entries: 0 });
    const deltaDer = (await a.currentCrl('auth', 'delta', y.partition))!.der;
    expect(describeCrl(deltaDer)).toMatchObject({ deltaOf: BigInt(fullY.number), count: 1 });
    // the same issuingDistributionPoint as its base (RFC 5280 5.2.4), so both apply to y
    expect(parseCrl(deltaDer).idp!.der).toEqual(
      parseCrl((await a.currentCrl('auth', 'full', y.partition))!.der).idp!.der,
    );
    const full = await crlFile('y-full', y.partition);
    const delta = await crlFile('y-delta', y.partition, 'delta');
    expect(opensslVerify(y.file, [full.path]).output).toMatch(/: OK/); // not on the full CRL yet
    const v = opensslVerify(y.file, [full.path, delta.path], ['-use_deltas']);
    expect(v.output).toMatch(/certificate revoked/);
    const r = await validateCertificate({
      target: y.der,
      trust: [Buffer.from(ta.certPem('root'))],
      untrusted: [Buffer.from(ta.certPem('auth'))],
      crls: [rootCrl, full.der, delta.der],
    });
    expect(r.revocation[0]).toMatchObject({
      status: 'revoked',
      reason: 'affiliationChanged',
      deltaCrlNumber: String(dY.number),
    });
  });

  it('serves partition CRLs over HTTP with caching headers; our validator fetches them online', async () => {
    const [x] = certs as [Issued];
    await a.generateCrl('auth', { partition: x.partition });
    await a.generateCrl('auth', { partition: x.partition, delta: true });
    const res = await fetch(`${base}/crl/auth-p${x.partition}.crl`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/pkix-crl');
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+/);
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.equals((await a.currentCrl('auth', 'full', x.partition))!.der)).toBe(true);
    const again = await fetch(`${base}/crl/auth-p${x.partition}.crl`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect((await fetch(`${base}/crl/auth-p${x.partition}-delta.crl`)).status).toBe(200);
    for (const missing of ['auth-p64.crl', 'auth-p007.crl', 'root-p1.crl', 'auth-p-1.crl'])
      expect((await fetch(`${base}/crl/${missing}`)).status, missing).toBe(404);

    // online: OCSP would answer first, so with OCSP off the partition CRL and its delta are fetched
    const { RevocationSource } = await import('../../src/verifier/revocation-source.ts');
    const source = new RevocationSource({ online: true, useOcsp: false });
    const r = await validateCertificate({
      target: x.der,
      trust: [Buffer.from(ta.certPem('root'))],
      untrusted: [Buffer.from(ta.certPem('auth'))],
      source,
    });
    expect(r.fetchErrors).toEqual([]);
    expect(r.indication).toBe('TOTAL_FAILED');
    expect(r.revocation[0]).toMatchObject({ source: 'crl', status: 'revoked' });
  });

  it('the operator API builds a partition CRL and refuses a partition that does not exist', async () => {
    const auth = { authorization: `Bearer ${ta.operatorToken}` };
    const okRes = await app.inject({
      method: 'POST',
      url: '/api/v1/crls/auth',
      headers: auth,
      payload: { partition: 5 },
    });
    expect(okRes.statusCode).toBe(201);
    expect(okRes.json()).toMatchObject({
      ca: 'auth',
      partition: 5,
      kind: 'full',
      url: `${base}/crl/auth-p5.crl`,
    });
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v1/crls/auth',
      headers: auth,
      payload: { partition: 64 },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/partition 64 does not exist/);
    const root = await app.inject({
      method: 'POST',
      url: '/api/v1/crls/root',
      headers: auth,
      payload: { partition: 1 },
    });
    expect(root.statusCode).toBe(400);
  });

  it('refreshes only what is missing, near nextUpdate, or changed', async () => {
    const first = await a.refreshCrls();
    const scopes = new Set(first.map((r) => `${r.scope}:${r.kind}`));
    // every series exists now: root, verifier, sign and auth and their 64 partitions each, with deltas
    expect(scopes.has('verifier:full')).toBe(true);
    for (const ca of ['sign', 'auth'])
      for (const s of [ca, `${ca}-p0`, `${ca}-p63`])
        expect(
          await a.currentCrlInfo(ca as 'sign', 'delta', s === ca ? undefined : Number(s.split('-p')[1])),
        ).toBeDefined();
    expect(scopes.has('sign-p17:full')).toBe(true);
    expect(await a.refreshCrls()).toEqual([]); // nothing changed, nothing due
    const [, y] = certs as [Issued, Issued];
    const z = (await issueInDifferentPartitions(1))[0]!;
    await a.revoke(z.serial, 'superseded');
    const after = await a.refreshCrls();
    expect(after.map((r) => `${r.scope}:${r.kind}`).sort()).toEqual(
      [`auth-p${z.partition}:delta`, 'auth:delta'].sort(),
    );
    expect(after.every((r) => r.entries >= 1)).toBe(true);
    // near nextUpdate: a day later every full CRL is due
    const later = await a.refreshCrls(Date.now() + 23 * 3600_000);
    // root, the verifier CA, and sign and auth with their 64 partitions each
    expect(later.filter((r) => r.kind === 'full')).toHaveLength(2 + 2 * 65);
    expect(y).toBeDefined();
  }, 120_000);

  it('jpki crl --partition writes that partition’s CRL', async () => {
    const [x] = certs as [Issued];
    const env = {
      JPKI_KEY_PASSPHRASE: 'test-passphrase-123',
      ...(ta.databaseUrl ? { DATABASE_URL: ta.databaseUrl } : {}),
    };
    const out = f('cli.crl');
    const r = ok(
      await jpki(
        ['crl', '--data', ta.dir, '--ca', 'auth', '--partition', String(x.partition), '--out', out],
        env,
      ),
    );
    expect(r.stderr).toMatch(
      new RegExp(`full CRL #\\d+ of auth partition ${x.partition} \\(auth-p${x.partition}\\) with 1 entries`),
    );
    const text = openssl(['crl', '-inform', 'DER', '-in', out, '-noout', '-text']).stdout;
    expect(text).toContain(`URI:${base}/crl/auth-p${x.partition}.crl`);
    expect(text).toContain(`Serial Number: ${x.serial.replace(/^00/, '').toUpperCase()}`);
    const bad = await jpki(['crl', '--data', ta.dir, '--ca', 'auth', '--partition', '99', '--out', out], env);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/partition 99 does not exist/);
  }, 60_000);
});
