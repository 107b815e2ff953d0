// Property tests: arbitrary input gives a result or a typed error, never a crash or a hang; a
// mutated signed document is either rejected or still reports exactly the signed content; random
// documents sign and verify, here and in xmlsec1.
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  signXml,
  verifyXml,
  XmlSignatureError,
  type XmlVerificationResult,
} from '../../src/core/xml/index.ts';
import { tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki, xmlsec1, xmlsecVerifyArgs } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
let signed: string;
let original: XmlVerificationResult;

beforeAll(async () => {
  t = tempDir('jpki-xmlfuzz-');
  pki = makePki(t.dir);
  signed = await signXml({
    xml: fixture('shinkoku.xml'),
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
  });
  original = verifyXml(signed);
});
afterAll(() => t.cleanup());

const SUB_INDICATIONS = new Set([
  'FORMAT_FAILURE',
  'HASH_FAILURE',
  'SIG_CRYPTO_FAILURE',
  'NO_SIGNING_CERTIFICATE_FOUND',
  'SIGNED_DATA_NOT_FOUND',
  'CRYPTO_CONSTRAINTS_FAILURE',
]);

/** verifyXml never throws, answers quickly, and a failure always has a known sub-indication. */
function checkedVerify(xml: string): XmlVerificationResult {
  const start = performance.now();
  const r = verifyXml(xml);
  expect(performance.now() - start).toBeLessThan(2000);
  expect(['valid', 'invalid']).toContain(r.status);
  if (r.status === 'invalid') {
    expect(SUB_INDICATIONS.has(r.subIndication!), `${r.subIndication}: ${r.message}`).toBe(true);
    expect(r.signedDocument).toBeUndefined();
  }
  expect(typeof r.message).toBe('string');
  return r;
}

const XML_TOKENS = [
  '<',
  '>',
  '</',
  '/>',
  '<a',
  '<a>',
  '</a>',
  '<!--',
  '-->',
  '<![CDATA[',
  ']]>',
  '<!DOCTYPE a [<!ENTITY e "x">]>',
  '<?xml version="1.0"?>',
  '<?pi x?>',
  '&',
  '&amp;',
  '&e;',
  '&#0;',
  '&#x10FFFF;',
  '"',
  "'",
  '=',
  ' ',
  '\n',
  'xmlns="urn:x"',
  'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"',
  '<ds:Signature>',
  '</ds:Signature>',
  '<ds:SignedInfo>',
  '<ds:Reference URI="">',
  'Id="x"',
  '申告',
];

describe('arbitrary input', () => {
  test('random strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        expect(checkedVerify(s).status).toBe('invalid');
      }),
      { numRuns: 400 },
    );
  });

  test('random XML-ish token soup', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...XML_TOKENS), { maxLength: 40 }), (tokens) => {
        expect(checkedVerify(tokens.join('')).status).toBe('invalid');
      }),
      { numRuns: 400 },
    );
  });

  test('signXml: a signed document or an XmlSignatureError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...XML_TOKENS, 'text', '<b x="1">', '</b>'), { maxLength: 20 }),
        async (tokens) => {
          try {
            const out = await signXml({
              xml: tokens.join(''),
              signer: pki.ec.signer,
              certificate: pki.ec.cert,
              canonicalization: 'inclusive',
            });
            expect(verifyXml(out).status).toBe('valid');
          } catch (e) {
            expect(e, String(e)).toBeInstanceOf(XmlSignatureError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

type Mutation =
  | { op: 'delete'; at: number; len: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'duplicate'; at: number; len: number }
  | { op: 'replaceChar'; at: number; char: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(
      fc.constantFrom(...XML_TOKENS, '<!---->', '<x/>', '<ds:Object/>', '&#13;', '<![CDATA[x]]>', '\t'),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
  }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 400 }) }),
  fc.record({
    op: fc.constant('replaceChar' as const),
    at: fc.nat(),
    char: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  }),
);

