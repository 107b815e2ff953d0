// The signature verification service end to end: a real authority (SQLite, and PostgreSQL when
// JPKI_TEST_POSTGRES_URL is set) issues residents' signature certificates from openssl-made keys,
// the residents sign (CMS/CAdES attached and detached, XML/XAdES; time stamps from the authority's
// own TSA over HTTP), the authority revokes and publishes CRLs, and verifySignature / POST /verify
// answer. Signatures made by openssl and xmlsec1 are verified too.

import { spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority, type IssuedCertificate } from '../../src/authority/authority.ts';
import { signCms } from '../../src/core/cms/index.ts';
import { readChildren, readTlv, slice, type Tlv, tlv } from '../../src/core/der.ts';
import { encodePem } from '../../src/core/pem.ts';
import { canonicalSerial } from '../../src/core/serial.ts';
import { signXml } from '../../src/core/xml/index.ts';
import { buildServer } from '../../src/http/server.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { RevocationSource } from '../../src/verifier/revocation-source.ts';
import {
  type ValidationReport,
  type VerifySignatureInput,
  verifySignature,
} from '../../src/verifier/verify-signature.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

// ---------------------------------------------------------------------------------------------
// Keys and documents shared by the backends: residents' keys and requests made by openssl (as a
// card helper would make them), and a CA of somebody else's.

const tmp = tempDir('jpki-verify-');
/** JPKI_FUZZ_SCALE=20 runs twenty times as many mutated signatures. */
const SCALE = Number(process.env.JPKI_FUZZ_SCALE ?? 1);

interface ResidentKey {
  keyPath: string;
  csrPem: string;
  signer: SoftwareSigner;
}
const keys = {} as Record<'good' | 'revoked' | 'after' | 'before' | 'http', ResidentKey>;

const FACTS = {
  name: '山田 太郎',
  dateOfBirth: '1990-04-01',
  sex: 'male',
  address: '東京都千代田区霞が関1-2-2',
} as const;
const FULL_WIDTH_NAME = '山田\u3000太郎';

const DOCUMENT = Buffer.from('転入届 2026-04-01 山田　太郎\r\n申請内容: 住所変更\n');
const XML_DOCUMENT =
  '<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:jpki"><氏名>山田　太郎</氏名><住所>東京都千代田区霞が関1-2-2</住所><金額>43500</金額></申請書>';

function must(args: readonly string[]): string {
  const r = openssl(args, { cwd: tmp.dir });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}

let foreign: { certDer: Buffer; caPem: string; signer: SoftwareSigner };

beforeAll(() => {
  const make = (name: keyof typeof keys, kind: 'rsa:2048' | 'ec') => {
    const { keyPath, csrPath } = opensslCsr(tmp.dir, name, kind);
    keys[name] = {
      keyPath,
      csrPem: readFileSync(csrPath, 'utf8'),
      signer: SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(keyPath, 'utf8'))),
    };
  };
  make('good', 'rsa:2048'); // also used by openssl cms and xmlsec1
  make('revoked', 'ec');
  make('after', 'ec');
  make('before', 'rsa:2048');
  make('http', 'ec');

  // Another CA, made by openssl, that the verifier does not trust, and a signer under it.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  must([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'foreign-ca.key',
    '-out',
    'foreign-ca.pem',
    '-subj',
    '/C=JP/O=Not JPKI/CN=Foreign CA',
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  must(['req', '-new', ...ec, '-keyout', 'foreign.key', '-out', 'foreign.csr', '-subj', '/C=JP/CN=Foreign']);
  writeFileSync(tmp.path('leaf.ext'), 'keyUsage=critical,digitalSignature,nonRepudiation\n');
  must([
    'x509',
    '-req',
    '-in',
    'foreign.csr',
    '-CA',
    'foreign-ca.pem',
    '-CAkey',
    'foreign-ca.key',
    '-set_serial',
    '7',
    '-days',
    '30',
    '-extfile',
    'leaf.ext',
    '-outform',
    'DER',
    '-out',
    'foreign.der',
  ]);
  foreign = {
    certDer: readFileSync(tmp.path('foreign.der')),
    caPem: readFileSync(tmp.path('foreign-ca.pem'), 'utf8'),
    signer: SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(tmp.path('foreign.key'), 'utf8'))),
  };
});
afterAll(() => tmp.cleanup());

// ---------------------------------------------------------------------------------------------
// Tampering helpers.

/** Flips one bit of the byte `fromEnd` bytes before the end (the signature value sits last). */
function flipNearEnd(der: Buffer, fromEnd = 10): Buffer {
  const out = Buffer.from(der);
  out[out.length - fromEnd]! ^= 0x01;
  return out;
}

/** Replaces the first occurrence of `from` in `der` with `to` (same length). */
function replaceBytes(der: Buffer, from: string | Buffer, to: string | Buffer): Buffer {
  const a = Buffer.from(from);
  const b = Buffer.from(to);
  expect(b.length).toBe(a.length);
  const i = der.indexOf(a);
  expect(i).toBeGreaterThanOrEqual(0);
  const out = Buffer.from(der);
  b.copy(out, i);
  return out;
}

