// The parser refuses DTDs (XXE, entity expansion), oversized and malformed input, quickly and
// without touching the file system or the network.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseXml, signXml, verifyXml, XmlSignatureError } from '../../src/core/xml/index.ts';
import { tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
let signed: string;
let fifo: string;

beforeAll(async () => {
  t = tempDir('jpki-xmlhard-');
  pki = makePki(t.dir);
  signed = await signXml({
    xml: fixture('shinkoku.xml'),
    signer: pki.rsa.signer,
    certificate: pki.rsa.cert,
    canonicalization: 'exclusive',
  });
  // A named pipe: anything that tried to read it would block (and the test would time out).
  fifo = t.path('entity.fifo');
  execFileSync('mkfifo', [fifo]);
});
afterAll(() => t.cleanup());

/** verifyXml, which must answer FORMAT_FAILURE quickly. */
function refused(
  xml: string | Uint8Array,
  message?: RegExp,
  opts?: Parameters<typeof verifyXml>[1],
  maxMs = 500,
) {
  const start = performance.now();
  const r = verifyXml(xml, opts);
  const ms = performance.now() - start;
  expect(r.status).toBe('invalid');
  expect(r.subIndication, r.message).toBe('FORMAT_FAILURE');
  if (message) expect(r.message).toMatch(message);
  expect(ms).toBeLessThan(maxMs);
  return r;
}

const withRoot = (doctype: string, body = '<x>&e;</x>') => `<?xml version="1.0"?>\n${doctype}\n${body}`;

describe('DTDs are refused', () => {
  test('XXE: an external entity to /etc/passwd', () => {
    refused(withRoot('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'), /DOCTYPE is not allowed/);
  });

  test('XXE to a named pipe returns at once (the file is never opened)', () => {
    refused(withRoot(`<!DOCTYPE x [<!ENTITY e SYSTEM "file://${fifo}">]>`), /DOCTYPE/);
    refused(withRoot(`<!DOCTYPE x [<!ENTITY % p SYSTEM "file://${fifo}"> %p;]>`), /DOCTYPE/);
  });

  test('an external DTD (file and http)', () => {
    refused(withRoot(`<!DOCTYPE x SYSTEM "file://${fifo}">`, '<x/>'), /DOCTYPE/);
    refused(withRoot('<!DOCTYPE x PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/x.dtd">', '<x/>'), /DOCTYPE/);
  });

  test('billion laughs', () => {
    const lol = [
      '<!DOCTYPE lolz [',
      '<!ENTITY lol "lol">',
      ...Array.from({ length: 9 }, (_, i) => {
        const prev = i === 0 ? 'lol' : `lol${i}`;
        return `<!ENTITY lol${i + 1} "${`&${prev};`.repeat(10)}">`;
      }),
      ']>',
    ].join('\n');
    refused(withRoot(lol, '<lolz>&lol9;</lolz>'), /DOCTYPE/);
  });

  test('quadratic blowup (one large entity referenced many times)', () => {
    const big = 'a'.repeat(50_000);
    refused(withRoot(`<!DOCTYPE x [<!ENTITY e "${big}">]>`, `<x>${'&e;'.repeat(50_000)}</x>`), /DOCTYPE/);
  });

  test('however the DOCTYPE is dressed: after comments and PIs, in lower case, before a signed document', () => {
    refused(`<!-- c --><?pi x?>\n<!doctype x>${'<x/>'}`, /DOCTYPE/);
    refused(
      `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE 申告書>${signed.replace(/^<\?xml[^>]*>/, '')}`,
      /DOCTYPE/,
    );
    // a DOCTYPE after the document element is not well-formed
    refused('<x/><!DOCTYPE x>');
  });

  test('signXml and parseXml throw a typed FORMAT_FAILURE for the same inputs', async () => {
    const xxe = withRoot('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>');
    expect(() => parseXml(xxe)).toThrow(XmlSignatureError);
    const e = await signXml({
      xml: xxe,
      signer: pki.rsa.signer,
      certificate: pki.rsa.cert,
      canonicalization: 'exclusive',
    }).catch((e) => e);
    expect(e).toBeInstanceOf(XmlSignatureError);
    expect(e.subIndication).toBe('FORMAT_FAILURE');
  });
});

describe('limits', () => {
  test('documents over 10 MB are refused before parsing', () => {
    const big = `<a>${'x'.repeat(10 * 1024 * 1024)}</a>`;
    refused(big, /larger than 10485760 bytes/);
    refused(Buffer.from(big), /larger than/);
    // UTF-8 bytes count, not characters
    refused(`<a>${'あ'.repeat(4 * 1024 * 1024)}</a>`, /larger than/);
    refused(signed, /larger than 1000 bytes/, { maxBytes: 1000 });
  });

  test('deep nesting is refused (no stack overflow in canonicalization)', () => {
    // (the parser builds the tree before the depth is checked: ~0.6 s for these 700 kB)
    const depth = 100_000;
    refused(`${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}`, /nested deeper than 256/, undefined, 5000);
    refused(signed, /nested deeper than 3/, { maxDepth: 3 });
  });
});

describe('malformed or unsupported XML', () => {
  test.each([
    ['empty input', '', /not well-formed/],
    ['text only', 'hello', /not well-formed/],
    ['two document elements', '<a/><b/>', /not well-formed/],
    ['an unclosed element', '<a><b></a>', /not well-formed/],
    ['a duplicate attribute', '<a x="1" x="2"/>', /not well-formed/],
    [
      'the same attribute through two prefixes',
      '<a xmlns:p="urn:p" xmlns:q="urn:p" p:x="1" q:x="2"/>',
      /duplicate/,
    ],
    ['an unbound element prefix', '<p:a/>', /unbound/],
    ['an unbound attribute prefix', '<a p:x="1"/>', /unbound/],
    ['an undefined entity', '<a>&nbsp;</a>', /not well-formed/],
    ['a control character', '<a>\u0001</a>', /XML 1.0/],
    ['a control character by reference', '<a>&#1;</a>', /XML 1.0/],
    ['a lone surrogate', '<a>\uD800</a>', /XML 1.0/],
    ['a processing instruction', '<a><?php echo 1; ?></a>', /processing instructions/],
    [
      'a processing instruction before the document element',
      '<?xml-stylesheet href="x.xsl"?><a/>',
      /processing/,
    ],
    ['XML 1.1', '<?xml version="1.1"?><a/>', /XML 1\.0/],
    ['no signature', '<a/>', /no ds:Signature/],
  ])('%s', (_name, xml, message) => {
    refused(xml, message);
  });

  test('non-string input', () => {
    refused(42 as unknown as string, /string or bytes/);
    refused(null as unknown as string);
  });

  test('bytes: UTF-8 only', () => {
    expect(verifyXml(Buffer.from(signed, 'utf8')).status).toBe('valid');
    expect(verifyXml(new Uint8Array(Buffer.from(`\uFEFF${signed}`, 'utf8'))).status).toBe('valid');
    refused(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e]), /not valid UTF-8/);
    refused(Buffer.from(signed.replace('encoding="UTF-8"', 'encoding="Shift_JIS"')), /Shift_JIS/);
  });
});
