import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Signer } from '../../src/core/signer.ts';
import { NS } from '../../src/core/xml/constants.ts';
import { parseXml, signXml, verifyXml, XmlSignatureError } from '../../src/core/xml/index.ts';
import { tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki, xmlsec1, xmlsecVerifyArgs } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
const SHINKOKU = fixture('shinkoku.xml');
const SIGNING_TIME = new Date('2025-03-14T09:30:00Z');

beforeAll(() => {
  t = tempDir('jpki-xml-');
  pki = makePki(t.dir);
});
afterAll(() => t.cleanup());

let fileNo = 0;
function xmlsecVerify(xml: string) {
  const p = t.path(`doc-${fileNo++}.xml`);
  writeFileSync(p, xml);
  return xmlsec1(xmlsecVerifyArgs(pki.rootPem, p));
}

const byName = (doc: Document, ns: string, local: string) =>
  Array.from(doc.getElementsByTagNameNS(ns, local));

describe.each([
  ['rsa', 'exclusive'],
  ['rsa', 'inclusive'],
  ['ec', 'exclusive'],
  ['ec', 'inclusive'],
] as const)('%s key, %s canonicalization', (who, canonicalization) => {
  let signed: string;
  beforeAll(async () => {
    const { signer, cert } = pki[who];
    signed = await signXml({
      xml: SHINKOKU,
      signer,
      certificate: cert,
      canonicalization,
      signingTime: SIGNING_TIME,
    });
  });

  test('verifyXml accepts the XAdES-BES signature and reports what was signed', () => {
    const r = verifyXml(signed);
    expect(r.status, r.message).toBe('valid');
    expect(r.subIndication).toBeUndefined();
    expect(r.signerCertificate).toEqual(pki[who].cert);
    expect(r.certificates).toEqual([pki[who].cert]);
    expect(r.signingTime).toEqual(SIGNING_TIME);
    expect(r.xades).toBe(true);
    expect(r.canonicalization).toBe(canonicalization);
    expect(r.signatureMethod).toBe(
      who === 'rsa'
        ? 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'
        : 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
    );
    expect(r.signatureValue.length).toBe(who === 'rsa' ? 256 : 64);
    expect(r.signatureTimeStamps).toEqual([]);
    // the signed content, without the signature and without comments
    const doc = r.signedDocument!;
    expect(doc.documentElement.localName).toBe('申告書');
    expect(doc.getElementsByTagNameNS('urn:example:etax:general', '氏名')[0]!.textContent).toBe('山田　太郎');
    expect(doc.getElementsByTagNameNS('urn:example:etax', '納付税額')[0]!.textContent).toBe('43500');
    expect(doc.getElementsByTagNameNS(NS.ds, 'Signature').length).toBe(0);
    expect(r.signedElement).toContain('<備考>医療費の領収書は別途郵送 &amp; 確認済 &lt;控&gt;</備考>');
    expect(r.signedElement).not.toContain('<!--');
  });

  test('xmlsec1 accepts it (chain to the root, both references)', () => {
    const r = xmlsecVerify(signed);
    expect(r.ok, r.output).toBe(true);
    expect(r.output).toContain('SignedInfo References (ok/all): 2/2');
  });

  test('xmlsec1 and verifyXml reject it when a text node is altered', () => {
    const altered = signed.replace('<納付税額 単位="円">43500<', '<納付税額 単位="円">4350<');
    expect(altered).not.toBe(signed);
    expect(xmlsecVerify(altered).ok).toBe(false);
    const r = verifyXml(altered);
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('HASH_FAILURE');
    expect(r.signedDocument).toBeUndefined();
    expect(r.signedElement).toBeUndefined();
  });

  test('xmlsec1 and verifyXml reject it when an attribute or the signing time is altered', () => {
    const attr = signed.replace('金融機関="みずほ銀行"', '金融機関="ゆうちょ銀行"');
    expect(xmlsecVerify(attr).ok).toBe(false);
    expect(verifyXml(attr).subIndication).toBe('HASH_FAILURE');
    const time = signed.replace('2025-03-14T09:30:00Z', '2025-03-15T09:30:00Z');
    expect(xmlsecVerify(time).ok).toBe(false);
    expect(verifyXml(time).subIndication).toBe('HASH_FAILURE');
  });
});

