import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { AsnParser, AsnSerializer } from '@peculiar/asn1-schema';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  explicit,
  integer,
  NULL,
  octetString,
  oid,
  readTlv,
  sequence,
  TRUE,
  tlv,
  unsignedInteger,
} from '../../src/core/der.ts';
import {
  buildBasicResponse,
  type CertStatus,
  createResponder,
  errorResponse,
  issuerHashes,
  MAX_OCSP_REQUESTS,
  matchesIssuer,
  OcspRequestError,
  type OcspResponder,
  parseOcspRequest,
  type SingleAnswer,
} from '../../src/core/ocsp.ts';
import { OID } from '../../src/core/oids.ts';
import type { Signer } from '../../src/core/signer.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures, made with the openssl CLI:
//   root (self-signed) -> ca (issuing CA) -> ocsp-rsa, ocsp-ec (delegated responders), ee, ee2
//   other: a self-signed CA with the issuing CA's name but its own key

let dir: string;
const path = (f: string) => join(dir, f);
const file = (f: string) => readFileSync(path(f));
const certDer = (f: string) => Buffer.from(new X509Certificate(file(f)).raw);

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('/usr/bin/openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function mustOpenssl(args: string[]): string {
  const r = openssl(args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.out}`);
  return r.out;
}

function makeCert(
  name: string,
  subject: string,
  key: 'rsa' | 'ec',
  issuer: string,
  serial: string,
  ext: string,
) {
  const newkey =
    key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  writeFileSync(path(`${name}.ext`), ext);
  mustOpenssl([
    'req',
    ...newkey,
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  mustOpenssl([
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`],
    ...['-set_serial', serial, '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`],
  ]);
}

