// `jpki sign`, `jpki timestamp` and `jpki verify` as a resident and a relying party run them: the
// real command (bin/jpki.js) in child processes, a real authority, its TSA listening on 127.0.0.1,
// its CRLs as files; and a key inside a PKCS#11 token (SoftHSM2) as a card's key would be used.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/core/pem.ts';
import { buildServer } from '../../src/http/server.ts';
import { Pkcs11KeyStore } from '../../src/keys/pkcs11.ts';
import { type CliResult, jpki, ok } from '../cli/jpki.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';
import { buildCsr } from './csr.ts';

const FACTS = {
  name: '山田 太郎',
  dateOfBirth: '1990-04-01',
  sex: 'female',
  address: '東京都千代田区霞が関1-2-2',
} as const;

const DOCUMENT = '転入届 2026-04-01\r\n申請者: 山田　太郎\n';
const XML_DOCUMENT =
  '<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:jpki"><氏名>山田　太郎</氏名><金額>43500</金額></申請書>\n';

const pkcs11Required = process.env.JPKI_TEST_PKCS11 === '1';
const withPkcs11 = pkcs11Required || softHsmAvailable();

let ta: TestAuthority;
let app: FastifyInstance;
let tsaUrl: string;
/** A URL nobody listens on (a port that was just free). */
let deadUrl: string;
let token: SoftHsmToken | undefined;
const tmp = tempDir('jpki-sign-cli-');
const p = tmp.path;

/** The trust and revocation arguments of `jpki verify` for this authority. */
const trustArgs = () => [
  '--trust',
  p('root.pem'),
  '--untrusted',
  p('sign.pem'),
  '--crl',
  p('root.crl'),
  '--crl',
  p('sign.crl'),
  '--crl',
  p('sign-delta.crl'),
];

const verify = (file: string, ...extra: string[]) =>
  jpki(['verify', '--in', p(file), ...trustArgs(), ...extra]);
const signWith = (out: string, ...extra: string[]) =>
  jpki(['sign', '--key', p('resident.key'), '--cert', p('resident.pem'), '--out', p(out), ...extra]);

function passed(r: CliResult, format: string, timestamped: boolean): void {
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  const lines = r.stdout.split('\n');
  expect(lines[0]).toBe(`TOTAL_PASSED (${format})`);
  expect(r.stdout).toContain('署名は有効です');
  expect(r.stdout).toContain(
    'name 山田　太郎, born 1990-04-01, sex female, address 東京都千代田区霞が関1-2-2',
  );
  expect(r.stdout).toMatch(/^signing time \(claimed\): \d{4}-/m);
  if (timestamped) expect(r.stdout).toMatch(/^time stamp: \d{4}-\d{2}-\d{2}T/m);
  else {
    expect(r.stdout).not.toMatch(/^time stamp:/m);
    expect(r.stdout).toContain('no signature time stamp');
  }
  expect(r.stderr).toBe('');
}

beforeAll(async () => {
  // The token first: SoftHSM only sees tokens that exist when this process first opens it.
  if (withPkcs11) token = await createSoftHsmToken({ label: 'jpki-resident' });
  ta = await createTestAuthority();
  const a = ta.authority;
  app = await buildServer({ authority: a, operatorToken: ta.operatorToken });
  await app.listen({ host: '127.0.0.1', port: 0 });
  tsaUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/tsa`;
  deadUrl = `http://127.0.0.1:${await freePort()}/tsa`;

  const { keyPath, csrPath } = opensslCsr(tmp.dir, 'resident');
  const cert = await a.issue({ kind: 'sign', csr: readFileSync(csrPath, 'utf8'), facts: FACTS });
  writeFileSync(p('resident.key'), readFileSync(keyPath));
  // the certificate followed by its CA, as --cert takes it: both go into the signature
  writeFileSync(p('resident.pem'), cert.pem + ta.certPem('sign'));

  if (token) {
    const store = new Pkcs11KeyStore({ module: token.module, tokenLabel: token.tokenLabel, pin: token.pin });
    try {
      const signer = await store.generate('resident-card', 'ecdsa-p256');
      const csr = await buildCsr(signer, 'card holder');
      writeFileSync(p('card.csr'), csr);
      const card = await a.issue({ kind: 'sign', csr, facts: FACTS });
      writeFileSync(p('card.pem'), card.pem + ta.certPem('sign'));
    } finally {
      await store.close();
    }
    writeFileSync(p('pin'), `${token.pin}\n`);
    writeFileSync(p('wrong-pin'), '0000\n');
  }

  writeFileSync(p('root.pem'), ta.certPem('root'));
  writeFileSync(p('sign.pem'), ta.certPem('sign'));
  await a.generateCrl('root');
  await a.generateCrl('sign');
  await a.generateCrl('sign', { delta: true });
  writeFileSync(p('root.crl'), (await a.currentCrl('root', 'full'))!.der);
  writeFileSync(p('sign.crl'), encodePem('X509 CRL', (await a.currentCrl('sign', 'full'))!.der));
  writeFileSync(p('sign-delta.crl'), (await a.currentCrl('sign', 'delta'))!.der);
  writeFileSync(p('doc.txt'), DOCUMENT);
  writeFileSync(p('doc.xml'), XML_DOCUMENT);
});

