// XML signature wrapping and its relatives: every known way of making a verifier check one thing
// while the application reads another. Each case must be rejected, or be valid with exactly the
// originally signed content reported (signedElement / signedDocument).
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseXml, signXml, verifyXml, type XmlVerificationResult } from '../../src/core/xml/index.ts';
import { tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki, xmlsec1 } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
let signed: string;
let original: XmlVerificationResult;
let signature: string;
let body: string;
let forgedBody: string;

const ETAX = 'urn:example:etax';

beforeAll(async () => {
  t = tempDir('jpki-xmlwrap-');
  pki = makePki(t.dir);
  signed = await signXml({
    xml: fixture('shinkoku.xml'),
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
    signingTime: new Date('2025-03-14T09:30:00Z'),
  });
  original = verifyXml(signed);
  expect(original.status).toBe('valid');
  signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(signed)![0];
  body = /<所得税申告[\s\S]*<\/所得税申告>/.exec(signed)![0];
  forgedBody = body.replace('>43500<', '>0<').replace('>1234567<', '>7654321<');
});
afterAll(() => t.cleanup());

/** Rejected with the given sub-indication; nothing signed is reported. */
function rejected(xml: string, sub: string, message?: RegExp): XmlVerificationResult {
  expect(xml).not.toBe(signed);
  const r = verifyXml(xml);
  expect(r.status, r.message).toBe('invalid');
  expect(r.subIndication, r.message).toBe(sub);
  if (message) expect(r.message).toMatch(message);
  expect(r.signedDocument).toBeUndefined();
  expect(r.signedElement).toBeUndefined();
  return r;
}

/** Valid, and what is reported as signed is exactly what was signed. */
function stillTheSignedContent(xml: string): XmlVerificationResult {
  expect(xml).not.toBe(signed);
  const r = verifyXml(xml);
  expect(r.status, r.message).toBe('valid');
  expect(r.signedElement).toBe(original.signedElement);
  expect(r.signedDocument!.getElementsByTagNameNS(ETAX, '納付税額')[0]!.textContent).toBe('43500');
  return r;
}

const withoutSignature = (xml: string) => xml.replace(signature, '');
const insertInSignature = (where: string, what: string) => signed.replace(where, `${what}${where}`);

describe('the signed element moved or duplicated', () => {
  test('a forged copy of the signed element next to the original: HASH_FAILURE', () => {
    rejected(signed.replace(body, `${forgedBody}${body}`), 'HASH_FAILURE');
  });

  test('the signed element moved into a ds:Object, a forged one in its place: FORMAT_FAILURE', () => {
    const moved = signed
      .replace(body, forgedBody)
      .replace('</ds:Signature>', `<ds:Object>${body}</ds:Object></ds:Signature>`);
    rejected(moved, 'FORMAT_FAILURE', /only XMLDSig and XAdES elements/);
  });

  test('the whole signed document wrapped in a new document element with a forged body', () => {
    const inner = signed.replace(/^<\?xml[^>]*>\s*(<!--[^>]*-->\s*)?/, '');
    const wrapped = `<申告書 xmlns="${ETAX}">${forgedBody}<Wrapper>${inner}</Wrapper></申告書>`;
    rejected(wrapped, 'FORMAT_FAILURE', /child of the document element/);
    // ...and with the signature moved up to be a child of the new document element
    const up = `<申告書 xmlns="${ETAX}">${forgedBody}<Wrapper>${inner.replace(signature, '')}</Wrapper>${signature}</申告書>`;
    rejected(up, 'HASH_FAILURE');
  });
});

