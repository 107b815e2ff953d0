import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, randomFillSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildCrl,
  buildCrlChunks,
  type CrlParams,
  describeCrl,
  type RevokedEntry,
  releaseCrl,
} from '../../src/core/crl.ts';
import { integerContent, readChildren, readTlv, slice } from '../../src/core/der.ts';
import type { Signer } from '../../src/core/signer.ts';
import { keyIdentifier } from '../../src/core/spki.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';

const OPENSSL = '/usr/bin/openssl';
let dir: string;

function openssl(args: string[], input?: Buffer | string): string {
  return execFileSync(OPENSSL, args, {
    cwd: dir,
    input,
    encoding: 'utf8',
    stdio: 'pipe',
    maxBuffer: 1 << 28,
  });
}

/** Runs openssl without throwing on a non-zero exit; stdout and stderr together. */
function opensslResult(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(OPENSSL, args, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const CONFIG = `
[req]
distinguished_name = dn
prompt = no
utf8 = yes
string_mask = utf8only
[dn]
CN = unused
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

const LEAF_SERIAL_HEX = '9AF3C2D1E0B4A5968778695A4B3C2D1E'; // 16 bytes, top bit set

interface CaFixture {
  name: string;
  signer: Signer;
  subjectDer: Buffer;
  keyId: Buffer;
  /** CA then root, PEM. */
  chainFile: string;
  leafFile: string;
  /** INTEGER content octets of the leaf serial. */
  leafSerial: Buffer;
}

const fixtures: Record<'rsa' | 'ec', CaFixture> = {} as Record<'rsa' | 'ec', CaFixture>;

/** The subject Name DER of a certificate, sliced from the raw bytes. */
function subjectNameDer(cert: X509Certificate): Buffer {
  const raw = cert.raw;
  const [tbs] = readChildren(raw, readTlv(raw, 0));
  const fields = readChildren(raw, tbs!);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0; // explicit version
  return slice(raw, fields[offset + 4]!); // serial, signature, issuer, validity, subject
}

function spkiDer(cert: X509Certificate): Buffer {
  const raw = cert.raw;
  const [tbs] = readChildren(raw, readTlv(raw, 0));
  const fields = readChildren(raw, tbs!);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0;
  return slice(raw, fields[offset + 5]!);
}

function makeCa(name: 'rsa' | 'ec'): CaFixture {
  const newkey =
    name === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  // biome-ignore format: one openssl invocation per line
  openssl(['req', '-config', 'openssl.cnf', '-new', ...newkey, '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.csr`,
    '-subj', `/C=JP/O=JPKI テスト/OU=地方公共団体情報システム機構/CN=Test CA ${name}`]);
  // biome-ignore format: one openssl invocation per line
  openssl(['x509', '-req', '-in', `${name}-ca.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '0x1001',
    '-days', '3650', '-extfile', 'openssl.cnf', '-extensions', 'v3_ca', '-out', `${name}-ca.pem`]);
  // biome-ignore format: one openssl invocation per line
  openssl(['req', '-config', 'openssl.cnf', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}-leaf.key`, '-out', `${name}-leaf.csr`, '-subj', `/C=JP/CN=Leaf ${name}`]);
  // biome-ignore format: one openssl invocation per line
  openssl(['x509', '-req', '-in', `${name}-leaf.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`,
    '-set_serial', `0x${LEAF_SERIAL_HEX}`, '-days', '365', '-extfile', 'openssl.cnf', '-extensions', 'v3_leaf',
    '-out', `${name}-leaf.pem`]);

  const caPem = readFileSync(join(dir, `${name}-ca.pem`), 'utf8');
  const chainFile = `${name}-chain.pem`;
  writeFileSync(join(dir, chainFile), caPem + readFileSync(join(dir, 'root.pem'), 'utf8'));
  const ca = new X509Certificate(caPem);
  const leaf = new X509Certificate(readFileSync(join(dir, `${name}-leaf.pem`)));
  const signer = SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(join(dir, `${name}-ca.key`))));
  const spki = spkiDer(ca);
  expect(spki.equals(signer.publicKeySpki)).toBe(true);
  return {
    name,
    signer,
    subjectDer: subjectNameDer(ca),
    keyId: keyIdentifier(spki),
    chainFile,
    leafFile: `${name}-leaf.pem`,
    leafSerial: integerContent(Buffer.from(leaf.serialNumber, 'hex')),
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'crl-test-'));
  writeFileSync(join(dir, 'openssl.cnf'), CONFIG);
  // biome-ignore format: one openssl invocation per line
  openssl(['req', '-config', 'openssl.cnf', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'root.key',
    '-out', 'root.pem', '-days', '3650', '-subj', '/C=JP/O=JPKI Test/CN=Test Root', '-extensions', 'v3_root']);
  fixtures.rsa = makeCa('rsa');
  fixtures.ec = makeCa('ec');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const HOUR = 3600_000;