afterAll(async () => {
  await app?.close();
  await ta?.close();
  await token?.cleanup();
  tmp.cleanup();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('jpki sign → jpki verify', () => {
  it('CMS attached, CMS detached and XML, time-stamped by the authority’s TSA: exit 0, TOTAL_PASSED, the time stamp', async () => {
    const signed = await Promise.all([
      signWith('a.p7s', '--in', p('doc.txt'), '--timestamp', tsaUrl),
      signWith('d.p7s', '--in', p('doc.txt'), '--detached', '--timestamp', tsaUrl),
      signWith('x.xml', '--in', p('doc.xml'), '--format', 'xml', '--timestamp', tsaUrl),
    ]);
    for (const r of signed) {
      ok(r);
      expect(r.stderr).toMatch(/^signed .* -> .* \(time-stamped\)\n$/);
    }
    expect(readFileSync(p('a.p7s')).includes(Buffer.from(DOCUMENT))).toBe(true);
    expect(readFileSync(p('d.p7s')).includes(Buffer.from(DOCUMENT))).toBe(false);
    expect(readFileSync(p('x.xml'), 'utf8')).toContain('xades:EncapsulatedTimeStamp');

    const [a, d, x, json] = await Promise.all([
      verify('a.p7s'),
      verify('d.p7s', '--content', p('doc.txt')),
      verify('x.xml'),
      verify('a.p7s', '--json'),
    ]);
    passed(a!, 'CAdES-T', true);
    passed(d!, 'CAdES-T', true);
    passed(x!, 'XAdES-T', true);
    const report = JSON.parse(json!.stdout);
    expect(json!.status).toBe(0);
    expect(report).toMatchObject({ indication: 'TOTAL_PASSED', format: 'CAdES-T' });
    expect(report.timestamps).toHaveLength(1);
    expect(report.signedContent).toBeUndefined();
  });

  it('an unreachable TSA: the signature is written, ONE warning line names `jpki timestamp`, exit 0; `jpki timestamp` adds it later', async () => {
    const [c, x] = await Promise.all([
      signWith('late.p7s', '--in', p('doc.txt'), '--timestamp', deadUrl),
      signWith('late.xml', '--in', p('doc.xml'), '--format', 'xml', '--timestamp', deadUrl),
    ]);
    for (const [r, file] of [
      [c!, 'late.p7s'],
      [x!, 'late.xml'],
    ] as const) {
      expect(r.status, r.stderr).toBe(0);
      expect(existsSync(p(file))).toBe(true);
      const lines = r.stderr.split('\n').filter((l) => l.length > 0);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^warning: signed WITHOUT a time stamp \(.*unreachable.*\)/);
      expect(lines[0]).toContain(`jpki timestamp --in ${p(file)} --url ${deadUrl}`);
    }
    const before = await Promise.all([verify('late.p7s'), verify('late.xml')]);
    passed(before[0]!, 'CAdES-BES', false);
    passed(before[1]!, 'XAdES-BES', false);

    const stamped = await Promise.all([
      jpki(['timestamp', '--in', p('late.p7s'), '--url', tsaUrl]),
      jpki(['timestamp', '--in', p('late.xml'), '--url', tsaUrl]),
    ]);
    for (const r of stamped) {
      ok(r);
      expect(r.stderr).toMatch(/^time stamp added to /);
    }
    const after = await Promise.all([verify('late.p7s'), verify('late.xml')]);
    passed(after[0]!, 'CAdES-T', true);
    passed(after[1]!, 'XAdES-T', true);

    // the TSA still unreachable: `jpki timestamp` fails in one line and leaves the file alone
    const untouched = readFileSync(p('late.p7s'));
    const again = await jpki(['timestamp', '--in', p('late.p7s'), '--url', deadUrl]);
    expect(again.status).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^jpki: time-stamp authority .* unreachable/);
    expect(readFileSync(p('late.p7s'))).toEqual(untouched);
  });

  it('exit codes of jpki verify: 1 tampered, 2 no CRL, 3 usage error', async () => {
    ok(await signWith('t.p7s', '--in', p('doc.txt')));
    const der = readFileSync(p('t.p7s'));
    const i = der.indexOf(Buffer.from('申請者'));
    expect(i).toBeGreaterThan(0);
    der[i + 1]! ^= 0x01;
    writeFileSync(p('tampered.p7s'), der);

    const [tampered, noCrl, noTrust, noIn, badTime] = await Promise.all([
      verify('tampered.p7s'),
      jpki(['verify', '--in', p('t.p7s'), '--trust', p('root.pem'), '--untrusted', p('sign.pem')]),
      jpki(['verify', '--in', p('t.p7s'), '--crl', p('root.crl')]),
      jpki(['verify', '--trust', p('root.pem')]),
      verify('t.p7s', '--at', 'yesterday'),
    ]);
    expect(tampered!.status).toBe(1);
    expect(tampered!.stdout).toMatch(/^TOTAL_FAILED\/HASH_FAILURE /);
    expect(tampered!.stdout).toContain('文書が署名後に変更されています');

    expect(noCrl!.status).toBe(2);
    expect(noCrl!.stdout).toMatch(/^INDETERMINATE\/TRY_LATER /);

    expect(noTrust!.status).toBe(3);
    expect(noTrust!.stderr).toBe('jpki verify: at least one --trust certificate is needed\n');
    expect(noTrust!.stdout).toBe('');
    expect(noIn!.status).toBe(3);
    expect(noIn!.stderr).toMatch(/required option '--in <file>'/);
    expect(badTime!.status).toBe(3);
    expect(badTime!.stderr).toMatch(/--at: not an ISO 8601 time/);
  });
});