describe('References and Ids', () => {
  const spId = () => /<xades:SignedProperties Id="([^"]+)"/.exec(signed)![1]!;

  test('the SignedProperties Id given to a second element in the body: FORMAT_FAILURE', () => {
    rejected(signed.replace('<備考>', `<備考 Id="${spId()}">`), 'FORMAT_FAILURE', /occurs 2 times/);
  });

  test('forged SignedProperties (another SigningTime) with the original moved to unsigned properties', () => {
    const sp = /<xades:SignedProperties[\s\S]*<\/xades:SignedProperties>/.exec(signed)![0];
    const forged = sp.replace('2025-03-14T09:30:00Z', '2020-01-01T00:00:00Z');
    const xml = signed.replace(
      sp,
      `${forged}<xades:UnsignedProperties><xades:UnsignedSignatureProperties>${sp}</xades:UnsignedSignatureProperties></xades:UnsignedProperties>`,
    );
    rejected(xml, 'FORMAT_FAILURE', /occurs 2 times/);
  });

  test('SignedProperties duplicated in a second ds:Object: FORMAT_FAILURE', () => {
    const object = /<ds:Object>[\s\S]*<\/ds:Object>/.exec(signed)![0];
    rejected(signed.replace(object, `${object}${object}`), 'FORMAT_FAILURE');
  });

  test('a Reference URI="#Id" signed by xmlsec1, with the Id duplicated by an attacker: SIGNED_DATA_NOT_FOUND', () => {
    const doc = `<doc xmlns="${ETAX}"><body Id="target"><amount>100</amount></body><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><Reference URI="#target"><Transforms><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature></doc>`;
    writeFileSync(t.path('idref.xml'), doc);
    const r = xmlsec1([
      '--sign',
      '--id-attr:Id',
      `${ETAX}:body`,
      '--privkey-pem',
      `${pki.rsa.keyPath},${pki.rsa.certPath}`,
      '--output',
      t.path('idref-signed.xml'),
      t.path('idref.xml'),
    ]);
    expect(r.ok, r.output).toBe(true);
    const idSigned = readFileSync(t.path('idref-signed.xml'), 'utf8');
    const r1 = verifyXml(idSigned);
    expect(r1.subIndication).toBe('SIGNED_DATA_NOT_FOUND');
    const r2 = verifyXml(
      idSigned.replace(
        '<body Id="target">',
        '<body Id="target"><amount>999</amount></body><body Id="target">',
      ),
    );
    expect(r2.subIndication).toBe('SIGNED_DATA_NOT_FOUND');
  });

  test('an extra Reference (to an Object, by Id) added to SignedInfo: FORMAT_FAILURE', () => {
    const xml = signed
      .replace(
        '</ds:SignedInfo>',
        '<ds:Reference URI="#obj"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ds:DigestValue></ds:Reference></ds:SignedInfo>',
      )
      .replace('</ds:Signature>', `<ds:Object Id="obj">x</ds:Object></ds:Signature>`);
    rejected(xml, 'FORMAT_FAILURE');
  });

  test('Reference URI="#xpointer(/)" instead of "": SIGNED_DATA_NOT_FOUND', () => {
    rejected(signed.replace('URI=""', 'URI="#xpointer(/)"'), 'SIGNED_DATA_NOT_FOUND');
  });

  test('a Reference without URI (the signed data left to the application): FORMAT_FAILURE', () => {
    rejected(signed.replace(' URI=""', ''), 'FORMAT_FAILURE', /without URI/);
  });

  test('XAdES properties without the signing-certificate property: FORMAT_FAILURE', () => {
    rejected(
      signed.replace(/<xades:SigningCertificate>.*<\/xades:SigningCertificate>/, ''),
      'FORMAT_FAILURE',
      /SigningCertificate/,
    );
  });

  test('the enveloped-signature transform removed: FORMAT_FAILURE', () => {
    rejected(
      signed.replace('<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>', ''),
      'FORMAT_FAILURE',
    );
  });

  test('the SignedProperties Reference removed: FORMAT_FAILURE (unsigned properties cannot pass for signed)', () => {
    rejected(
      signed.replace(/<ds:Reference Type=[\s\S]*?<\/ds:Reference>/, ''),
      'FORMAT_FAILURE',
      /not signed/,
    );
  });

  test('QualifyingProperties Target pointing elsewhere: FORMAT_FAILURE', () => {
    rejected(signed.replace(/Target="#[^"]+"/, 'Target="#elsewhere"'), 'FORMAT_FAILURE', /Target/);
  });
});

describe('an unsigned copy of the data where the application might read it', () => {
  const copy = () => `<所得税申告 xmlns="${ETAX}"><納付税額 単位="円">0</納付税額></所得税申告>`;

  test.each([
    ['ds:KeyInfo', '</ds:KeyInfo>'],
    ['ds:X509Data', '</ds:X509Data>'],
    ['xades:QualifyingProperties', '</xades:QualifyingProperties>'],
    ['ds:SignedInfo', '</ds:SignedInfo>'],
  ])('inside %s: FORMAT_FAILURE', (_name, where) => {
    rejected(insertInSignature(where, copy()), 'FORMAT_FAILURE');
  });

  test('in a new ds:Object, or ds:Object/ds:SignatureProperties, or unsigned XAdES properties: FORMAT_FAILURE', () => {
    rejected(insertInSignature('</ds:Signature>', `<ds:Object>${copy()}</ds:Object>`), 'FORMAT_FAILURE');
    rejected(
      insertInSignature(
        '</ds:Signature>',
        `<ds:Object><ds:SignatureProperties><ds:SignatureProperty Target="#x">${copy()}</ds:SignatureProperty></ds:SignatureProperties></ds:Object>`,
      ),
      'FORMAT_FAILURE',
    );
    rejected(
      insertInSignature(
        '</xades:QualifyingProperties>',
        `<xades:UnsignedProperties><xades:UnsignedSignatureProperties>${copy()}</xades:UnsignedSignatureProperties></xades:UnsignedProperties>`,
      ),
      'FORMAT_FAILURE',
    );
    rejected(insertInSignature('</ds:Signature>', '<ds:Object><ds:Manifest/></ds:Object>'), 'FORMAT_FAILURE');
  });

  test('as text in the signature: FORMAT_FAILURE', () => {
    rejected(insertInSignature('</ds:KeyInfo>', '納付税額 0'), 'FORMAT_FAILURE', /unexpected text/);
  });

  test('after the document element: FORMAT_FAILURE (not well-formed)', () => {
    rejected(`${signed}${copy()}`, 'FORMAT_FAILURE', /not well-formed/);
  });
});