function mutate(s: string, ms: Mutation[]): string {
  for (const m of ms) {
    const at = m.at % (s.length + 1);
    switch (m.op) {
      case 'delete':
        s = s.slice(0, at) + s.slice(at + m.len);
        break;
      case 'insert':
        s = s.slice(0, at) + m.text + s.slice(at);
        break;
      case 'duplicate':
        s = s.slice(0, at + m.len) + s.slice(at, at + m.len) + s.slice(at + m.len);
        break;
      case 'replaceChar':
        s = s.slice(0, at) + m.char + s.slice(at + 1);
        break;
    }
  }
  return s;
}

test('mutated signed documents: rejected, or valid with exactly the originally signed content', () => {
  let valid = 0;
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
      const xml = mutate(signed, ms);
      const r = checkedVerify(xml);
      if (r.status === 'valid') {
        valid++;
        expect(r.signedElement).toBe(original.signedElement);
        expect(r.signerCertificate).toEqual(pki.rsa.cert);
      }
    }),
    { numRuns: 600 },
  );
  // some mutations (whitespace or comments in the signature, etc.) keep it valid
  expect(valid).toBeGreaterThan(0);
});

// --- random documents sign and verify, in both implementations ----------------------------------

/** Code points XML 1.0 allows (binary strings may contain the others). */
const xmlChars = (s: string) => s.replace(/[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/g, '');
const escText = (s: string) =>
  xmlChars(s).replace(/[&<>\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' })[c]!);
const escAttr = (s: string) =>
  xmlChars(s).replace(
    /[&<"\t\n\r]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' })[c]!,
  );
const text = fc.string({ unit: 'binary', maxLength: 12 });

type Tree = {
  name: string;
  attrs: [string, string][];
  children: (Tree | { text: string } | { comment: string } | { cdata: string })[];
};

const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((tie) => ({
  node: fc.record({
    name: fc.constantFrom('a', 'b', '項目', 'p:c', 'q:d'),
    attrs: fc.uniqueArray(fc.tuple(fc.constantFrom('x', 'y', 'p:z', '属性', 'xml:lang'), text), {
      maxLength: 3,
      selector: ([k]) => k,
    }),
    children: fc.array(
      fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.record({ text }),
        fc.record({ comment: text.map((s) => xmlChars(s).replace(/-/g, '_')) }),
        fc.record({ cdata: text.map((s) => xmlChars(s).replace(/]]>/g, '')) }),
        tie('node'),
      ),
      { maxLength: 4 },
    ),
  }),
})).node;

function render(n: Tree, root = false): string {
  const ns = root ? ' xmlns="urn:example:default" xmlns:p="urn:example:p" xmlns:q="urn:example:q"' : '';
  const attrs = n.attrs
    .filter(([k]) => !(root && k === 'xml:lang')) // inclusive C14N of the signature would inherit it (refused)
    .map(([k, v]) => ` ${k}="${escAttr(v)}"`)
    .join('');
  const inner = n.children
    .map((c) =>
      'name' in c
        ? render(c)
        : 'text' in c
          ? escText(c.text)
          : 'comment' in c
            ? `<!--${c.comment}-->`
            : `<![CDATA[${c.cdata}]]>`,
    )
    .join('');
  return `<${n.name}${ns}${attrs}>${inner}</${n.name}>`;
}

test('random documents: signXml output verifies, and xmlsec1 agrees on the canonical form', async () => {
  let i = 0;
  await fc.assert(
    fc.asyncProperty(tree, fc.constantFrom('exclusive' as const, 'inclusive' as const), async (doc, c14n) => {
      const xml = render(doc, true);
      const out = await signXml({
        xml,
        signer: pki.rsa.signer,
        certificate: pki.rsa.cert,
        canonicalization: c14n,
      });
      expect(verifyXml(out).status).toBe('valid');
      const p = t.path(`rand-${i++}.xml`);
      writeFileSync(p, out);
      const r = xmlsec1(xmlsecVerifyArgs(pki.rootPem, p));
      expect(r.ok, `${r.output}\n${out}`).toBe(true);
    }),
    { numRuns: 40 },
  );
});