function params(ca: CaFixture, over: Partial<CrlParams> = {}): CrlParams {
  const now = Date.now();
  return {
    issuerNameDer: ca.subjectDer,
    authorityKeyId: ca.keyId,
    crlNumber: 5n,
    thisUpdate: new Date(Math.floor((now - HOUR) / 1000) * 1000),
    nextUpdate: new Date(Math.floor((now + 24 * HOUR) / 1000) * 1000),
    ...over,
  };
}

let fileNo = 0;
function writeCrl(der: Buffer): string {
  const file = `crl-${fileNo++}.der`;
  writeFileSync(join(dir, file), der);
  return file;
}

/** asn1js refuses more than 10,000 nodes by default; a CRL of a few thousand entries has more. */
const parseCrl = (der: Buffer) =>
  AsnConvert.parse(der, CertificateList, {
    berOptions: { maxNodes: der.length, maxContentLength: der.length },
  });

/**
 * The revokedCertificates entries of a CRL, walked with readTlv (describeCrl and parseCrl take
 * ~45 µs per entry). Returns the number of entries and the serials of those at `pick`.
 */
function walkEntries(
  der: Buffer,
  pick: readonly number[] = [],
): { count: number; serials: Map<number, Buffer> } {
  const [tbs] = readChildren(der, readTlv(der, 0));
  const fields = readChildren(der, tbs!);
  const revoked = fields[5]!; // version, signature, issuer, thisUpdate, nextUpdate, revokedCertificates
  expect(revoked.tag).toBe(0x30);
  const serials = new Map<number, Buffer>();
  let count = 0;
  for (let pos = revoked.contentStart; pos < revoked.end; count++) {
    const entry = readTlv(der, pos);
    if (pick.includes(count)) {
      const serial = readTlv(der, entry.contentStart);
      expect(serial.tag).toBe(0x02);
      serials.set(count, der.subarray(serial.contentStart, serial.end));
    }
    pos = entry.end;
  }
  expect(fields.map((f) => f.tag)).toEqual([0x02, 0x30, 0x30, 0x17, 0x17, 0x30, 0xa0]);
  return { count, serials };
}

const crlText = (file: string) => openssl(['crl', '-inform', 'DER', '-in', file, '-text', '-noout']);

function crlVerify(file: string, chain: string): { status: number | null; output: string } {
  return opensslResult(['crl', '-inform', 'DER', '-in', file, '-CAfile', chain, '-noout']);
}

const hex = (b: Buffer) => b.toString('hex').toUpperCase();
/** openssl prints serials as the magnitude, uppercase hex, without the DER 0x00 pad. */
const opensslSerial = (content: Buffer) =>
  hex(content[0] === 0 && content.length > 1 ? content.subarray(1) : content);

