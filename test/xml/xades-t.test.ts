// XAdES-T: the signature time-stamp is computed over ds:SignatureValue and added as an unsigned
// property without disturbing the signature.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  addXadesSignatureTimeStamp,
  signatureTimeStampImprint,
  signXml,
  verifyXml,
  XmlSignatureError,
} from '../../src/core/xml/index.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { fixture, makePki, type TestPki, xmlsec1, xmlsecVerifyArgs } from './pki.ts';

let t: ReturnType<typeof tempDir>;
let pki: TestPki;
beforeAll(() => {
  t = tempDir('jpki-xadest-');
  pki = makePki(t.dir);
});
afterAll(() => t.cleanup());

const DUMMY_TOKEN = Buffer.from('3003020101', 'hex'); // any bytes: the token's validity is checked elsewhere

function sign(canonicalization: 'exclusive' | 'inclusive', who: 'rsa' | 'ec' = 'rsa', xades = true) {
  return signXml({
    xml: fixture('shinkoku.xml'),
    signer: pki[who].signer,
    certificate: pki[who].cert,
    canonicalization,
    xades,
  });
}

let n = 0;
function xmlsecOk(xml: string): boolean {
  const p = t.path(`t-${n++}.xml`);
  writeFileSync(p, xml);
  return xmlsec1(xmlsecVerifyArgs(pki.rootPem, p)).ok;
}

describe.each(['exclusive', 'inclusive'] as const)('signature with %s canonicalization', (c14n) => {
  test('the imprint is SHA-256 over the exclusive canonical ds:SignatureValue', async () => {
    const signed = await sign(c14n, 'ec');
    const m = /<ds:SignatureValue Id="([^"]+)">([^<]+)<\/ds:SignatureValue>/.exec(signed)!;
    const expected = `<ds:SignatureValue xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="${m[1]}">${m[2]}</ds:SignatureValue>`;
    expect(signatureTimeStampImprint(signed)).toEqual(createHash('sha256').update(expected, 'utf8').digest());
  });

  test('round trip with a dummy token: returned by verifyXml, signature still valid (also for xmlsec1)', async () => {
    const signed = await sign(c14n);
    const before = verifyXml(signed);
    const imprint = signatureTimeStampImprint(signed);
    const stamped = addXadesSignatureTimeStamp(signed, DUMMY_TOKEN);
    expect(stamped).toContain(
      `<xades:UnsignedProperties><xades:UnsignedSignatureProperties><xades:SignatureTimeStamp Id="SignatureTimeStamp-`,
    );
    expect(stamped).toContain(
      `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><xades:EncapsulatedTimeStamp>${DUMMY_TOKEN.toString('base64')}</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp>`,
    );
    const r = verifyXml(stamped);
    expect(r.status, r.message).toBe('valid');
    expect(r.signatureTimeStamps).toEqual([DUMMY_TOKEN]);
    expect(createHash('sha256').update(r.signatureTimeStampInputs[0]!).digest()).toEqual(imprint);
    expect(r.signedElement).toBe(before.signedElement);
    expect(r.signingTime).toEqual(before.signingTime);
    expect(signatureTimeStampImprint(stamped)).toEqual(imprint);
    expect(xmlsecOk(stamped)).toBe(true);

    // a second time-stamp goes into the same UnsignedSignatureProperties
    const second = Buffer.from('300602010202010a', 'hex');
    const twice = addXadesSignatureTimeStamp(stamped, second);
    const r2 = verifyXml(twice);
    expect(r2.status).toBe('valid');
    expect(r2.signatureTimeStamps).toEqual([DUMMY_TOKEN, second]);
    expect(twice.match(/<xades:UnsignedProperties>/g)).toHaveLength(1);
  });
});

test('time-stamp properties are unsigned: changing the token leaves the signature valid (the token check is elsewhere)', async () => {
  const stamped = addXadesSignatureTimeStamp(await sign('exclusive'), DUMMY_TOKEN);
  const other = Buffer.from('3003020109', 'hex');
  const r = verifyXml(stamped.replace(DUMMY_TOKEN.toString('base64'), other.toString('base64')));
  expect(r.status).toBe('valid');
  expect(r.signatureTimeStamps).toEqual([other]);
});

test('a time-stamp is refused for a non-XAdES or a broken signature', async () => {
  const plain = await sign('exclusive', 'rsa', false);
  expect(() => addXadesSignatureTimeStamp(plain, DUMMY_TOKEN)).toThrow(/not a XAdES signature/);
  const broken = (await sign('exclusive')).replace('>43500<', '>0<');
  const e = (() => {
    try {
      addXadesSignatureTimeStamp(broken, DUMMY_TOKEN);
    } catch (e) {
      return e;
    }
  })();
  expect(e).toBeInstanceOf(XmlSignatureError);
  expect((e as XmlSignatureError).subIndication).toBe('HASH_FAILURE');
  expect(() => addXadesSignatureTimeStamp(plain, Buffer.alloc(0))).toThrow(TypeError);
});

test('a real RFC 3161 token from `openssl ts` over the imprint verifies against the returned input', async () => {
  const dir = t.dir;
  writeFileSync(
    t.path('tsa.cnf'),
    [
      '[ tsa ]',
      'default_tsa = tsa_config1',
      '[ tsa_config1 ]',
      `serial = ${t.path('tsaserial')}`,
      'default_policy = 1.2.3.4.1',
      'digests = sha256',
      'signer_digest = sha256',
      'ess_cert_id_alg = sha256',
      '',
    ].join('\n'),
  );
  writeFileSync(t.path('tsaserial'), '01\n');
  writeFileSync(
    t.path('tsa.ext'),
    'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=critical,timeStamping\n',
  );
  const ok = (args: string[]) => {
    const r = openssl(args, { cwd: dir });
    expect(r.status, r.output).toBe(0);
  };
  ok([
    'req',
    '-new',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'tsa.key',
    '-out',
    'tsa.csr',
    '-subj',
    '/CN=Test TSA',
  ]);
  ok([
    'x509',
    '-req',
    '-in',
    'tsa.csr',
    '-CA',
    'root.pem',
    '-CAkey',
    'root.key',
    '-set_serial',
    '99',
    '-days',
    '30',
    '-extfile',
    'tsa.ext',
    '-out',
    'tsa.pem',
  ]);

  const signed = await sign('inclusive', 'ec');
  const imprint = signatureTimeStampImprint(signed);
  ok(['ts', '-query', '-digest', imprint.toString('hex'), '-sha256', '-cert', '-out', 'req.tsq']);
  ok([
    'ts',
    '-reply',
    '-config',
    'tsa.cnf',
    '-queryfile',
    'req.tsq',
    '-inkey',
    'tsa.key',
    '-signer',
    'tsa.pem',
    '-token_out',
    '-out',
    'token.der',
  ]);
  const token = readFileSync(t.path('token.der'));

  const stamped = addXadesSignatureTimeStamp(signed, token);
  const r = verifyXml(stamped);
  expect(r.status).toBe('valid');
  expect(r.signatureTimeStamps).toEqual([token]);
  writeFileSync(t.path('ts-input.bin'), r.signatureTimeStampInputs[0]!);
  writeFileSync(t.path('ts-token.der'), r.signatureTimeStamps[0]!);
  ok([
    'ts',
    '-verify',
    '-data',
    'ts-input.bin',
    '-in',
    'ts-token.der',
    '-token_in',
    '-CAfile',
    'root.pem',
    '-untrusted',
    'tsa.pem',
  ]);
  expect(xmlsecOk(stamped)).toBe(true);
});
