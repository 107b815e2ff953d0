// Documents signed by xmlsec1 (libxmlsec1 over libxml2 and OpenSSL) are verified by verifyXml.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyXml } from '../../src/core/xml/index.ts';
import { tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki, xmlsec1 } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
beforeAll(() => {
  t = tempDir('jpki-xmlsec-');
  pki = makePki(t.dir);
});
afterAll(() => t.cleanup());

const EXC = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const INC = 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const ECDSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256';
const SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';

interface TemplateOptions {
  c14n?: string;
  method?: string;
  digest?: string;
  uri?: string;
  /** Extra Transform elements after enveloped-signature. */
  transforms?: string;
  prefix?: string;
  pretty?: boolean;
}

/** An empty enveloped Signature for xmlsec1 to fill, as the last child of the document element. */
function template(xml: string, o: TemplateOptions = {}): string {
  const c14n = o.c14n ?? EXC;
  const p = o.prefix ? `${o.prefix}:` : '';
  const nl = o.pretty ? '\n    ' : '';
  const sig = [
    `<${p}Signature xmlns${o.prefix ? `:${o.prefix}` : ''}="http://www.w3.org/2000/09/xmldsig#">`,
    `<${p}SignedInfo>`,
    `<${p}CanonicalizationMethod Algorithm="${c14n}"/>`,
    `<${p}SignatureMethod Algorithm="${o.method ?? RSA_SHA256}"/>`,
    `<${p}Reference URI="${o.uri ?? ''}">`,
    `<${p}Transforms><${p}Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>${
      o.transforms ?? `<${p}Transform Algorithm="${c14n}"/>`
    }</${p}Transforms>`,
    `<${p}DigestMethod Algorithm="${o.digest ?? SHA256}"/><${p}DigestValue/>`,
    `</${p}Reference>`,
    `</${p}SignedInfo>`,
    `<${p}SignatureValue/>`,
    `<${p}KeyInfo><${p}X509Data/></${p}KeyInfo>`,
    `</${p}Signature>`,
  ].join(nl);
  const end = xml.lastIndexOf('</');
  return `${xml.slice(0, end)}${sig}${xml.slice(end)}`;
}

let n = 0;
/** `xmlsec1 --sign --privkey-pem key,cert --output out.xml template.xml` */
function xmlsecSign(tmpl: string, key: { keyPath: string; certPath: string }, extra: string[] = []): string {
  const i = n++;
  const inPath = t.path(`tmpl-${i}.xml`);
  const outPath = t.path(`signed-${i}.xml`);
  writeFileSync(inPath, tmpl);
  const r = xmlsec1([
    '--sign',
    ...extra,
    '--privkey-pem',
    `${key.keyPath},${key.certPath}`,
    '--output',
    outPath,
    inPath,
  ]);
  if (!r.ok) throw new Error(`xmlsec1 --sign failed: ${r.output}`);
  return readFileSync(outPath, 'utf8');
}

function flipSignatureBit(xml: string): string {
  return xml.replace(
    /(<(?:\w+:)?SignatureValue[^>]*>)([^<]*)(<)/,
    (_m, open: string, b64: string, close: string) => {
      const sig = Buffer.from(b64.replace(/\s+/g, ''), 'base64');
      sig[sig.length >> 1]! ^= 0x01;
      return `${open}${sig.toString('base64')}${close}`;
    },
  );
}

describe.each([
  ['RSA, exclusive C14N, default-namespace Signature', 'rsa', { c14n: EXC }],
  ['RSA, inclusive C14N, ds: prefix, pretty-printed', 'rsa', { c14n: INC, prefix: 'ds', pretty: true }],
  ['ECDSA P-256, exclusive C14N', 'ec', { c14n: EXC, method: ECDSA_SHA256, prefix: 'dsig' }],
  ['ECDSA P-256, inclusive C14N', 'ec', { c14n: INC, method: ECDSA_SHA256 }],
] as const)('signed by xmlsec1: %s', (_name, who, opts) => {
  let signed: string;
  beforeAll(() => {
    signed = xmlsecSign(template(fixture('shinkoku.xml'), opts), pki[who]);
  });

  test('verifyXml accepts it', () => {
    const r = verifyXml(signed);
    expect(r.status, r.message).toBe('valid');
    expect(r.signerCertificate).toEqual(pki[who].cert);
    expect(r.xades).toBe(false);
    expect(r.signedDocument!.getElementsByTagNameNS('urn:example:etax', '納付税額')[0]!.textContent).toBe(
      '43500',
    );
    expect(r.signedElement).not.toContain('Signature');
  });

  test('verifyXml rejects it when the document is altered: HASH_FAILURE', () => {
    const r = verifyXml(signed.replace('>山田　太郎<', '>山田　花子<'));
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('HASH_FAILURE');
  });

  test('verifyXml rejects it when the SignatureValue is altered: SIG_CRYPTO_FAILURE', () => {
    const altered = flipSignatureBit(signed);
    expect(altered).not.toBe(signed);
    const r = verifyXml(altered);
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('SIG_CRYPTO_FAILURE');
  });
});