describe('buildCrl with openssl', () => {
  it('builds an empty full CRL that openssl parses and verifies', async () => {
    const ca = fixtures.rsa;
    const p = params(ca, { crlNumber: 1n });
    const der = await buildCrl(ca.signer, p, []);
    const file = writeCrl(der);
    const text = crlText(file);
    expect(text).toContain('Certificate Revocation List (CRL):');
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain('No Revoked Certificates.');
    expect(text).toMatch(/X509v3 CRL Number: *\n\s+1\n/);
    expect(text).toContain('Next Update:');
    expect(text).toContain(ca.keyId.toString('hex').toUpperCase().match(/../g)!.join(':'));
    expect(text).not.toContain('Delta CRL Indicator');
    const v = crlVerify(file, ca.chainFile);
    expect(v.output).toContain('verify OK');
    expect(v.status).toBe(0);

    // no revokedCertificates element at all (not an empty SEQUENCE)
    const parsed = parseCrl(der);
    expect(parsed.tbsCertList.revokedCertificates).toBeUndefined();
    expect(describeCrl(der)).toEqual({
      crlNumber: 1n,
      thisUpdate: p.thisUpdate,
      nextUpdate: p.nextUpdate,
      count: 0,
    });
  });

  it('builds a one-entry CRL with a Key Compromise reason', async () => {
    const ca = fixtures.rsa;
    const der = await buildCrl(ca.signer, params(ca), [
      { serial: ca.leafSerial, revokedAt: new Date('2024-03-01T12:34:56.789Z'), reason: 1 },
    ]);
    const file = writeCrl(der);
    const text = crlText(file);
    expect(text).toContain(`Serial Number: ${LEAF_SERIAL_HEX}`);
    expect(text).toContain('Revocation Date: Mar  1 12:34:56 2024 GMT');
    expect(text).toMatch(/X509v3 CRL Reason Code: *\n\s+Key Compromise/);
    expect(crlVerify(file, ca.chainFile).output).toContain('verify OK');
    expect(describeCrl(der).count).toBe(1);
  });

  it.each(['rsa', 'ec'] as const)(
    'builds a many-entry CRL across chunk boundaries (%s) that verifies',
    async (alg) => {
      const ca = fixtures[alg];
      const n = 60_000; // ~2.7 MB: three 1 MiB chunks
      const reasons = [0, 1, 2, 3, 4, 5, 6, 9, 10];
      const serialOf = (i: number) =>
        integerContent(Buffer.from(`7f${i.toString(16).padStart(8, '0')}`, 'hex'));
      async function* rows(): AsyncGenerator<RevokedEntry> {
        for (let i = 0; i < n; i++) {
          yield {
            serial: serialOf(i),
            revokedAt: new Date(Date.UTC(2025, 0, 1) + i * 1000),
            reason: reasons[i % 9]!,
          };
        }
      }
      const { chunks, length } = await buildCrlChunks(ca.signer, params(ca, { crlNumber: 77n }), rows());
      expect(chunks.length).toBeGreaterThan(4);
      const der = Buffer.concat(chunks);
      expect(der.length).toBe(length);
      expect(readTlv(der, 0).end).toBe(length);
      const file = writeCrl(der);
      const v = crlVerify(file, ca.chainFile);
      expect(v.output).toContain('verify OK');
      expect(v.status).toBe(0);
      const pick = [0, 1, 23_456, 23_457, n - 1];
      const walked = walkEntries(der, pick);
      expect(walked.count).toBe(n);
      // entries come out in the order given
      for (const i of pick) expect(walked.serials.get(i)).toEqual(serialOf(i));

      if (alg === 'rsa') {
        const text = crlText(file);
        expect(text.match(/Serial Number: /g)).toHaveLength(n);
        expect(text).toContain('Serial Number: 7F00000000\n');
        expect(text).toContain(`Serial Number: 7F${(n - 1).toString(16).toUpperCase().padStart(8, '0')}\n`);
        for (const label of [
          'Key Compromise',
          'CA Compromise',
          'Affiliation Changed',
          'Superseded',
          'Cessation Of Operation',
          'Certificate Hold',
          'Privilege Withdrawn',
          'AA Compromise',
        ]) {
          expect(text).toContain(label);
        }
        expect(text.match(/X509v3 CRL Reason Code:/g)).toHaveLength(n - Math.ceil(n / 9));
        expect(text).toMatch(/X509v3 CRL Number: *\n\s+77\n/);
      }
    },
  );

  it('builds a delta CRL with a critical Delta CRL Indicator', async () => {
    const ca = fixtures.ec;
    const p = params(ca, { crlNumber: 12n, deltaOf: 10n });
    const der = await buildCrl(ca.signer, p, [
      { serial: Buffer.from([0x42]), revokedAt: new Date('2025-06-01T00:00:00Z'), reason: 8 }, // removeFromCRL
      { serial: Buffer.from([0x43]), revokedAt: new Date('2025-06-01T00:00:00Z'), reason: 6 }, // certificateHold
    ]);
    const file = writeCrl(der);
    const text = crlText(file);
    expect(text).toMatch(/X509v3 CRL Number: *\n\s+12\n/);
    expect(text).toMatch(/X509v3 Delta CRL Indicator: critical\n\s+10\n/);
    expect(text).toContain('Remove From CRL');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).not.toContain('Freshest CRL');
    expect(crlVerify(file, ca.chainFile).output).toContain('verify OK');
    expect(describeCrl(der)).toEqual({
      crlNumber: 12n,
      deltaOf: 10n,
      thisUpdate: p.thisUpdate,
      nextUpdate: p.nextUpdate,
      count: 2,
    });
  });

  it('writes FreshestCRL and a pre-encoded IssuingDistributionPoint', async () => {
    const ca = fixtures.rsa;
    const url = 'http://crl.example.jp/delta/ca-rsa.crl';
    // IssuingDistributionPoint { onlyContainsUserCerts [1] TRUE }
    const idp = Buffer.from([0x30, 0x03, 0x81, 0x01, 0xff]);
    const der = await buildCrl(
      ca.signer,
      params(ca, { freshestCrlUrl: url, issuingDistributionPoint: idp }),
      [{ serial: Buffer.from([0x01]), revokedAt: new Date('2025-01-01T00:00:00Z') }],
    );
    const file = writeCrl(der);
    const text = crlText(file);
    expect(text).toMatch(new RegExp(`X509v3 Freshest CRL: *\\n\\s+Full Name:\\n\\s+URI:${url}\\n`));
    expect(text).not.toMatch(/Freshest CRL: critical/);
    expect(text).toMatch(/X509v3 Issuing Distribution Point: critical\n\s+Only User Certificates/);
    expect(crlVerify(file, ca.chainFile).output).toContain('verify OK');
  });

  it('rejects a CRL signed by another key', async () => {
    const der = await buildCrl(fixtures.ec.signer, params(fixtures.rsa), []);
    const v = crlVerify(writeCrl(der), fixtures.rsa.chainFile);
    expect(v.output).not.toContain('verify OK');
  });

  it.each(['rsa', 'ec'] as const)(
    'makes openssl verify -crl_check reject a revoked leaf (%s)',
    async (alg) => {
      const ca = fixtures[alg];
      const verifyWith = async (entries: RevokedEntry[]) => {
        const der = await buildCrl(ca.signer, params(ca), entries);
        const pem = `crl-${fileNo++}.pem`;
        openssl(['crl', '-inform', 'DER', '-outform', 'PEM', '-out', pem], der);
        return opensslResult([
          'verify',
          '-CAfile',
          'root.pem',
          '-untrusted',
          `${alg}-ca.pem`,
          '-crl_check',
          '-CRLfile',
          pem,
          ca.leafFile,
        ]);
      };
      const when = new Date(Date.now() - 2 * HOUR);
      const others: RevokedEntry[] = [
        { serial: Buffer.from([0x05]), revokedAt: when, reason: 1 },
        // the leaf serial without its top byte, and with an extra byte: neither is the leaf
        { serial: integerContent(ca.leafSerial.subarray(2)), revokedAt: when },
        { serial: Buffer.concat([ca.leafSerial, Buffer.from([0])]), revokedAt: when },
      ];

      const revoked = await verifyWith([...others, { serial: ca.leafSerial, revokedAt: when, reason: 1 }]);
      expect(revoked.output).toContain('certificate revoked');
      expect(revoked.status).not.toBe(0);

      const good = await verifyWith(others);
      expect(good.output).toContain(`${ca.leafFile}: OK`);
      expect(good.status).toBe(0);

      const empty = await verifyWith([]);
      expect(empty.output).toContain(`${ca.leafFile}: OK`);
    },
  );
});