function selfSigned(name: string, subject: string) {
  mustOpenssl([
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`],
    ...['-subj', subject, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n';
const OCSP_EXT =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\nnoCheck=ignored\n';
const EE_EXT = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n';
const EE_SERIAL = 'a1b2c3d4e5f60718'; // top bit set: the INTEGER carries a leading 0x00

let rsaResponder: OcspResponder;
let ecResponder: OcspResponder;
let caHashes: ReturnType<typeof issuerHashes>;

/** Makes an OCSP request with the openssl CLI and returns its DER. */
function opensslRequest(name: string, args: string[]): Buffer {
  mustOpenssl(['ocsp', '-issuer', 'ca.pem', ...args, '-reqout', name]);
  return file(name);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ocsp-test-'));
  selfSigned('root', '/C=JP/O=Test/CN=Test Root');
  makeCert('ca', '/C=JP/O=Test/CN=Test Issuing CA', 'rsa', 'root', '0x10', CA_EXT);
  makeCert('ocsp-rsa', '/C=JP/O=Test/CN=OCSP RSA', 'rsa', 'ca', '0x1001', OCSP_EXT);
  makeCert('ocsp-ec', '/C=JP/O=Test/CN=OCSP EC', 'ec', 'ca', '0x1002', OCSP_EXT);
  makeCert('ee', '/C=JP/CN=EE', 'ec', 'ca', `0x${EE_SERIAL}`, EE_EXT);
  makeCert('ee2', '/C=JP/CN=EE2', 'ec', 'ca', '0x2a', EE_EXT);
  selfSigned('other', '/C=JP/O=Test/CN=Test Issuing CA');

  const load = (name: string) => SoftwareSigner.fromKeyObject(createPrivateKey(file(`${name}.key`)));
  rsaResponder = createResponder(load('ocsp-rsa'), certDer('ocsp-rsa.pem'));
  ecResponder = createResponder(load('ocsp-ec'), certDer('ocsp-ec.pem'));
  caHashes = issuerHashes(certDer('ca.pem'));

  opensslRequest('req.der', ['-cert', 'ee.pem']);
  opensslRequest('req-nononce.der', ['-cert', 'ee.pem', '-no_nonce']);
  opensslRequest('req-two.der', ['-cert', 'ee.pem', '-cert', 'ee2.pem']);
  opensslRequest('req-sha256.der', ['-sha256', '-cert', 'ee.pem', '-cert', 'ee2.pem']);
  opensslRequest('req-signed.der', [
    '-cert',
    'ee.pem',
    '-signer',
    'ocsp-rsa.pem',
    '-signkey',
    'ocsp-rsa.key',
  ]);
  opensslRequest('req-md5.der', ['-md5', '-cert', 'ee.pem']);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Requests

describe('parseOcspRequest', () => {
  it('parses an openssl request with a nonce', () => {
    const der = file('req.der');
    const req = parseOcspRequest(der);
    expect(req.certIds).toHaveLength(1);
    const [id] = req.certIds;
    expect(id!.hashAlgorithm).toBe('sha1');
    expect(id!.serial.toString('hex')).toBe(`00${EE_SERIAL}`);
    expect(id!.issuerNameHash).toEqual(caHashes.sha1.name);
    expect(id!.issuerKeyHash).toEqual(caHashes.sha1.key);
    expect(der.includes(id!.der)).toBe(true);
    expect(id!.der[0]).toBe(0x30);

    // the nonce is the extnValue contents: an OCTET STRING of 16 random bytes from openssl
    const text = mustOpenssl(['ocsp', '-reqin', 'req.der', '-req_text']);
    const nonceHex = /OCSP Nonce:\s*\n\s*([0-9A-F]+)/.exec(text)?.[1];
    expect(req.nonce?.toString('hex').toUpperCase()).toBe(nonceHex);
    expect(req.nonce!.subarray(0, 2)).toEqual(Buffer.from([0x04, 0x10]));
  });

  it('parses a request without a nonce', () => {
    const req = parseOcspRequest(file('req-nononce.der'));
    expect(req.nonce).toBeUndefined();
    expect(req.certIds).toHaveLength(1);
  });

  it('parses several CertIDs, SHA-1 and SHA-256', () => {
    for (const [f, alg, len] of [
      ['req-two.der', 'sha1', 20],
      ['req-sha256.der', 'sha256', 32],
    ] as const) {
      const req = parseOcspRequest(file(f));
      expect(req.certIds.map((c) => c.serial.toString('hex'))).toEqual([`00${EE_SERIAL}`, '2a']);
      for (const id of req.certIds) {
        expect(id.hashAlgorithm).toBe(alg);
        expect(id.issuerNameHash).toHaveLength(len);
        expect(matchesIssuer(id, caHashes)).toBe(true);
      }
      expect(req.certIds[0]!.der.equals(req.certIds[1]!.der)).toBe(false);
    }
  });

  it('matches the right issuer only', () => {
    const root = issuerHashes(certDer('root.pem'));
    const sameName = issuerHashes(certDer('other.pem'));
    expect(sameName.sha1.name).toEqual(caHashes.sha1.name); // same subject, different key
    for (const f of ['req.der', 'req-sha256.der']) {
      for (const id of parseOcspRequest(file(f)).certIds) {
        expect(matchesIssuer(id, caHashes)).toBe(true);
        expect(matchesIssuer(id, root)).toBe(false);
        expect(matchesIssuer(id, sameName)).toBe(false);
      }
    }
  });

  it('accepts a signed request and ignores its signature', () => {
    const der = file('req-signed.der');
    const req = parseOcspRequest(der);
    expect(req.certIds[0]!.serial.toString('hex')).toBe(`00${EE_SERIAL}`);
    expect(req.nonce).toBeDefined();
    // a corrupted signature value changes nothing
    const sigAt = der.lastIndexOf(Buffer.from([0x03, 0x82, 0x01, 0x01, 0x00]));
    expect(sigAt).toBeGreaterThan(0);
    const tampered = Buffer.from(der);
    tampered[sigAt + 10]! ^= 0xff;
    expect(parseOcspRequest(tampered).certIds[0]!.der).toEqual(req.certIds[0]!.der);
  });

  it('does not alias the input buffer', () => {
    const der = Buffer.from(file('req.der'));
    const req = parseOcspRequest(der);
    const before = Buffer.from(req.certIds[0]!.der);
    der.fill(0);
    expect(req.certIds[0]!.der).toEqual(before);
  });
});

// Hand-made requests for the cases openssl will not produce.
const SHA1_ALG = sequence(oid(OID.sha1), NULL);
function certIdDer(
  opts: { alg?: Buffer; nameHash?: Buffer; keyHash?: Buffer; serial?: Buffer } = {},
): Buffer {
  return sequence(
    opts.alg ?? SHA1_ALG,
    octetString(opts.nameHash ?? caHashes.sha1.name),
    octetString(opts.keyHash ?? caHashes.sha1.key),
    opts.serial ?? unsignedInteger(Buffer.from(EE_SERIAL, 'hex')),
  );
}
const extension = (id: string, value: Buffer, critical = false) =>
  sequence(oid(id), ...(critical ? [TRUE] : []), octetString(value));
const nonceExt = (n: Buffer) => extension(OID.ocspNonce, octetString(n));
function requestDer(
  opts: { certIds?: Buffer[]; exts?: Buffer[]; version?: number; singleExts?: Buffer[] } = {},
) {
  const requests = (opts.certIds ?? [certIdDer()]).map((c) =>
    sequence(c, ...(opts.singleExts ? [explicit(0, sequence(...opts.singleExts))] : [])),
  );
  return sequence(
    sequence(
      ...(opts.version !== undefined ? [explicit(0, integer(opts.version))] : []),
      sequence(...requests),
      ...(opts.exts ? [explicit(2, sequence(...opts.exts))] : []),
    ),
  );
}

function expectMalformed(der: Uint8Array): void {
  let thrown: unknown;
  try {
    parseOcspRequest(der);
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `accepted ${Buffer.from(der).toString('hex').slice(0, 80)}`).toBeInstanceOf(
    OcspRequestError,
  );
}

describe('parseOcspRequest on bad input', () => {
  it('accepts the hand-made baseline', () => {
    const nonce = Buffer.alloc(32, 7);
    const req = parseOcspRequest(requestDer({ exts: [nonceExt(nonce)] }));
    expect(req.certIds[0]!.serial.toString('hex')).toBe(`00${EE_SERIAL}`);
    expect(req.nonce).toEqual(octetString(nonce));
    expect(parseOcspRequest(requestDer({ version: 0 })).certIds).toHaveLength(1);
    // unknown non-critical extensions are ignored
    const ignored = extension('1.2.3.4', Buffer.from([5, 0]));
    expect(parseOcspRequest(requestDer({ exts: [ignored], singleExts: [ignored] })).nonce).toBeUndefined();
    // a legacy raw nonce (not wrapped in an OCTET STRING) is accepted and echoed as sent
    expect(parseOcspRequest(requestDer({ exts: [extension(OID.ocspNonce, nonce)] })).nonce).toEqual(nonce);
  });

  it('rejects garbage, empty, truncated and trailing input', () => {
    const der = file('req.der');
    expectMalformed(Buffer.alloc(0));
    expectMalformed(Buffer.from('hello, world; this is not DER at all'));
    expectMalformed(Buffer.from([0x30]));
    expectMalformed(Buffer.from([0x30, 0x00]));
    expectMalformed(Buffer.from([0x05, 0x00]));
    for (let n = 0; n < der.length; n++) expectMalformed(der.subarray(0, n));
    expectMalformed(Buffer.concat([der, Buffer.from([0])]));
    expectMalformed(Buffer.concat([der, der]));
    expectMalformed(Buffer.concat([der, Buffer.from('garbage')]));
  });

  it('rejects huge and deeply nested lengths without hanging', () => {
    const started = Date.now();
    expectMalformed(Buffer.from('3084ffffffff30', 'hex'));
    expectMalformed(Buffer.from('3088ffffffffffffffff3000', 'hex'));
    expectMalformed(Buffer.from('30847fffffff3084ffffffff3084ffffffff', 'hex'));
    expectMalformed(Buffer.from('30ff', 'hex'));
    expectMalformed(Buffer.from('3080', 'hex'));
    // 100 000 levels of indefinite length, and 2 000 levels of (valid) definite lengths
    expectMalformed(Buffer.from('3080'.repeat(100_000) + '0000'.repeat(100_000), 'hex'));
    let deep: Buffer = Buffer.from([0x05, 0x00]);
    for (let i = 0; i < 2000; i++) deep = sequence(deep);
    expectMalformed(deep);
    // a valid request wrapped in non-minimal lengths, and over the size limit
    const der = file('req.der');
    expectMalformed(Buffer.concat([Buffer.from([0x30, 0x81, der[1]!]), der.subarray(2)]));
    expectMalformed(requestDer({ exts: [extension('1.2.3.4', Buffer.alloc(70_000))] }));
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('rejects unsupported hash algorithms and wrong hash lengths', () => {
    expectMalformed(file('req-md5.der'));
    expectMalformed(requestDer({ certIds: [certIdDer({ alg: sequence(oid('1.2.840.113549.2.5'), NULL) })] }));
    expectMalformed(requestDer({ certIds: [certIdDer({ alg: sequence(oid(OID.sha256), NULL) })] })); // 20-byte hashes
    expectMalformed(requestDer({ certIds: [certIdDer({ nameHash: Buffer.alloc(32) })] }));
    expectMalformed(requestDer({ certIds: [certIdDer({ alg: sequence(oid(OID.sha1), integer(1)) })] }));
    expect(
      parseOcspRequest(requestDer({ certIds: [certIdDer({ alg: sequence(oid(OID.sha1)) })] })),
    ).toBeTruthy();
  });

  it('rejects zero or more than 16 requests', () => {
    expectMalformed(requestDer({ certIds: [] }));
    const many = (n: number) => requestDer({ certIds: Array.from({ length: n }, () => certIdDer()) });
    expect(parseOcspRequest(many(MAX_OCSP_REQUESTS)).certIds).toHaveLength(16);
    expectMalformed(many(MAX_OCSP_REQUESTS + 1));
  });

  it('rejects other structural and profile violations', () => {
    expectMalformed(requestDer({ version: 1 }));
    expectMalformed(requestDer({ certIds: [certIdDer({ serial: Buffer.from([0x02, 0x00]) })] }));
    expectMalformed(requestDer({ exts: [extension('1.2.3.4', NULL, true)] }));
    expectMalformed(requestDer({ singleExts: [extension('1.2.3.4', NULL, true)] }));
    expectMalformed(requestDer({ exts: [nonceExt(Buffer.alloc(16)), nonceExt(Buffer.alloc(16))] }));
    expectMalformed(requestDer({ exts: [nonceExt(Buffer.alloc(0))] }));
    expectMalformed(requestDer({ exts: [nonceExt(Buffer.alloc(129))] }));
    expect(parseOcspRequest(requestDer({ exts: [nonceExt(Buffer.alloc(128))] })).nonce).toHaveLength(131);
    expectMalformed(requestDer({ exts: [] })); // Extensions is SIZE (1..MAX)
    // CertIDs with a field too many or too few, a hashAlgorithm that is not a SEQUENCE, and a
    // constructed (BER) OCTET STRING
    const name = octetString(caHashes.sha1.name);
    const key = octetString(caHashes.sha1.key);
    const serial = unsignedInteger(Buffer.from([1]));
    expectMalformed(requestDer({ certIds: [sequence(SHA1_ALG, name, key, serial, NULL)] }));
    expectMalformed(requestDer({ certIds: [sequence(SHA1_ALG, name, key)] }));
    expectMalformed(requestDer({ certIds: [sequence(octetString(SHA1_ALG), name, key, serial)] }));
    const berName = tlv(0x24, name);
    expectMalformed(requestDer({ certIds: [sequence(SHA1_ALG, berName, key, serial)] }));
    // the request list is not a SEQUENCE OF SEQUENCE
    expectMalformed(sequence(sequence(sequence(certIdDer()))));
  });

  it('throws only OcspRequestError on random bytes (property)', () => {
    // raw bytes, and bytes wrapped in well-formed outer SEQUENCEs so the checks go deeper
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.uint8Array({ maxLength: 600 }).map((b) => sequence(Buffer.from(b))),
      fc.uint8Array({ maxLength: 600 }).map((b) => sequence(sequence(Buffer.from(b)))),
    );
    fc.assert(
      fc.property(input, (bytes) => {
        try {
          parseOcspRequest(bytes);
        } catch (e) {
          if (!(e instanceof OcspRequestError)) throw e;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('throws only OcspRequestError on mutated valid requests (property)', () => {
    const seeds = ['req.der', 'req-sha256.der', 'req-signed.der'].map(file);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        at: fc.nat(),
        count: fc.integer({ min: 1, max: 8 }),
      }),
    );
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.nat({ max: seeds.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (s, ms) => {
          let b = Buffer.from(seeds[s]!);
          for (const m of ms) {
            const at = b.length ? m.at % b.length : 0;
            if (m.kind === 'flip' && b.length) b[at]! ^= 1 << m.bit;
            else if (m.kind === 'set' && b.length) b[at] = m.value;
            else if (m.kind === 'truncate') b = b.subarray(0, at);
            else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
            else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
          }
          try {
            const req = parseOcspRequest(b);
            accepted++;
            expect(req.certIds.length).toBeGreaterThan(0);
            for (const id of req.certIds) expect(b.includes(id.der)).toBe(true);
          } catch (e) {
            if (!(e instanceof OcspRequestError)) throw e;
          }
        },
      ),
      { numRuns: 5000 },
    );
    expect(accepted).toBeGreaterThan(0); // some mutations (hash or nonce bytes) stay valid
  });
});

// ---------------------------------------------------------------------------------------------
// Responses

const now = () => new Date(Math.floor(Date.now() / 1000) * 1000);
const minutes = (m: number) => new Date(now().getTime() + m * 60_000);

async function respond(
  responder: OcspResponder,
  reqFile: string,
  statuses: CertStatus[],
  opts: { nonce?: Buffer | null; nextUpdate?: boolean } = {},
): Promise<Buffer> {
  const req = parseOcspRequest(file(reqFile));
  const answers: SingleAnswer[] = req.certIds.map((certId, i) => ({
    certId,
    status: statuses[i]!,
    thisUpdate: minutes(-1),
    ...(opts.nextUpdate === false ? {} : { nextUpdate: minutes(60) }),
  }));
  const nonce = opts.nonce === null ? undefined : (opts.nonce ?? req.nonce);
  return buildBasicResponse(responder, answers, { producedAt: new Date(), ...(nonce ? { nonce } : {}) });
}

/**
 * Checks a response with openssl ocsp as a relying party would, in two runs, because `-cert` makes
 * openssl build a fresh request (with its own nonce) and ignore `-reqin`:
 * - `req`: against the original request (nonce check), printing the response (-resp_text);
 * - `status`: against CertIDs openssl computes itself from -issuer/-cert (status summary lines).
 * Both verify the signature and the delegated responder's chain; -issuer also supplies the issuing
 * CA as an untrusted intermediate (the response carries only the responder certificate).
 */
function opensslVerify(resp: Buffer, reqFile: string, certs: string[], extra: string[] = []) {
  writeFileSync(path('resp.der'), resp);
  const common = ['ocsp', '-respin', 'resp.der', '-issuer', 'ca.pem', '-CAfile', 'root.pem'];
  return {
    req: openssl([...common, '-reqin', reqFile, '-resp_text']),
    status: openssl([...common, ...extra, ...certs.flatMap((c) => ['-cert', c]), '-no_nonce']),
  };
}

/** Both runs verified the response; returns their output. */
function verified(v: ReturnType<typeof opensslVerify>): { req: string; status: string } {
  expect(v.req.out).toContain('Response verify OK');
  expect(v.req.out).not.toMatch(/Nonce Verify error|WARNING: no nonce/);
  expect(v.req.status).toBe(0);
  expect(v.status.out).toContain('Response verify OK');
  expect(v.status.status).toBe(0);
  return { req: v.req.out, status: v.status.out };
}

describe.each([
  ['RSA-2048', () => rsaResponder],
  ['ECDSA P-256', () => ecResponder],
])('buildBasicResponse with a %s delegated responder', (_name, responderOf) => {
  it('answers good, and openssl verifies it', async () => {
    const resp = await respond(responderOf(), 'req.der', [{ status: 'good' }]);
    const out = verified(opensslVerify(resp, 'req.der', ['ee.pem']));
    expect(out.status).toMatch(/ee\.pem: good\n\s*This Update: .*\n\s*Next Update: /);
    expect(out.req).toMatch(/Cert Status: good/);
    // the nonce is echoed as sent
    const req = parseOcspRequest(file('req.der'));
    expect(out.req.replace(/\s/g, '')).toContain(`OCSPNonce:${req.nonce!.toString('hex').toUpperCase()}`);
  });

  it('answers revoked with keyCompromise', async () => {
    const revokedAt = new Date('2024-05-06T07:08:09.123Z');
    const resp = await respond(responderOf(), 'req.der', [{ status: 'revoked', revokedAt, reason: 1 }]);
    const out = verified(opensslVerify(resp, 'req.der', ['ee.pem']));
    expect(out.status).toMatch(/ee\.pem: revoked/);
    expect(out.status).toMatch(/Reason: keyCompromise/);
    expect(out.status).toMatch(/Revocation Time: May {2}6 07:08:09 2024 GMT/);
    expect(out.req).toMatch(/Revocation Reason: keyCompromise \(0x1\)/);
  });

  it('answers revoked without a reason', async () => {
    const revokedAt = minutes(-30);
    for (const reason of [undefined, 0]) {
      const status: CertStatus = {
        status: 'revoked',
        revokedAt,
        ...(reason === undefined ? {} : { reason }),
      };
      const resp = await respond(responderOf(), 'req.der', [status]);
      const out = verified(opensslVerify(resp, 'req.der', ['ee.pem']));
      expect(out.status).toMatch(/ee\.pem: revoked/);
      expect(out.status).not.toMatch(/Reason:/);
      expect(out.req).not.toMatch(/Reason:/);
    }
  });

  it('answers unknown, without nextUpdate and without a nonce', async () => {
    const resp = await respond(responderOf(), 'req-nononce.der', [{ status: 'unknown' }], {
      nextUpdate: false,
    });
    const out = verified(opensslVerify(resp, 'req-nononce.der', ['ee.pem']));
    expect(out.status).toMatch(/ee\.pem: unknown/);
    expect(out.status).not.toMatch(/Next Update/);
    expect(out.req).not.toMatch(/OCSP Nonce/);
  });

  it('answers several SHA-256 CertIDs in order', async () => {
    const resp = await respond(responderOf(), 'req-sha256.der', [
      { status: 'good' },
      { status: 'revoked', revokedAt: minutes(-5), reason: 4 },
    ]);
    // openssl matches the answers to CertIDs it computes itself, so it needs -sha256 too
    const out = verified(opensslVerify(resp, 'req-sha256.der', ['ee.pem', 'ee2.pem'], ['-sha256']));
    expect(out.status).toMatch(/ee\.pem: good/);
    expect(out.status).toMatch(/ee2\.pem: revoked[\s\S]*Reason: superseded/);
    // with SHA-1 CertIDs openssl finds no answer for its certificates
    const sha1 = opensslVerify(resp, 'req-sha256.der', ['ee.pem']);
    expect(sha1.status.out).toMatch(/ee\.pem: ERROR: No Status found/);
  });

  it('is rejected by openssl when tampered with or answering another nonce', async () => {
    const other = await respond(responderOf(), 'req.der', [{ status: 'good' }], {
      nonce: octetString(Buffer.alloc(16, 1)),
    });
    expect(opensslVerify(other, 'req.der', ['ee.pem']).req.out).toContain('Nonce Verify error');
    const noNonce = await respond(responderOf(), 'req.der', [{ status: 'good' }], { nonce: null });
    expect(opensslVerify(noNonce, 'req.der', ['ee.pem']).req.out).toContain('WARNING: no nonce in response');
    const good = await respond(responderOf(), 'req.der', [{ status: 'good' }]);
    const tampered = Buffer.from(good);
    tampered[tampered.length - responderOf().certsDer.length - 1]! ^= 1; // last signature byte
    const v = opensslVerify(tampered, 'req.der', ['ee.pem']);
    for (const out of [v.req.out, v.status.out]) {
      expect(out).not.toContain('Response verify OK');
      expect(out).toContain('Response Verify Failure');
    }
  });

  it('has the expected structure (asn1-ocsp) and a valid signature', async () => {
    const responder = responderOf();
    const req = parseOcspRequest(file('req.der'));
    const producedAt = new Date('2030-01-02T03:04:05.678Z');
    const thisUpdate = new Date('2030-01-02T03:00:00.999Z');
    const nextUpdate = new Date('2030-01-03T03:00:00Z');
    const revokedAt = new Date('2029-12-31T23:59:59Z');
    const resp = await buildBasicResponse(
      responder,
      [
        {
          certId: req.certIds[0]!,
          status: { status: 'revoked', revokedAt, reason: 1 },
          thisUpdate,
          nextUpdate,
        },
      ],
      { producedAt, nonce: req.nonce! },
    );
    const outer = AsnParser.parse(resp, OCSPResponse);
    expect(outer.responseStatus).toBe(0);
    expect(outer.responseBytes!.responseType).toBe(OID.ocspBasic);
    const basic = AsnParser.parse(outer.responseBytes!.response.buffer, BasicOCSPResponse);
    const tbs = basic.tbsResponseData;
    expect(tbs.version).toBe(0);
    expect(Buffer.from(tbs.responderID.byKey!.buffer)).toEqual(responder.keyHash);
    expect(tbs.producedAt.toISOString()).toBe('2030-01-02T03:04:05.000Z');
    expect(tbs.responses).toHaveLength(1);
    const single = tbs.responses[0]!;
    expect(Buffer.from(single.certID.serialNumber).toString('hex')).toBe(`00${EE_SERIAL}`);
    expect(single.certID.hashAlgorithm.algorithm).toBe(OID.sha1);
    expect(single.certStatus.revoked!.revocationTime.toISOString()).toBe(revokedAt.toISOString());
    expect(single.certStatus.revoked!.revocationReason?.reason).toBe(1);
    expect(single.thisUpdate.toISOString()).toBe('2030-01-02T03:00:00.000Z');
    expect(single.nextUpdate!.toISOString()).toBe(nextUpdate.toISOString());
    expect(tbs.responseExtensions).toHaveLength(1);
    expect(tbs.responseExtensions![0]!.extnID).toBe(OID.ocspNonce);
    expect(Buffer.from(tbs.responseExtensions![0]!.extnValue.buffer)).toEqual(req.nonce);
    expect(basic.certs).toHaveLength(1);
    expect(Buffer.from(AsnSerializer.serialize(basic.certs![0]!))).toEqual(responder.certDer);
    expect(basic.signatureAlgorithm.algorithm).toBe(
      responder.signer.algorithm === 'rsa-2048' ? OID.sha256WithRSAEncryption : OID.ecdsaWithSHA256,
    );
    const key = createPublicKey({ key: responder.signer.publicKeySpki, format: 'der', type: 'spki' });
    const tbsRaw = Buffer.from(basic.tbsResponseDataRaw!);
    expect(verify('sha256', tbsRaw, key, Buffer.from(basic.signature))).toBe(true);
    // the CertID is echoed byte for byte; GeneralizedTime without fractions; version omitted
    expect(resp.includes(req.certIds[0]!.der)).toBe(true);
    expect(resp.includes(Buffer.from('20300102030405Z'))).toBe(true);
    expect(tbsRaw[readTlv(tbsRaw).contentStart]).toBe(0xa2); // responderID byKey comes first
  });
});

describe('responder', () => {
  it('refuses a certificate that is not for its key', () => {
    const signer = SoftwareSigner.fromKeyObject(createPrivateKey(file('ocsp-rsa.key')));
    expect(() => createResponder(signer, certDer('ocsp-ec.pem'))).toThrow(/not for this key/);
    expect(() => createResponder(signer, Buffer.from('nope'))).toThrow();
  });

  it('computes the key hash like openssl', () => {
    const text = mustOpenssl(['x509', '-in', 'ocsp-rsa.pem', '-noout', '-ext', 'subjectKeyIdentifier']);
    // openssl's default SKI is the same SHA-1 of the subjectPublicKey bits
    const ski = /\n\s*([0-9A-F:]+)/.exec(text)?.[1]?.replace(/:/g, '');
    expect(rsaResponder.keyHash.toString('hex').toUpperCase()).toBe(ski);
  });

  it('rejects invalid answers', async () => {
    const certId = parseOcspRequest(file('req.der')).certIds[0]!;
    const t = new Date();
    const build = (a: Partial<SingleAnswer>) =>
      buildBasicResponse(rsaResponder, [{ certId, status: { status: 'good' }, thisUpdate: t, ...a }], {
        producedAt: t,
      });
    await expect(buildBasicResponse(rsaResponder, [], { producedAt: t })).rejects.toThrow(RangeError);
    await expect(build({ status: { status: 'revoked', revokedAt: t, reason: 7 } })).rejects.toThrow(
      RangeError,
    );
    await expect(build({ status: { status: 'revoked', revokedAt: t, reason: 11 } })).rejects.toThrow(
      RangeError,
    );
    await expect(build({ thisUpdate: new Date(Number.NaN) })).rejects.toThrow(RangeError);
    await expect(build({ nextUpdate: new Date(t.getTime() - 1000) })).rejects.toThrow(RangeError);
  });

  it('does not re-encode the responder certificate per response', async () => {
    // a fake signer so that only the DER assembly is measured
    const fake: Signer = {
      algorithm: 'rsa-2048',
      publicKeySpki: rsaResponder.signer.publicKeySpki,
      sign: async () => Buffer.alloc(256, 0x5a),
    };
    const responder = createResponder(fake, rsaResponder.certDer);
    expect(Object.isFrozen(responder)).toBe(true);
    const certsDer = responder.certsDer;
    let certReads = 0;
    const spy: OcspResponder = {
      ...responder,
      get certDer() {
        certReads++;
        return responder.certDer;
      },
    };
    const certId = parseOcspRequest(file('req.der')).certIds[0]!;
    const answers: SingleAnswer[] = [{ certId, status: { status: 'good' }, thisUpdate: new Date() }];
    const started = performance.now();
    let resp: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 5000; i++) resp = await buildBasicResponse(spy, answers, { producedAt: new Date() });
    const perResponse = (performance.now() - started) / 5000;
    expect(certReads).toBe(0);
    expect(responder.certsDer).toBe(certsDer);
    expect(resp.subarray(resp.length - certsDer.length)).toEqual(certsDer);
    expect(perResponse).toBeLessThan(0.5); // ms; typically a few microseconds
  });
});

describe('errorResponse', () => {
  it.each([
    ['malformedRequest', 1],
    ['internalError', 2],
    ['tryLater', 3],
    ['sigRequired', 5],
    ['unauthorized', 6],
  ] as const)('%s parses in openssl', (status, code) => {
    const der = errorResponse(status);
    expect(der).toEqual(Buffer.from([0x30, 0x03, 0x0a, 0x01, code]));
    expect(AsnParser.parse(der, OCSPResponse).responseStatus).toBe(code);
    writeFileSync(path('err.der'), der);
    const r = openssl(['ocsp', '-respin', 'err.der', '-resp_text', '-noverify']);
    expect(r.out.toLowerCase()).toContain(`responder error: ${status.toLowerCase()} (${code})`);
  });

  it('returns a fresh copy each time', () => {
    const a = errorResponse('tryLater');
    a.fill(0);
    expect(errorResponse('tryLater')).toEqual(Buffer.from([0x30, 0x03, 0x0a, 0x01, 3]));
  });
});