describe.skipIf(!withPkcs11)('jpki sign with a key on a PKCS#11 token (SoftHSM2)', () => {
  it('signs through the token (time-stamped); jpki verify exits 0', async () => {
    const t = token!;
    const args = (pin: string, out: string) => [
      'sign',
      '--pkcs11-module',
      t.module,
      '--token',
      t.tokenLabel,
      '--pin-file',
      p(pin),
      '--cert',
      p('card.pem'),
      '--in',
      p('doc.txt'),
      '--out',
      p(out),
      '--timestamp',
      tsaUrl,
    ];
    // the request made through the token is a proper PKCS#10 request (openssl checks its signature)
    expect(openssl(['req', '-in', p('card.csr'), '-verify', '-noout']).output).toMatch(/verify OK/i);
    const [signed, wrongPin] = await Promise.all([
      jpki(args('pin', 'card.p7s')),
      jpki(args('wrong-pin', 'x.p7s')),
    ]);
    ok(signed!);
    expect(signed!.stderr).toMatch(/\(time-stamped\)/);
    expect(wrongPin!.status).toBe(1);
    expect(wrongPin!.stderr).toMatch(/^jpki: PKCS#11: wrong PIN/);
    expect(existsSync(p('x.p7s'))).toBe(false);

    const r = await verify('card.p7s');
    passed(r, 'CAdES-T', true);
  });
});