describe('buildCrl encoding', () => {
  const entriesOf = (der: Buffer) => parseCrl(der).tbsCertList.revokedCertificates ?? [];

  it('encodes serial edge cases verbatim', async () => {
    const ca = fixtures.rsa;
    const serials = [
      Buffer.from([0x00]), // zero (not RFC-conforming for new certificates, but encodable)
      Buffer.from([0x01]), // one byte
      Buffer.from([0x7f]),
      integerContent(Buffer.from([0x80])), // 00 80
      integerContent(Buffer.from('ff'.repeat(16), 'hex')), // 00 ff..ff, 17 octets
      integerContent(Buffer.from(`7f${'ab'.repeat(19)}`, 'hex')), // 20 octets
      integerContent(Buffer.from(`80${'cd'.repeat(19)}`, 'hex')), // 20-octet magnitude, 21 content octets
    ];
    expect(serials[3]).toEqual(Buffer.from([0x00, 0x80]));
    expect(serials[5]!.length).toBe(20);
    expect(serials[6]!.length).toBe(21);
    const when = new Date('2030-01-01T00:00:00Z');
    const der = await buildCrl(
      ca.signer,
      params(ca),
      serials.map((serial) => ({ serial, revokedAt: when })),
    );
    const parsed = entriesOf(der);
    expect(parsed.map((e) => Buffer.from(e.userCertificate).toString('hex'))).toEqual(
      serials.map((s) => s.toString('hex')),
    );
    const file = writeCrl(der);
    const text = crlText(file);
    for (const s of serials) expect(text).toContain(`Serial Number: ${opensslSerial(s)}\n`);
    expect(crlVerify(file, ca.chainFile).output).toContain('verify OK');
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050, in entries and in the update times', async () => {
    const ca = fixtures.rsa;
    const times = [
      '1950-01-01T00:00:00Z',
      '2049-12-31T23:59:59.999Z',
      '2050-01-01T00:00:00Z',
      '2099-07-15T08:09:10Z',
    ];
    const der = await buildCrl(
      ca.signer,
      params(ca, {
        thisUpdate: new Date('2049-12-31T12:00:00Z'),
        nextUpdate: new Date('2050-01-07T12:00:00Z'),
      }),
      times.map((t, i) => ({ serial: Buffer.from([i + 1]), revokedAt: new Date(t) })),
    );
    const tbs = parseCrl(der).tbsCertList;
    expect(tbs.thisUpdate.utcTime).toEqual(new Date('2049-12-31T12:00:00Z'));
    expect(tbs.nextUpdate?.generalTime).toEqual(new Date('2050-01-07T12:00:00Z'));
    const rc = tbs.revokedCertificates!;
    expect(rc[0]!.revocationDate.utcTime).toEqual(new Date('1950-01-01T00:00:00Z'));
    expect(rc[1]!.revocationDate.utcTime).toEqual(new Date('2049-12-31T23:59:59Z')); // milliseconds dropped
    expect(rc[2]!.revocationDate.generalTime).toEqual(new Date('2050-01-01T00:00:00Z'));
    expect(rc[3]!.revocationDate.generalTime).toEqual(new Date('2099-07-15T08:09:10Z'));
    expect(der.includes(Buffer.from('491231235959Z'))).toBe(true);
    expect(der.includes(Buffer.from('20500101000000Z'))).toBe(true);
    expect(der.includes(Buffer.from('20990715080910Z'))).toBe(true);
    const text = crlText(writeCrl(der));
    expect(text).toContain('Revocation Date: Jul 15 08:09:10 2099 GMT');
    expect(text).toContain('Revocation Date: Dec 31 23:59:59 2049 GMT');
    expect(text).toContain('Next Update: Jan  7 12:00:00 2050 GMT');
  });

  it('gives the same bytes from an array, a generator and an async generator, and as chunks', async () => {
    const ca = fixtures.rsa; // RSA PKCS#1 v1.5 signatures are deterministic
    const rows: RevokedEntry[] = Array.from({ length: 30_000 }, (_, i) => ({
      serial: integerContent(Buffer.from([i >> 8, i & 0xff, 0x99])),
      revokedAt: new Date(Date.UTC(2024, 5, 1) + i * 60_000),
      ...(i % 3 ? { reason: (i % 6) + 1 } : {}),
    }));
    const p = params(ca);
    const fromArray = await buildCrl(ca.signer, p, rows);
    function* sync() {
      yield* rows;
    }
    async function* asyncRows() {
      for (const r of rows) yield r;
    }
    expect((await buildCrl(ca.signer, p, sync())).equals(fromArray)).toBe(true);
    expect((await buildCrl(ca.signer, p, asyncRows())).equals(fromArray)).toBe(true);
    const { chunks, length } = await buildCrlChunks(ca.signer, p, rows);
    expect(length).toBe(fromArray.length);
    expect(Buffer.concat(chunks).equals(fromArray)).toBe(true);
    // as the store hands them over: pages (arrays) of rows with hex serials and millisecond times
    async function* pages() {
      for (let i = 0; i < rows.length; i += 7000)
        yield rows.slice(i, i + 7000).map((r) => ({
          serial: (r.serial as Buffer).toString('hex'),
          revokedAt: (r.revokedAt as Date).getTime(),
          ...(r.reason ? { reason: r.reason } : {}),
        }));
    }
    expect((await buildCrl(ca.signer, p, pages())).equals(fromArray)).toBe(true);
  });

  it('checks hex serials as it checks octets, and frees a CRL on request', async () => {
    const ca = fixtures.ec;
    const p = params(ca);
    const when = Date.UTC(2025, 0, 1);
    const one = (serial: string) => buildCrl(ca.signer, p, [{ serial, revokedAt: when }]);
    await expect(one('')).rejects.toThrow(/empty serial/);
    await expect(one('80')).rejects.toThrow(/negative/);
    await expect(one('0001')).rejects.toThrow(/not minimal/);
    await expect(one('11'.repeat(21))).rejects.toThrow(/longer than 20/);
    await expect(one('0g')).rejects.toThrow(/not lowercase hex/);
    await expect(one('0A')).rejects.toThrow(/not lowercase hex/);
    await expect(one('123')).rejects.toThrow(/not hex/);
    await expect(buildCrl(ca.signer, p, [{ serial: '01', revokedAt: Number.NaN }])).rejects.toThrow(
      /revokedAt/,
    );
    const der = await one('00ff');
    expect(describeCrl(der).count).toBe(1);
    expect(der.includes(Buffer.from([0x02, 0x02, 0x00, 0xff]))).toBe(true);
    releaseCrl(der);
    expect(der.length).toBe(0);
    releaseCrl(Buffer.from([1, 2, 3])); // not one of ours: left alone
  });

  it('rejects invalid input', async () => {
    const ca = fixtures.ec;
    const when = new Date('2025-01-01T00:00:00Z');
    const build = (entries: RevokedEntry[], over: Partial<CrlParams> = {}) =>
      buildCrl(ca.signer, params(ca, over), entries);
    const one = (e: Partial<RevokedEntry>) => build([{ serial: Buffer.from([1]), revokedAt: when, ...e }]);

    await expect(one({ serial: Buffer.alloc(0) })).rejects.toThrow(/empty serial/);
    await expect(one({ serial: Buffer.from([0x80]) })).rejects.toThrow(/negative/);
    await expect(one({ serial: Buffer.from([0x00, 0x01]) })).rejects.toThrow(/not minimal/);
    await expect(one({ serial: Buffer.alloc(21, 0x11) })).rejects.toThrow(/longer than 20/);
    await expect(one({ serial: Buffer.concat([Buffer.from([0]), Buffer.alloc(21, 0x81)]) })).rejects.toThrow(
      /longer than 20/,
    );
    await expect(one({ reason: 7 })).rejects.toThrow(/invalid CRLReason/);
    await expect(one({ reason: 11 })).rejects.toThrow(/invalid CRLReason/);
    await expect(one({ reason: 1.5 })).rejects.toThrow(/invalid CRLReason/);
    await expect(one({ reason: 8 })).rejects.toThrow(/removeFromCRL/);
    await expect(one({ revokedAt: new Date(Number.NaN) })).rejects.toThrow(/revokedAt/);
    await expect(build([], { nextUpdate: new Date(0) })).rejects.toThrow(/nextUpdate must be after/);
    await expect(build([], { crlNumber: 1n << 159n })).rejects.toThrow(/out of range/);
    await expect(build([], { crlNumber: -1n })).rejects.toThrow(/out of range/);
    await expect(build([], { crlNumber: 3n, deltaOf: 3n })).rejects.toThrow(/deltaOf/);
    await expect(build([], { deltaOf: 1n, freshestCrlUrl: 'http://x/' })).rejects.toThrow(/delta CRL/);
    await expect(build([], { freshestCrlUrl: 'http://x/ y' })).rejects.toThrow(/printable ASCII/);
    await expect(build([], { issuingDistributionPoint: Buffer.from([0x04, 0x00]) })).rejects.toThrow(
      /IssuingDist|issuingDist/,
    );
    await expect(
      build([], { issuerNameDer: Buffer.concat([ca.subjectDer, Buffer.from([0])]) }),
    ).rejects.toThrow(/issuerNameDer/);
    // the largest allowed CRL number still encodes
    const max = await build([], { crlNumber: (1n << 159n) - 1n });
    expect(describeCrl(max).crlNumber).toBe((1n << 159n) - 1n);
  });
});