describe('the signature elsewhere', () => {
  test('moved to the first child of the document element: valid, same signed content', () => {
    const moved = withoutSignature(signed).replace(/(<申告書[^>]*>)/, `$1${signature}`);
    const r = stillTheSignedContent(moved);
    expect(
      r.signedDocument!.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature'),
    ).toHaveLength(0);
    expect(xmlsec1Verify(moved)).toBe(true);
  });

  test('moved inside a descendant: FORMAT_FAILURE', () => {
    rejected(
      withoutSignature(signed).replace('</所得税申告>', `${signature}</所得税申告>`),
      'FORMAT_FAILURE',
      /child of the document element/,
    );
  });

  test('moved after the document element: FORMAT_FAILURE', () => {
    rejected(`${withoutSignature(signed)}${signature}`, 'FORMAT_FAILURE');
  });

  test('a second signature (e.g. the attacker’s own, valid one): FORMAT_FAILURE', async () => {
    const attacker = await signXml({
      xml: withoutSignature(signed).replace(body, forgedBody),
      signer: pki.other.signer,
      certificate: pki.other.cert,
      canonicalization: 'exclusive',
    });
    expect(verifyXml(attacker).status).toBe('valid'); // a valid signature — by someone else
    const both = attacker.replace('</申告書>', `${signature}</申告書>`);
    rejected(both, 'FORMAT_FAILURE', /exactly one ds:Signature/);
  });

  test('a signature in a look-alike namespace: FORMAT_FAILURE (unsigned)', () => {
    rejected(
      signed.replace(
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"',
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#x"',
      ),
      'FORMAT_FAILURE',
      /no ds:Signature/,
    );
  });
});

describe('comments, whitespace and other lexical tricks', () => {
  test('a comment splitting a signed text node: valid, and signedDocument has the whole text', () => {
    const split = signed.replace('>1234567<', '>123<!---->4567<');
    const r = stillTheSignedContent(split);
    // an application walking the received DOM's first text node would read "123"...
    const raw = parseXml(split).getElementsByTagNameNS(ETAX, '還付口座')[0]!;
    expect((raw.firstChild as Text).data).toBe('123');
    // ...the signed document has what was signed
    const account = r.signedDocument!.getElementsByTagNameNS(ETAX, '還付口座')[0]!;
    expect(account.childNodes).toHaveLength(1);
    expect((account.firstChild as Text).data).toBe('1234567');
  });

  test('comments added outside and inside the signed content, and inside SignedInfo: valid, same content', () => {
    stillTheSignedContent(signed.replace('<所得控除>', '<!-- 所得控除: 0 --><所得控除>'));
    stillTheSignedContent(`${signed}<!-- trailing -->`);
    stillTheSignedContent(signed.replace('<ds:SignatureMethod', '<!-- c --><ds:SignatureMethod'));
  });

  test('CDATA in place of escaped text (same character data): valid, same content', () => {
    stillTheSignedContent(signed.replace('>43500<', '><![CDATA[43500]]><'));
  });

  test('whitespace added to signed text: HASH_FAILURE', () => {
    rejected(signed.replace('>43500<', '> 43500<'), 'HASH_FAILURE');
    rejected(signed.replace('<所得控除>', '<所得控除>\n'), 'HASH_FAILURE');
  });

  test('whitespace between signature elements outside SignedInfo: valid', () => {
    stillTheSignedContent(signed.replace('<ds:KeyInfo>', '\n  <ds:KeyInfo>'));
  });

  test('whitespace inside SignedInfo: SIG_CRYPTO_FAILURE', () => {
    rejected(signed.replace('<ds:SignatureMethod', '\n<ds:SignatureMethod'), 'SIG_CRYPTO_FAILURE');
  });

  test('switching to C14N with comments (so that comments would count): refused', () => {
    rejected(
      signed.replaceAll(
        'http://www.w3.org/2001/10/xml-exc-c14n#"',
        'http://www.w3.org/2001/10/xml-exc-c14n#WithComments"',
      ),
      'CRYPTO_CONSTRAINTS_FAILURE',
    );
  });

  test('a namespace prefix rebound: HASH_FAILURE', () => {
    rejected(
      signed.replace('xmlns:gen="urn:example:etax:general"', 'xmlns:gen="urn:example:evil"'),
      'HASH_FAILURE',
    );
  });
});

let xmlsecFileNo = 0;
function xmlsec1Verify(xml: string): boolean {
  const p = t.path(`wrap-${xmlsecFileNo++}.xml`);
  writeFileSync(p, xml);
  return xmlsec1(['--verify', '--trusted-pem', pki.rootPem, '--enabled-reference-uris', 'empty,same-doc', p])
    .ok;
}