test('the signature element has the e-Tax / XAdES-BES shape', async () => {
  const signed = await signXml({
    xml: SHINKOKU,
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
    signingTime: SIGNING_TIME,
  });
  const doc = parseXml(signed);
  const root = doc.documentElement;
  const sig = byName(doc, NS.ds, 'Signature');
  expect(sig).toHaveLength(1);
  expect(sig[0]!.parentNode).toBe(root);
  let last = root.lastChild;
  while (last && last.nodeType !== 1) last = last.previousSibling;
  expect(last).toBe(sig[0]);
  const sigId = sig[0]!.getAttribute('Id')!;
  expect(sigId).toMatch(/^Signature-/);

  const c14n = byName(doc, NS.ds, 'CanonicalizationMethod')[0]!;
  expect(c14n.getAttribute('Algorithm')).toBe('http://www.w3.org/2001/10/xml-exc-c14n#');
  const refs = byName(doc, NS.ds, 'Reference');
  expect(refs).toHaveLength(2);
  expect(refs[0]!.getAttribute('URI')).toBe('');
  expect(
    Array.from(refs[0]!.getElementsByTagNameNS(NS.ds, 'Transform')).map((e) => e.getAttribute('Algorithm')),
  ).toEqual([
    'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
    'http://www.w3.org/2001/10/xml-exc-c14n#',
  ]);
  expect(refs[0]!.getElementsByTagNameNS(NS.ds, 'DigestMethod')[0]!.getAttribute('Algorithm')).toBe(
    'http://www.w3.org/2001/04/xmlenc#sha256',
  );
  expect(refs[1]!.getAttribute('Type')).toBe('http://uri.etsi.org/01903#SignedProperties');
  const sp = byName(doc, NS.xades, 'SignedProperties')[0]!;
  expect(refs[1]!.getAttribute('URI')).toBe(`#${sp.getAttribute('Id')}`);

  const qp = byName(doc, NS.xades, 'QualifyingProperties')[0]!;
  expect(qp.getAttribute('Target')).toBe(`#${sigId}`);
  expect((qp.parentNode as Element).localName).toBe('Object');
  expect(byName(doc, NS.xades, 'SigningTime')[0]!.textContent).toBe('2025-03-14T09:30:00Z');
  const certDigest = byName(doc, NS.xades, 'CertDigest')[0]!;
  expect(certDigest.getElementsByTagNameNS(NS.ds, 'DigestValue')[0]!.textContent).toBe(
    createHash('sha256').update(pki.rsa.cert).digest('base64'),
  );
  expect(byName(doc, NS.ds, 'X509SerialNumber')[0]!.textContent).toBe(
    BigInt('0x0123456789abcdef0123').toString(),
  );
  expect(byName(doc, NS.ds, 'X509IssuerName')[0]!.textContent).toBe(
    'CN=テスト署名用ルートCA,O=Open JPKI Test\\, Inc.,C=JP',
  );
  expect(byName(doc, NS.ds, 'X509Certificate')[0]!.textContent).toBe(pki.rsa.cert.toString('base64'));
  // the document before the signature is untouched, comment and declaration included
  expect(signed.startsWith(SHINKOKU.slice(0, SHINKOKU.lastIndexOf('</申告書>')))).toBe(true);
});

test('signing goes through the async Signer interface exactly once, over the canonical SignedInfo', async () => {
  const calls: Buffer[] = [];
  const card: Signer = {
    algorithm: pki.ec.signer.algorithm,
    publicKeySpki: pki.ec.signer.publicKeySpki,
    async sign(data) {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
      calls.push(buf);
      await new Promise((r) => setTimeout(r, 5)); // a card takes its time
      return pki.ec.signer.sign(buf);
    },
  };
  const signed = await signXml({
    xml: SHINKOKU,
    signer: card,
    certificate: pki.ec.cert,
    canonicalization: 'inclusive',
  });
  expect(calls).toHaveLength(1);
  expect(calls[0]!.toString('utf8')).toMatch(
    /^<ds:SignedInfo xmlns="urn:example:etax" xmlns:ds="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#" xmlns:gen="urn:example:etax:general">/,
  );
  expect(verifyXml(signed).status).toBe('valid');
});

test('plain XMLDSig (xades: false) and SigningCertificateV2 both verify, here and in xmlsec1', async () => {
  const plain = await signXml({
    xml: SHINKOKU,
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
    xades: false,
  });
  expect(plain).not.toContain('QualifyingProperties');
  const r1 = verifyXml(plain);
  expect(r1.status).toBe('valid');
  expect(r1.xades).toBe(false);
  expect(r1.signingTime).toBeUndefined();
  expect(xmlsecVerify(plain).ok).toBe(true);

  const v2 = await signXml({
    xml: SHINKOKU,
    signer: pki.ec.signer,
    certificate: pki.ec.cert,
    canonicalization: 'exclusive',
    signingCertificate: 'v2',
    signingTime: SIGNING_TIME,
  });
  expect(v2).toContain('<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>');
  expect(v2).toContain('<xades:IssuerSerialV2>');
  const r2 = verifyXml(v2);
  expect(r2.status, r2.message).toBe('valid');
  expect(r2.signingTime).toEqual(SIGNING_TIME);
  expect(xmlsecVerify(v2).ok).toBe(true);
});

test.each(['tricky.xml', 'crlf.xml'])(
  'canonicalization agrees with xmlsec1 on %s (namespaces, escapes, CR, CDATA, U+2028)',
  async (name) => {
    // U+2028 and U+0085 are ordinary characters in XML 1.0 (not line ends, as in XML 1.1)
    const xml = fixture(name).replace('</', '<ls>\u2028 \u0085</ls></');
    for (const canonicalization of ['exclusive', 'inclusive'] as const) {
      const signed = await signXml({
        xml,
        signer: pki.rsa.signer,
        certificate: pki.rsa.cert,
        canonicalization,
      });
      expect(verifyXml(signed).status).toBe('valid');
      const r = xmlsecVerify(signed);
      expect(r.ok, r.output).toBe(true);
    }
  },
);