/** Flips a bit of the decoded base64 text of the first element named `tag`, `fromEnd` bytes before its end. */
function tamperBase64Element(xml: string, tag: string, fromEnd = 10): string {
  const re = new RegExp(`(<(?:\\w+:)?${tag}[^>]*>)([^<]*)(<)`);
  expect(xml).toMatch(re);
  return xml.replace(re, (_m, open: string, b64: string, close: string) => {
    const bytes = flipNearEnd(Buffer.from(b64.replace(/\s+/g, ''), 'base64'), fromEnd);
    return `${open}${bytes.toString('base64')}${close}`;
  });
}

/** An empty enveloped ds:Signature for xmlsec1 to fill (RSA-SHA256, exclusive C14N, the whole document). */
function xmlsecTemplate(xml: string): string {
  const c14n = 'http://www.w3.org/2001/10/xml-exc-c14n#';
  const sig = [
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>',
    `<ds:CanonicalizationMethod Algorithm="${c14n}"/>`,
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>',
    '<ds:Reference URI=""><ds:Transforms>',
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>',
    `<ds:Transform Algorithm="${c14n}"/></ds:Transforms>`,
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>',
    '</ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>',
  ].join('');
  const end = xml.lastIndexOf('</');
  return `${xml.slice(0, end)}${sig}${xml.slice(end)}`;
}

function xmlsec1(args: string[]): string {
  const x = spawnSync('xmlsec1', args, { encoding: 'utf8', timeout: 30_000 });
  if (x.status !== 0) throw new Error(`xmlsec1 ${args.join(' ')} failed: ${x.stdout}\n${x.stderr}`);
  return x.stdout;
}

// ---------------------------------------------------------------------------------------------