describe('buildCrl streaming', () => {
  it('builds a 1,000,000-entry CRL without holding the entries in memory', async () => {
    const ca = fixtures.rsa;
    const n = 1_000_000;
    const base = Date.UTC(2026, 0, 1);
    const before = process.memoryUsage();
    let peakHeap = before.heapUsed;
    let peakRss = before.rss;
    const sample = () => {
      const m = process.memoryUsage();
      if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
      if (m.rss > peakRss) peakRss = m.rss;
    };
    let first: Buffer | undefined;
    // rows as a database cursor would hand them out: fresh objects, random 16-byte serials
    async function* rows(): AsyncGenerator<RevokedEntry> {
      const batch = Buffer.alloc(16 * 1000);
      for (let i = 0; i < n; i++) {
        const j = i % 1000;
        if (j === 0) {
          randomFillSync(batch);
          if (i % 50_000 === 0) sample();
        }
        const serial = Buffer.from(batch.subarray(j * 16, j * 16 + 16));
        serial[0] = (serial[0]! & 0x7f) | 0x40; // positive and minimal
        first ??= serial;
        yield { serial, revokedAt: new Date(base + i * 1000), ...(i % 3 === 0 ? { reason: 1 } : {}) };
      }
    }
    let signMs = 0;
    const timedSigner: Signer = {
      algorithm: ca.signer.algorithm,
      publicKeySpki: ca.signer.publicKeySpki,
      async sign(data) {
        sample();
        const t = performance.now();
        const sig = await ca.signer.sign(data);
        signMs = performance.now() - t;
        sample();
        return sig;
      },
    };

    const t0 = performance.now();
    const { chunks, length } = await buildCrlChunks(timedSigner, params(ca, { crlNumber: 424242n }), rows());
    const totalMs = performance.now() - t0;
    sample();
    const heapGrowth = (peakHeap - before.heapUsed) / 2 ** 20;
    const rssGrowth = (peakRss - before.rss) / 2 ** 20;
    console.log(
      `1M-entry CRL: ${(length / 2 ** 20).toFixed(1)} MiB in ${chunks.length} chunks, ` +
        `${totalMs.toFixed(0)} ms total (sign ${signMs.toFixed(0)} ms), ` +
        `peak heapUsed +${heapGrowth.toFixed(1)} MiB, peak rss +${rssGrowth.toFixed(1)} MiB`,
    );
    expect(heapGrowth).toBeLessThan(150);
    expect(rssGrowth).toBeLessThan(300);

    const file = 'big.crl';
    await writeFile(join(dir, file), chunks);
    expect(openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber'])).toMatch(
      /crlNumber=0x067932\n/,
    );
    const v = crlVerify(file, ca.chainFile);
    expect(v.output).toContain('verify OK');
    expect(v.status).toBe(0);

    // count the entries by walking the DER (describeCrl would take ~45 s and gigabytes)
    const walked = walkEntries(Buffer.concat(chunks, length), [0]);
    expect(walked.count).toBe(n);
    expect(walked.serials.get(0)).toEqual(first);
  });
});