test('an xmlsec1 signature over a document with comments, CRLF and U+2028 verifies', () => {
  const xml = `${fixture('tricky.xml').replace('</r:文書>', '<x>\u2028</x></r:文書>')}`;
  for (const c14n of [EXC, INC]) {
    const signed = xmlsecSign(template(xml, { c14n }), pki.rsa);
    expect(verifyXml(signed).status).toBe('valid');
  }
  const crlf = xmlsecSign(template(fixture('crlf.xml'), { method: ECDSA_SHA256 }), pki.ec);
  expect(verifyXml(crlf).status).toBe('valid');
});

describe('refused algorithms and keys (CRYPTO_CONSTRAINTS_FAILURE)', () => {
  test('RSA-SHA1 signature method, even though the signature is mathematically correct', () => {
    const signed = xmlsecSign(
      template(fixture('shinkoku.xml'), { method: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1' }),
      pki.rsa,
    );
    const r = verifyXml(signed);
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('CRYPTO_CONSTRAINTS_FAILURE');
    expect(r.message).toMatch(/SHA-1 is refused/);
  });

  test('SHA-1 reference digest', () => {
    const signed = xmlsecSign(
      template(fixture('shinkoku.xml'), { digest: 'http://www.w3.org/2000/09/xmldsig#sha1' }),
      pki.rsa,
    );
    const r = verifyXml(signed);
    expect(r.subIndication).toBe('CRYPTO_CONSTRAINTS_FAILURE');
    expect(r.message).toMatch(/digest method SHA-1/);
  });

  test('an HMAC "signature" method (a MAC anyone with the certificate could forge)', () => {
    const signed = xmlsecSign(template(fixture('shinkoku.xml')), pki.rsa).replace(
      RSA_SHA256,
      'http://www.w3.org/2000/09/xmldsig#hmac-sha1',
    );
    expect(verifyXml(signed).subIndication).toBe('CRYPTO_CONSTRAINTS_FAILURE');
  });

  test('an RSA-1024 key', () => {
    const signed = xmlsecSign(template(fixture('shinkoku.xml')), pki.weak);
    const r = verifyXml(signed);
    expect(r.subIndication).toBe('CRYPTO_CONSTRAINTS_FAILURE');
    expect(r.message).toMatch(/2048/);
  });
});

describe('signatures that xmlsec1 accepts but this profile does not', () => {
  const doc = '<doc xmlns="urn:example:etax"><body Id="target"><amount>100</amount></body></doc>';
  const idRef = (xml: string) =>
    template(xml, { uri: '#target', transforms: `<Transform Algorithm="${EXC}"/>` });

  test('a Reference to an Id (only part of the document is signed): SIGNED_DATA_NOT_FOUND', () => {
    const signed = xmlsecSign(idRef(doc), pki.rsa, ['--id-attr:Id', 'urn:example:etax:body']);
    const r = verifyXml(signed);
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('SIGNED_DATA_NOT_FOUND');
    expect(r.message).toMatch(/whole document/);
  });

  test('an XPath transform: FORMAT_FAILURE', () => {
    const signed = xmlsecSign(
      template(doc, {
        transforms: `<Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><XPath xmlns:dsig="http://www.w3.org/2000/09/xmldsig#">not(ancestor-or-self::dsig:Signature)</XPath></Transform>`,
      }),
      pki.rsa,
    );
    const r = verifyXml(signed);
    expect(r.subIndication).toBe('FORMAT_FAILURE');
    expect(r.message).toMatch(/not supported/);
  });
});