/** Summaries seen per outcome (indication/sub-indication/long-term reason): each outcome says something different. */
const summaries = new Map<string, { ja: string; en: string }>();
function record(r: ValidationReport): ValidationReport {
  expect(r.summary.ja.length).toBeGreaterThan(0);
  expect(r.summary.en.length).toBeGreaterThan(0);
  // one sentence for a pass at the time stamp, whether revoked or expired since
  const key = `${r.indication}/${r.subIndication ?? ''}/${r.longTermValidation ? 'LTV' : ''}`;
  const generic = (s: string) => s.replace(/[（(]signer: .*|（署名者: .*/u, '');
  summaries.set(key, { ja: generic(r.summary.ja), en: generic(r.summary.en) });
  return r;
}

describe.each(testStores())('verifySignature with a real authority (%s)', (backend) => {
  let ta: TestAuthority;
  let authority: Authority;
  let app: FastifyInstance;
  let tsaUrl: string;
  let root: Buffer;
  let signCa: Buffer;
  const certs = {} as Record<keyof typeof keys, IssuedCertificate>;
  const file = (name: string) => tmp.path(`${backend}-${name}`);

  /** The authority's current CRLs: root and sign, full and delta. */
  async function currentCrls(): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const [ca, kind] of [
      ['root', 'full'],
      ['sign', 'full'],
      ['sign', 'delta'],
    ] as const) {
      const c = await authority.currentCrl(ca, kind);
      if (c) out.push(c.der);
    }
    return out;
  }

  async function publishCrls(): Promise<void> {
    await authority.generateCrl('root');
    await authority.generateCrl('sign');
    await authority.generateCrl('sign', { delta: true });
  }

  async function verify(signature: Buffer | string, extra: Partial<VerifySignatureInput> = {}) {
    return record(
      await verifySignature({
        signature: Buffer.from(signature),
        trust: [root],
        untrusted: [signCa],
        crls: await currentCrls(),
        ...extra,
      }),
    );
  }

  const sign = (
    who: keyof typeof keys,
    format: 'cms' | 'xml',
    o: { detached?: boolean; ts?: boolean } = {},
  ) =>
    signDocument({
      format,
      signer: keys[who].signer,
      certificate: certs[who].der,
      chain: [signCa],
      content: format === 'xml' ? Buffer.from(XML_DOCUMENT) : DOCUMENT,
      detached: o.detached,
      timestampUrl: o.ts ? tsaUrl : undefined,
    });

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    authority = ta.authority;
    root = authority.certificate('root');
    signCa = authority.certificate('sign');
    app = await buildServer({ authority, operatorToken: ta.operatorToken });
    await app.listen({ host: '127.0.0.1', port: 0 });
    tsaUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/tsa`;
    for (const who of Object.keys(keys) as (keyof typeof keys)[])
      certs[who] = await authority.issue({ kind: 'sign', csr: keys[who].csrPem, facts: FACTS });
    await publishCrls();
    writeFileSync(file('good.pem'), certs.good.pem);
    writeFileSync(file('sign-ca.pem'), encodePem('CERTIFICATE', signCa));
    writeFileSync(file('doc.bin'), DOCUMENT);
  });
  afterAll(async () => {
    await app?.close();
    await ta?.close();
  });

  // -------------------------------------------------------------------------------------------
  describe('valid signatures pass with the authority’s CRLs', () => {
    function expectSigner(r: ValidationReport, who: keyof typeof keys) {
      // the report writes the serial as the integer (no 0x00 sign octet); the authority takes both
      expect(canonicalSerial(r.signer!.serial)).toBe(certs[who].serial);
      expect(r.signer).toMatchObject({
        kind: 'sign',
        issuer: 'C=JP, O=JPKI, OU=JPKI for digital signature',
        notAfter: certs[who].notAfter.toISOString(),
        basicFacts: {
          name: FULL_WIDTH_NAME,
          dateOfBirth: '1990-04-01',
          sex: 'male',
          address: '東京都千代田区霞が関1-2-2',
        },
      });
      expect(r.certificateChain).toEqual([
        certs[who].subject,
        'C=JP, O=JPKI, OU=JPKI for digital signature',
        'C=JP, O=JPKI, OU=JPKI Root CA',
      ]);
      expect(r.revocation.map((x) => [x.index, x.source, x.status])).toEqual([
        [0, 'crl', 'good'],
        [1, 'crl', 'good'],
      ]);
      expect(r.summary.ja).toContain(FULL_WIDTH_NAME);
      expect(r.summary.en).toContain(FULL_WIDTH_NAME);
    }

    it('CMS attached (CAdES-BES): TOTAL_PASSED, the four basic facts, the claimed signing time', async () => {
      const claimed = new Date('2026-04-01T09:30:00Z');
      const cms = await signCms({
        signer: keys.good.signer,
        certificate: certs.good.der,
        chain: [signCa],
        content: DOCUMENT,
        detached: false,
        signingTime: claimed,
      });
      const r = await verify(cms);
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.subIndication).toBeUndefined();
      expect(r.format).toBe('CAdES-BES');
      expect(r.signingTime).toBe(claimed.toISOString());
      expect(r.timestampTime).toBeUndefined();
      expect(r.longTermValidation).toBeUndefined();
      expect(r.signedContent).toEqual(DOCUMENT);
      expect(r.messages).toContain('no signature time stamp: nothing proves when the signature was made');
      expectSigner(r, 'good');
      // the revocation entries say which CRLs answered
      expect(r.revocation[0]!.crlNumber).toBeDefined();
      expect(r.revocation[0]!.deltaCrlNumber).toBeDefined();
    });

    it('CMS detached with its content (signDocument): TOTAL_PASSED; the signing time is the signing moment', async () => {
      const before = Math.floor(Date.now() / 1000) * 1000;
      const { output } = await sign('good', 'cms', { detached: true });
      const r = await verify(output, { content: DOCUMENT });
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.format).toBe('CAdES-BES');
      const t = new Date(r.signingTime!).getTime();
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(Date.now());
      expect(r.signedContent).toEqual(DOCUMENT);
      expectSigner(r, 'good');
    });

    it('XML enveloped (XAdES-BES): TOTAL_PASSED, the signed document is what the signature covers', async () => {
      const claimed = new Date('2026-04-01T09:31:00Z');
      const xml = await signXml({
        xml: XML_DOCUMENT,
        signer: keys.good.signer,
        certificate: certs.good.der,
        canonicalization: 'exclusive',
        signingTime: claimed,
      });
      const r = await verify(xml);
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.format).toBe('XAdES-BES');
      expect(r.signingTime).toBe(claimed.toISOString());
      expect(r.signedContent!.toString('utf8')).toContain('<氏名>山田　太郎</氏名>');
      expect(r.signedContent!.toString('utf8')).not.toContain('Signature');
      expectSigner(r, 'good');
    });

    it('PEM-armoured CMS is accepted as well', async () => {
      const { output } = await sign('good', 'cms');
      const r = await verify(encodePem('CMS', output));
      expect(r.indication).toBe('TOTAL_PASSED');
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('what is wrong with the signature itself', () => {
    it('altered content: TOTAL_FAILED/HASH_FAILURE (attached, detached, XML)', async () => {
      const attached = (await sign('good', 'cms')).output;
      const a = await verify(replaceBytes(attached, '住所変更', '住所抹消'));
      expect([a.indication, a.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);
      expect(a.signer).toBeUndefined();
      expect(a.summary.en).toMatch(/changed after it was signed/);

      const detached = (await sign('good', 'cms', { detached: true })).output;
      const altered = Buffer.from(DOCUMENT);
      altered[0]! ^= 0x20;
      const d = await verify(detached, { content: altered });
      expect([d.indication, d.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);

      const xml = (await sign('good', 'xml')).output.toString('utf8');
      const x = await verify(xml.replace('<金額>43500<', '<金額>13500<'));
      expect([x.indication, x.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);
    });

    it('altered signature value: TOTAL_FAILED/SIG_CRYPTO_FAILURE (CMS, XML)', async () => {
      const cms = (await sign('good', 'cms')).output;
      const c = await verify(flipNearEnd(cms));
      expect([c.indication, c.subIndication]).toEqual(['TOTAL_FAILED', 'SIG_CRYPTO_FAILURE']);

      const xml = (await sign('good', 'xml')).output.toString('utf8');
      const x = await verify(tamperBase64Element(xml, 'SignatureValue'));
      expect([x.indication, x.subIndication]).toEqual(['TOTAL_FAILED', 'SIG_CRYPTO_FAILURE']);
    });

    it('a detached signature without its content: INDETERMINATE/SIGNED_DATA_NOT_FOUND', async () => {
      const detached = (await sign('good', 'cms', { detached: true })).output;
      const r = await verify(detached);
      expect([r.indication, r.subIndication]).toEqual(['INDETERMINATE', 'SIGNED_DATA_NOT_FOUND']);
      expect(r.signedContent).toBeUndefined();
    });

    it('garbage: TOTAL_FAILED/FORMAT_FAILURE, never an exception', async () => {
      for (const junk of [Buffer.alloc(0), Buffer.from('not a signature'), Buffer.from([0x30, 0x80, 0x00])]) {
        const r = await verify(junk);
        expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'FORMAT_FAILURE']);
        expect(r.messages.length).toBeGreaterThan(0);
      }
      const r = await verify('<申請書>not signed</申請書>');
      expect(r.indication).toBe('TOTAL_FAILED');
      expect(r.format).toBe('XML-DSig');
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('what is wrong with the signer’s certificate', () => {
    it('a certificate of another CA: INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND', async () => {
      const cms = await signCms({
        signer: foreign.signer,
        certificate: foreign.certDer,
        content: DOCUMENT,
        detached: false,
      });
      const r = await verify(cms, { untrusted: [signCa, Buffer.from(foreign.caPem)] });
      expect([r.indication, r.subIndication]).toEqual(['INDETERMINATE', 'NO_CERTIFICATE_CHAIN_FOUND']);
      expect(r.signer?.kind).toBe('other');
      expect(r.signer?.basicFacts).toBeUndefined();
      // trusting that CA instead makes the path (it has no CRL: the answer is then TRY_LATER)
      const t = await verify(cms, { trust: [Buffer.from(foreign.caPem)] });
      expect(t.subIndication).toBe('TRY_LATER');
    });

    it('no CRL given: INDETERMINATE/TRY_LATER (offline, nothing to check revocation with)', async () => {
      const { output } = await sign('good', 'cms');
      const r = await verify(output, { crls: [] });
      expect([r.indication, r.subIndication]).toEqual(['INDETERMINATE', 'TRY_LATER']);
      expect(r.messages.join('\n')).toMatch(/Offline/);
    });

    it('validated after the certificate expired, without a time stamp: not TOTAL_PASSED', async () => {
      const { output } = await sign('good', 'cms');
      const at = new Date(certs.good.notAfter.getTime() + 86_400_000);
      const r = await verify(output, { at });
      expect(r.indication).toBe('INDETERMINATE');
      expect(r.subIndication).toBe('OUT_OF_BOUNDS_NO_POE');
      expect(r.validationTime).toBe(at.toISOString());
      expect(r.messages.join('\n')).toMatch(/expired/);
    });

    it('validated before the certificate was issued: TOTAL_FAILED/NOT_YET_VALID', async () => {
      const { output } = await sign('good', 'cms');
      const r = await verify(output, { at: new Date(certs.good.notBefore.getTime() - 86_400_000) });
      expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'NOT_YET_VALID']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('revocation and long-term validation at the time stamp', () => {
    it('signed, then revoked, no time stamp: TOTAL_FAILED/REVOKED', async () => {
      const { output } = await sign('revoked', 'cms');
      expect((await verify(output)).indication).toBe('TOTAL_PASSED');
      await authority.revoke(certs.revoked.serial, 'keyCompromise');
      // the old CRLs still say good; the next CRL says revoked
      await publishCrls();
      const r = await verify(output);
      expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'REVOKED']);
      expect(r.revocation[0]).toMatchObject({ status: 'revoked', reason: 'keyCompromise', source: 'crl' });
      expect(r.longTermValidation).toBeUndefined();
      expect(r.summary.ja).toMatch(/失効/);
    });

    let afterCades: Buffer;
    let afterXades: Buffer;
    let afterRevokedAt: Date;
    let beforeCades: Buffer;
    let beforeXades: Buffer;

    it('time stamps from the authority’s TSA make CAdES-T and XAdES-T; revocation after the time stamp → TOTAL_PASSED at the time stamp', async () => {
      afterCades = (await sign('after', 'cms', { ts: true })).output;
      afterXades = (await sign('after', 'xml', { ts: true })).output;
      const stamped: string[] = [];
      for (const [sig, format] of [
        [afterCades, 'CAdES-T'],
        [afterXades, 'XAdES-T'],
      ] as const) {
        const r = await verify(sig);
        expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
        expect(r.format).toBe(format);
        expect(r.timestamps).toHaveLength(1);
        expect(r.timestamps[0]).toMatchObject({ valid: true, message: 'time stamp verified' });
        expect(r.timestamps[0]!.tsa).toMatch(/JPKI/);
        expect(r.timestampTime).toBe(r.timestamps[0]!.time);
        expect(r.messages.join('\n')).not.toMatch(/no signature time stamp/);
        stamped.push(r.timestampTime!);
      }
      // Revoked at the next whole second after the later time stamp (the store keeps seconds),
      // recorded now; wait until that moment has passed so that "now" finds it revoked.
      const latest = Math.max(...stamped.map((s) => new Date(s).getTime()));
      afterRevokedAt = new Date(Math.floor(latest / 1000) * 1000 + 1000);
      await authority.revoke(certs.after.serial, 'keyCompromise', afterRevokedAt);
      await publishCrls();
      const wait = afterRevokedAt.getTime() - Date.now() + 20;
      if (wait > 0) await sleep(wait);

      for (const sig of [afterCades, afterXades]) {
        const r = await verify(sig);
        expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
        expect(r.subIndication).toBeUndefined();
        expect(r.longTermValidation).toEqual({ at: r.timestampTime, reason: 'revoked-after-timestamp' });
        expect(new Date(r.timestampTime!).getTime()).toBeLessThan(afterRevokedAt.getTime());
        // the report still shows the revocation it looked past
        expect(r.revocation[0]).toMatchObject({ status: 'revoked', revokedAt: afterRevokedAt });
        expect(r.messages.join('\n')).toContain('after the time stamp');
        expect(r.summary.en).toMatch(/time stamp proves/);
        expect(r.summary.ja).toMatch(/タイムスタンプ/);
      }
    });

    it('a tampered time-stamp token is ignored with a message; the revoked certificate then fails', async () => {
      const cades = flipNearEnd(afterCades); // the token is the last thing in the CMS: its TSA signature
      const c = await verify(cades);
      expect(c.timestamps).toHaveLength(1);
      expect(c.timestamps[0]!.valid).toBe(false);
      expect(c.timestampTime).toBeUndefined();
      expect(c.messages.some((m) => m.startsWith('time stamp ignored:'))).toBe(true);
      expect(c.indication).not.toBe('TOTAL_PASSED');
      expect([c.indication, c.subIndication]).toEqual(['TOTAL_FAILED', 'REVOKED']);

      const xades = tamperBase64Element(afterXades.toString('utf8'), 'EncapsulatedTimeStamp');
      const x = await verify(xades);
      expect(x.timestamps[0]!.valid).toBe(false);
      expect(x.messages.some((m) => m.startsWith('time stamp ignored:'))).toBe(true);
      expect([x.indication, x.subIndication]).toEqual(['TOTAL_FAILED', 'REVOKED']);
    });

    it('a time stamp whose TSA certificate cannot be checked does not count as proof', async () => {
      // without the root CRL the TSA certificate (under the root) has no revocation status
      const withoutRoot = (await currentCrls()).slice(1);
      const r = await verify(afterCades, { crls: withoutRoot });
      expect(r.timestamps[0]!.valid).toBe(false);
      expect(r.timestamps[0]!.message).toMatch(/time-stamp authority's certificate did not validate/);
      expect(r.indication).not.toBe('TOTAL_PASSED');
    });

    it('revoked BEFORE the time stamp: TOTAL_FAILED/REVOKED although time-stamped (CAdES-T, XAdES-T)', async () => {
      beforeCades = (await sign('before', 'cms', { ts: true })).output;
      beforeXades = (await sign('before', 'xml', { ts: true })).output;
      // dated back to the issuance: before both time stamps
      await authority.revoke(certs.before.serial, 'keyCompromise', certs.before.notBefore);
      await publishCrls();
      for (const sig of [beforeCades, beforeXades]) {
        const r = await verify(sig);
        expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'REVOKED']);
        expect(r.timestampTime).toBeDefined();
        expect(r.longTermValidation).toBeUndefined();
        expect(r.revocation[0]!.revokedAt).toEqual(certs.before.notBefore);
      }
    });

    it('expired after the time stamp: TOTAL_PASSED with expired-after-timestamp (CAdES-T, XAdES-T)', async () => {
      const at = new Date(certs.good.notAfter.getTime() + 86_400_000);
      for (const format of ['cms', 'xml'] as const) {
        const { output } = await sign('good', format, { ts: true });
        const r = await verify(output, { at });
        expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
        expect(r.longTermValidation).toEqual({ at: r.timestampTime, reason: 'expired-after-timestamp' });
        expect(r.messages.join('\n')).toMatch(/expired at .* after the time stamp/);
        // The CRLs are today's: valid at the time stamp, long expired at the validation time. The
        // statuses shown are those the answer rests on, good at the time stamp (not the "unknown,
        // stale" of the validation time).
        expect(r.revocation.map((x) => [x.index, x.status])).toEqual([
          [0, 'good'],
          [1, 'good'],
        ]);
      }
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('interoperability', () => {
    it('openssl cms -sign (plain CMS, no ESS signing-certificate): TOTAL_PASSED; altered: HASH_FAILURE', async () => {
      const out = file('openssl.p7s');
      must([
        'cms',
        '-sign',
        '-binary',
        '-md',
        'sha256',
        '-signer',
        file('good.pem'),
        '-inkey',
        keys.good.keyPath,
        '-outform',
        'DER',
        '-nodetach',
        '-certfile',
        file('sign-ca.pem'),
        '-in',
        file('doc.bin'),
        '-out',
        out,
      ]);
      const der = readFileSync(out);
      const r = await verify(der);
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.format).toBe('CMS');
      expect(r.signer?.basicFacts?.name).toBe(FULL_WIDTH_NAME);
      expect(r.signedContent).toEqual(DOCUMENT);
      const altered = await verify(replaceBytes(der, '住所変更', '住所抹消'));
      expect([altered.indication, altered.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);

      // detached, given the content
      must([
        'cms',
        '-sign',
        '-binary',
        '-md',
        'sha256',
        '-signer',
        file('good.pem'),
        '-inkey',
        keys.good.keyPath,
        '-outform',
        'DER',
        '-certfile',
        file('sign-ca.pem'),
        '-in',
        file('doc.bin'),
        '-out',
        `${out}.detached`,
      ]);
      const d = await verify(readFileSync(`${out}.detached`), { content: DOCUMENT });
      expect(d.indication, d.messages.join('\n')).toBe('TOTAL_PASSED');
    });

    it('xmlsec1 --sign with the resident’s key (XML-DSig, no XAdES): TOTAL_PASSED', async () => {
      const tmpl = file('xmlsec-template.xml');
      const out = file('xmlsec-signed.xml');
      writeFileSync(tmpl, xmlsecTemplate(XML_DOCUMENT));
      xmlsec1(['--sign', '--privkey-pem', `${keys.good.keyPath},${file('good.pem')}`, '--output', out, tmpl]);
      const signed = readFileSync(out, 'utf8');
      const r = await verify(signed);
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.format).toBe('XML-DSig');
      expect(r.signingTime).toBeUndefined();
      expect(r.signer?.basicFacts?.name).toBe(FULL_WIDTH_NAME);
      const x = await verify(signed.replace('<金額>43500<', '<金額>13500<'));
      expect([x.indication, x.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('inputs from the signature are kept to the call', () => {
    it('CRLs given to one call do not stay in a long-lived source', async () => {
      const source = new RevocationSource();
      const { output } = await sign('good', 'cms');
      const first = await verify(output, { source });
      expect(first.indication).toBe('TOTAL_PASSED');
      expect(source.crls()).toEqual([]);
      const second = await verify(output, { source, crls: [] });
      expect(second.subIndication).toBe('TRY_LATER');
    });

    it('CRLs fetched online go to the long-lived source and serve the next call', async () => {
      const served = new Map<string, Buffer>();
      for (const [ca, kind, name] of [
        ['root', 'full', 'root.crl'],
        ['sign', 'full', 'sign.crl'],
        ['sign', 'delta', 'sign-delta.crl'],
      ] as const)
        served.set(`/crl/${name}`, (await authority.currentCrl(ca, kind))!.der);
      const asked: string[] = [];
      const fetchStub = (async (url: string | URL | Request) => {
        const path = new URL(String(url)).pathname;
        asked.push(path);
        const der = served.get(path);
        return der ? new Response(new Uint8Array(der), { status: 200 }) : new Response(null, { status: 404 });
      }) as typeof fetch;
      const source = new RevocationSource({ online: true, useOcsp: false, fetch: fetchStub });
      const { output } = await sign('good', 'cms');
      const first = await verify(output, { source, crls: [] });
      expect(first.indication, first.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(asked.sort()).toEqual(['/crl/root.crl', '/crl/sign-delta.crl', '/crl/sign.crl']);
      expect(source.crls()).toHaveLength(3);
      const second = await verify(output, { source, crls: [] });
      expect(second.indication).toBe('TOTAL_PASSED');
      expect(asked).toHaveLength(3); // nothing fetched again before nextUpdate
    });

    it('CRLs embedded in a CMS are used; a malformed one is reported, not thrown', async () => {
      const crls = await currentCrls();
      const [rootCrl, signCrl] = crls as [Buffer, Buffer];
      const { output } = await sign('good', 'cms');
      // the sign CA's CRL travels inside the signature; only the root CRL is given
      const r = await verify(embedCrls(output, [signCrl]), { crls: [rootCrl] });
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      // a CertificateList that is not one: its TBSCertList SEQUENCE made a SET (the signature is unaffected)
      const broken = Buffer.from(signCrl);
      broken[signCrl[1]! & 0x80 ? 2 + (signCrl[1]! & 0x7f) : 2] = 0x31;
      const b = await verify(embedCrls(output, [broken]));
      expect(b.indication, b.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(b.messages.join('\n')).toMatch(/CRL #1 embedded in the signature ignored/);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe.runIf(backend === 'sqlite')('mutated signatures', () => {
    it('never make verifySignature throw: every answer is a report with a known outcome', async () => {
      const cades = (await sign('good', 'cms', { ts: true })).output;
      const xades = (await sign('good', 'xml', { ts: true })).output;
      const crls = await currentCrls();
      const outcomes = new Set<string>();
      const check = async (signature: Buffer) => {
        const r = await verifySignature({ signature, trust: [root], untrusted: [signCa], crls });
        expect(['TOTAL_PASSED', 'TOTAL_FAILED', 'INDETERMINATE']).toContain(r.indication);
        expect(r.indication === 'TOTAL_PASSED').toBe(r.subIndication === undefined);
        expect(r.summary.en.length).toBeGreaterThan(0);
        outcomes.add(`${r.indication}/${r.subIndication ?? ''}`);
      };
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(cades, xades),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
          fc.option(fc.nat(), { nil: undefined }),
          async (original, flips, cut) => {
            const m = Buffer.from(original);
            for (const [at, x] of flips) m[at % m.length]! ^= x;
            await check(cut === undefined ? m : m.subarray(0, cut % m.length));
          },
        ),
        { numRuns: 300 * SCALE },
      );
      expect(outcomes.size).toBeGreaterThan(2);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('POST /verify', () => {
    const post = (payload: unknown, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'POST',
        url: '/verify',
        headers: { 'content-type': 'application/json', ...headers },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
    const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

    it('passes: CMS attached, detached with content, XAdES-T; the signed content only on request', async () => {
      const attached = (await sign('good', 'cms')).output;
      const res = await post({ signature: b64(attached) });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const r = res.json();
      expect(r.indication, r.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(r.format).toBe('CAdES-BES');
      expect(r.signer.basicFacts).toMatchObject({
        name: FULL_WIDTH_NAME,
        sex: 'male',
        dateOfBirth: '1990-04-01',
      });
      expect(canonicalSerial(r.signer.serial)).toBe(certs.good.serial);
      expect(r.signedContent).toBeUndefined();
      expect(r.summary.ja).toContain('署名は有効です');
      // dates as ISO strings, revocation entries complete
      expect(r.revocation[0]).toMatchObject({ index: 0, source: 'crl', status: 'good' });
      expect(r.revocation[0].thisUpdate).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(r.validationTime).toMatch(/Z$/);

      const withContent = (await post({ signature: b64(attached), includeContent: true })).json();
      expect(Buffer.from(withContent.signedContent, 'base64')).toEqual(DOCUMENT);

      const detached = (await sign('good', 'cms', { detached: true })).output;
      const d = (await post({ signature: b64(detached), content: b64(DOCUMENT) })).json();
      expect(d.indication, d.messages.join('\n')).toBe('TOTAL_PASSED');
      const missing = (await post({ signature: b64(detached) })).json();
      expect([missing.indication, missing.subIndication]).toEqual(['INDETERMINATE', 'SIGNED_DATA_NOT_FOUND']);

      const xades = (await sign('good', 'xml', { ts: true })).output;
      const x = (await post({ signature: b64(xades), includeContent: true })).json();
      expect(x.indication, x.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(x.format).toBe('XAdES-T');
      expect(x.timestampTime).toBe(x.timestamps[0].time);
      expect(Buffer.from(x.signedContent, 'base64').toString('utf8')).toContain('<金額>43500</金額>');
    });

    it('fails: altered content, and a revocation published a moment ago', async () => {
      const attached = (await sign('http', 'cms')).output;
      const altered = (await post({ signature: b64(replaceBytes(attached, '住所変更', '住所抹消')) })).json();
      expect([altered.indication, altered.subIndication]).toEqual(['TOTAL_FAILED', 'HASH_FAILURE']);

      expect((await post({ signature: b64(attached) })).json().indication).toBe('TOTAL_PASSED');
      await authority.revoke(certs.http.serial, 'affiliationChanged');
      // recorded, not yet on a CRL: the CRLs still say good
      expect((await post({ signature: b64(attached) })).json().indication).toBe('TOTAL_PASSED');
      await authority.generateCrl('sign');
      const r = (await post({ signature: b64(attached) })).json();
      expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'REVOKED']);
      expect(r.revocation[0]).toMatchObject({ status: 'revoked', reason: 'affiliationChanged' });
      expect(r.revocation[0].revokedAt).toMatch(/Z$/);
    });

    it('a validation time: after the certificate’s end without a time stamp → OUT_OF_BOUNDS_NO_POE', async () => {
      const attached = (await sign('good', 'cms')).output;
      const at = new Date(certs.good.notAfter.getTime() + 86_400_000).toISOString();
      const r = (await post({ signature: b64(attached), at })).json();
      expect([r.indication, r.subIndication]).toEqual(['INDETERMINATE', 'OUT_OF_BOUNDS_NO_POE']);
      expect(r.validationTime).toBe(at);
    });

    it('CRLs in the request are used besides the authority’s; unreadable ones are reported', async () => {
      const attached = (await sign('good', 'cms')).output;
      const r = (await post({ signature: b64(attached), crls: [b64('not a CRL')] })).json();
      expect(r.indication).toBe('TOTAL_PASSED');
      expect(r.messages.join('\n')).toMatch(/CRL #1 ignored/);
      // a foreign signer with its own CA's CRL is still not trusted here
      const cms = await signCms({
        signer: foreign.signer,
        certificate: foreign.certDer,
        content: DOCUMENT,
        detached: false,
      });
      const f = (await post({ signature: b64(cms) })).json();
      expect([f.indication, f.subIndication]).toEqual(['INDETERMINATE', 'NO_CERTIFICATE_CHAIN_FOUND']);
    });

    it('garbage is a verification answer: 200 with TOTAL_FAILED/FORMAT_FAILURE', async () => {
      for (const payload of [
        { signature: b64('not a signature') },
        { signature: '' },
        { signature: b64(randomBytesFixed(300)) },
        { signature: b64('<?xml version="1.0"?><a/>') },
      ]) {
        const res = await post(payload);
        expect(res.statusCode).toBe(200);
        const r = res.json();
        expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'FORMAT_FAILURE']);
        expect(r.summary.en).toMatch(/cannot be read/);
        expect(r.signer).toBeUndefined();
      }
      const attached = (await sign('good', 'cms')).output;
      for (const [payload, field] of [
        [{ signature: '!!! not base64 !!!' }, 'signature'],
        [{ signature: b64(attached).slice(1) }, 'signature'],
        [{ signature: b64(attached), content: 'ä' }, 'content'],
        [{ signature: b64(attached), crls: ['%%'] }, 'crls[0]'],
      ] as const) {
        const res = await post(payload);
        expect(res.statusCode).toBe(200);
        const r = res.json();
        expect([r.indication, r.subIndication]).toEqual(['TOTAL_FAILED', 'FORMAT_FAILURE']);
        expect(r.messages).toEqual([`${field}: not base64`]);
      }
      // base64 wrapped over lines, as tools write it, is fine
      const wrapped = b64(attached).replace(/.{64}/g, '$&\n');
      expect((await post({ signature: wrapped })).json().indication).toBe('TOTAL_PASSED');
    });

    it('a body that is not the JSON asked for: 400 (malformed, missing or unknown fields, bad time), 415, 413', async () => {
      for (const payload of [
        '{"signature": "abc"',
        'not json',
        {},
        // (Fastify's ajv coerces scalars: 42 and null become strings, 'x' becomes ['x'])
        { signature: { der: 'AAAA' } },
        { signature: ['AAAA', 'AAAA'] },
        { signature: 'AAAA', extra: true },
        { signature: 'AAAA', at: 'yesterday' },
        { signature: 'AAAA', crls: [{ der: 'AAAA' }] },
        { signature: 'AAAA', crls: Array(17).fill('AAAA') },
        { signature: 'AAAA', includeContent: 'yes' },
      ]) {
        const res = await post(payload);
        expect(res.statusCode, JSON.stringify(payload)).toBe(400);
        expect(res.json()).toMatchObject({ error: 'BadRequest' });
      }
      const text = await post('signature=AAAA', { 'content-type': 'text/plain' });
      expect(text.statusCode).toBe(415);
      // over 16 MiB: refused before parsing
      const huge = await post({ signature: 'A'.repeat(16 * 1024 * 1024 + 4) });
      expect(huge.statusCode).toBe(413);
      expect(huge.json()).toMatchObject({ error: 'PayloadTooLarge' });
    });

    it('takes documents far larger than the API’s 64 KiB (a 2 MiB detached document)', async () => {
      const big = Buffer.alloc(2 * 1024 * 1024, '申請書');
      const detached = await signDocument({
        format: 'cms',
        signer: keys.good.signer,
        certificate: certs.good.der,
        content: big,
        detached: true,
      });
      const res = await post({ signature: b64(detached.output), content: b64(big) });
      expect(res.statusCode).toBe(200);
      expect(res.json().indication).toBe('TOTAL_PASSED');
    });

    it('is in the OpenAPI document', async () => {
      const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
      expect(doc.paths['/verify'].post.requestBody.content['application/json'].schema.required).toEqual([
        'signature',
      ]);
    });
  });

  // -------------------------------------------------------------------------------------------
  // Last: CRLs dated after the certificate's end are published, which later tests would pick up.
  describe('after the certificate expired', () => {
    it('only CRLs issued after the expiry (they no longer list the certificate): not TOTAL_PASSED, and the report says why', async () => {
      const { output } = await sign('good', 'cms', { ts: true });
      const beforeEnd = await currentCrls();
      const afterEnd = new Date(certs.good.notAfter.getTime() + 3_600_000);
      const later = await Authority.open(ta.dir, {
        env: ta.env,
        databaseUrl: ta.databaseUrl,
        now: () => afterEnd,
      });
      const crls: Buffer[] = [];
      try {
        await later.generateCrl('root');
        await later.generateCrl('sign');
        for (const ca of ['root', 'sign'] as const) crls.push((await later.currentCrl(ca, 'full'))!.der);
      } finally {
        await later.close();
      }
      const at = new Date(afterEnd.getTime() + 3_600_000);
      const r = await verify(output, { at, crls });
      // Judged at the time stamp (the valid proof of existence), where the only sign CRL is unusable:
      // not "no proof of existence", which the valid time stamp would contradict.
      expect(r.timestamps[0]!.valid).toBe(true);
      expect(r.timestampTime).toBeDefined();
      expect([r.indication, r.subIndication]).toEqual(['INDETERMINATE', 'TRY_LATER']);
      expect(r.longTermValidation).toBeUndefined();
      expect(r.revocation[0]).toMatchObject({ index: 0, status: 'unknown' });
      expect(r.messages.join('\n')).toMatch(/judged at the time stamp/);
      expect(r.messages.join('\n')).toMatch(/needs a CRL issued before the expiry/);
      // with a CRL from before the expiry (archived by the verifier) it passes at the time stamp
      const archived = await verify(output, { at, crls: [...crls, ...beforeEnd] });
      expect(archived.indication, archived.messages.join('\n')).toBe('TOTAL_PASSED');
      expect(archived.longTermValidation?.reason).toBe('expired-after-timestamp');
    });
  });
});

/** Deterministic bytes that are not a signature. */
function randomBytesFixed(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff));
}

/** The CMS with `crls` put into SignedData.crls ([1], before signerInfos). */
function embedCrls(cms: Buffer, crls: Buffer[]): Buffer {
  const ci = readTlv(cms, 0);
  const [contentType, wrapped] = readChildren(cms, ci) as [Tlv, Tlv];
  const signedData = readChildren(cms, wrapped)[0]!;
  const parts = readChildren(cms, signedData).map((t) => slice(cms, t));
  const signerInfos = parts.pop()!;
  return tlv(0x30, slice(cms, contentType), tlv(0xa0, tlv(0x30, ...parts, tlv(0xa1, ...crls), signerInfos)));
}

// The summary sentences differ per outcome (checked once every outcome above has been seen).
describe('summaries', () => {
  it('each outcome has its own sentence in Japanese and English', () => {
    const entries = [...summaries.entries()];
    expect(entries.length).toBeGreaterThanOrEqual(10);
    const ja = new Map<string, string>();
    const en = new Map<string, string>();
    for (const [key, s] of entries) {
      expect(ja.get(s.ja) ?? key, `${key} and ${ja.get(s.ja)} share a sentence`).toBe(key);
      expect(en.get(s.en) ?? key).toBe(key);
      ja.set(s.ja, key);
      en.set(s.en, key);
    }
  });
});