test('the character data that came from &#13; survives signing (it is written back as a reference)', async () => {
  const xml = '<a xmlns="urn:x">1&#13;2<b c="&#13;&#9;&#10;"/></a>';
  const signed = await signXml({
    xml,
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
  });
  expect(signed).toContain('1&#xD;2');
  const r = verifyXml(signed);
  expect(r.status).toBe('valid');
  expect(r.signedElement).toBe('<a xmlns="urn:x">1&#xD;2<b c="&#xD;&#x9;&#xA;"></b></a>');
  expect(xmlsecVerify(signed).ok).toBe(true);
});

describe('signXml refuses', () => {
  const base = () => ({
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive' as const,
  });
  test('a document that is already signed', async () => {
    const signed = await signXml({ xml: SHINKOKU, ...base() });
    await expect(signXml({ xml: signed, ...base() })).rejects.toThrow(/already contains a ds:Signature/);
  });
  test('a document with a DTD', async () => {
    const e = await signXml({ xml: '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', ...base() }).catch((e) => e);
    expect(e).toBeInstanceOf(XmlSignatureError);
    expect(e.subIndication).toBe('FORMAT_FAILURE');
  });
  test('a document declared in another encoding', async () => {
    await expect(
      signXml({ xml: '<?xml version="1.0" encoding="Shift_JIS"?><a/>', ...base() }),
    ).rejects.toThrow(/UTF-8/);
  });
  test('a certificate that is not the signer’s', async () => {
    await expect(signXml({ xml: SHINKOKU, ...base(), certificate: pki.other.cert })).rejects.toThrow(
      /does not hold the signer's public key/,
    );
  });
  test('inclusive canonicalization below xml:lang (the C14N library cannot inherit xml:* attributes)', async () => {
    const e = await signXml({
      xml: '<a xml:lang="ja">x</a>',
      ...base(),
      canonicalization: 'inclusive',
    }).catch((e) => e);
    expect(e).toBeInstanceOf(XmlSignatureError);
    expect(e.message).toMatch(/xml:lang/);
    // exclusive canonicalization has no such inheritance
    const ok = await signXml({ xml: '<a xml:lang="ja">x</a>', ...base() });
    expect(verifyXml(ok).status).toBe('valid');
    expect(xmlsecVerify(ok).ok).toBe(true);
  });
});

describe('signing certificate', () => {
  let signed: string;
  let plain: string;
  beforeAll(async () => {
    const o = {
      xml: SHINKOKU,
      signer: pki.rsa.signer,
      certificate: pki.rsa.cert,
      canonicalization: 'exclusive' as const,
    };
    signed = await signXml(o);
    plain = await signXml({ ...o, xades: false });
  });
  const swapCert = (xml: string, der: Buffer) =>
    xml.replace(pki.rsa.cert.toString('base64'), der.toString('base64'));

  test('a KeyInfo certificate that does not match the XAdES SigningCertificate digest: NO_SIGNING_CERTIFICATE_FOUND', () => {
    const r = verifyXml(swapCert(signed, pki.other.cert));
    expect(r.status).toBe('invalid');
    expect(r.subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
    expect(r.certificates).toEqual([pki.other.cert]);
  });

  test('without XAdES, another certificate in KeyInfo: SIG_CRYPTO_FAILURE', () => {
    const r = verifyXml(swapCert(plain, pki.other.cert));
    expect(r.subIndication).toBe('SIG_CRYPTO_FAILURE');
    expect(r.signerCertificate).toEqual(pki.other.cert);
  });

  test('several certificates in KeyInfo: the one whose key verifies is the signer', () => {
    const two = plain.replace(
      '<ds:X509Certificate>',
      `<ds:X509Certificate>${pki.other.cert.toString('base64')}</ds:X509Certificate><ds:X509Certificate>`,
    );
    const r = verifyXml(two);
    expect(r.status).toBe('valid');
    expect(r.certificates).toEqual([pki.other.cert, pki.rsa.cert]);
    expect(r.signerCertificate).toEqual(pki.rsa.cert);
  });

  test('no certificate in the signature: NO_SIGNING_CERTIFICATE_FOUND, unless the caller supplies one', () => {
    const bare = plain.replace(/<ds:KeyInfo>.*<\/ds:KeyInfo>/, '');
    expect(verifyXml(bare).subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
    const r = verifyXml(bare, { certificate: pki.rsa.cert });
    expect(r.status).toBe('valid');
    expect(r.signerCertificate).toEqual(pki.rsa.cert);
  });

  test('a wrong IssuerSerial in SigningCertificate: NO_SIGNING_CERTIFICATE_FOUND', () => {
    const serial = BigInt('0x0123456789abcdef0123').toString();
    const r = verifyXml(signed.replace(`>${serial}<`, '>1<'));
    expect(r.subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
    const r2 = verifyXml(signed.replace('O=Open JPKI Test\\, Inc.', 'O=Someone Else'));
    expect(r2.subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
  });
});
