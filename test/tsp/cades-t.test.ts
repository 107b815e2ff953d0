import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCertificate } from '../../src/core/certificate.ts';
import { replaceNode } from '../../src/core/cms/asn1.ts';
import {
  addSignatureTimeStamp,
  CmsError,
  signatureTimeStampImprint,
  signCms,
  verifyCms,
} from '../../src/core/cms/index.ts';
import { attribute, certificateInfo, parseSignedData } from '../../src/core/cms/signed-data.ts';
import { tlv } from '../../src/core/der.ts';
import { OID } from '../../src/core/oids.ts';
import { timeStampingTemplate } from '../../src/core/profiles.ts';
import { newSerial } from '../../src/core/serial.ts';
import {
  buildTimeStampRequest,
  parseTimeStampResponse,
  respondToTimeStampRequest,
  type TimeStampAuthority,
  verifyTimeStampResponse,
} from '../../src/core/tsp/index.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { makePki, type Pki } from '../cms/pki.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';

const content = Buffer.from('an application signed with the signature certificate\n');
let tmp: ReturnType<typeof tempDir>;
let pki: Pki;
let tsa: TimeStampAuthority;

beforeAll(async () => {
  tmp = tempDir('jpki-cades-t-');
  pki = makePki(tmp.dir);
  writeFileSync(tmp.path('data.bin'), content);
  const inter = certificateInfo(pki.inter.der);
  const signer = SoftwareSigner.generate('ecdsa-p256');
  const t = timeStampingTemplate(
    signer.publicKeySpki,
    { name: inter.subject, spki: inter.spki },
    new Date(),
    5,
  );
  const cert = await signCertificate(pki.inter.signer, {
    serial: newSerial(),
    issuer: inter.subject,
    subject: t.subject,
    notBefore: t.validity.notBefore,
    notAfter: t.validity.notAfter,
    spki: signer.publicKeySpki,
    extensions: t.extensions,
  });
  tsa = { signer, tsaCertificate: cert, chain: [pki.inter.der], policy: '1.2.392.200149.8.5.99.1' };
});
afterAll(() => tmp?.cleanup());

/** Time-stamps the signature of `cms` with our TSA, as a client would: request, response, token. */
async function stamp(cms: Buffer, genTime = new Date()): Promise<Buffer> {
  const imprint = signatureTimeStampImprint(cms);
  const reqDer = buildTimeStampRequest({
    digest: imprint.digest,
    hashAlgorithm: imprint.algorithm,
    nonce: randomBytes(8),
    certReq: true,
  });
  const resp = await respondToTimeStampRequest(reqDer, { ...tsa, serial: newSerial(), genTime });
  expect(resp.status).toBe('granted');
  const checked = verifyTimeStampResponse(resp.der, reqDer);
  expect(checked.valid, checked.message).toBe(true);
  return parseTimeStampResponse(resp.der).token!;
}

const opensslVerify = (file: string, detached = false) =>
  openssl(
    [
      'cms',
      '-verify',
      '-CAfile',
      'root.pem',
      '-certfile',
      'inter.pem',
      '-inform',
      'DER',
      '-in',
      file,
      '-binary',
      '-purpose',
      'any',
      ...(detached ? ['-content', 'data.bin'] : []),
      '-out',
      '/dev/null',
    ],
    { cwd: tmp.dir },
  );

describe('CAdES-T', () => {
  it('sign, time-stamp the signature value, add the token, verify', async () => {
    const cms = await signCms({
      signer: pki.rsa.signer,
      certificate: pki.rsa.der,
      chain: [pki.inter.der],
      content,
      detached: false,
    });
    const genTime = new Date('2026-07-08T09:10:11.500Z');
    const token = await stamp(cms, genTime);
    const cadesT = addSignatureTimeStamp(cms, token);

    const v = verifyCms(cadesT);
    expect(v.status, v.message).toBe('valid');
    if (v.status !== 'valid') return;
    expect(v.signatureTimeStamps).toEqual([token]);
    expect(v.timeStamps).toHaveLength(1);
    const ts = v.timeStamps[0]!;
    expect(ts.valid, ts.message).toBe(true);
    expect(ts.genTime).toEqual(genTime);
    expect(ts.imprint).toEqual({
      algorithm: 'sha256',
      digest: createHash('sha256').update(v.signatureValue).digest(),
    });
    expect(ts.tsaCertificate).toEqual(tsa.tsaCertificate);
    expect(ts.certificates).toContainEqual(pki.inter.der);

    // openssl still verifies the signature, and sees the unsigned attribute
    writeFileSync(tmp.path('cades-t.der'), cadesT);
    expect(opensslVerify('cades-t.der').output).toContain('Verification successful');
    const printed = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'cades-t.der'], {
      cwd: tmp.dir,
    }).stdout;
    expect(printed).toContain('id-smime-aa-timeStampToken');
    expect(printed).toContain('unsignedAttrs');
  });

  it('a second time-stamp (from openssl ts -reply) is appended; both verify', async () => {
    const cms = await signCms({
      signer: pki.ec.signer,
      certificate: pki.ec.der,
      chain: [pki.inter.der],
      content,
      detached: true,
    });
    const first = addSignatureTimeStamp(cms, await stamp(cms));

    // openssl's own TSA over the same signature value
    const { digest } = signatureTimeStampImprint(first);
    writeFileSync(tmp.path('tsaserial'), '01\n');
    writeFileSync(
      tmp.path('tsa.cnf'),
      `[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\nserial = ${tmp.path('tsaserial')}\nsigner_cert = ${pki.tsa.certPath}\nsigner_key = ${pki.tsa.keyPath}\ncerts = ${pki.chainPath}\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.5\ndigests = sha256\ness_cert_id_alg = sha256\n`,
    );
    const q = openssl(
      ['ts', '-query', '-digest', digest.toString('hex'), '-sha256', '-cert', '-out', 'sig.tsq'],
      {
        cwd: tmp.dir,
      },
    );
    expect(q.status, q.output).toBe(0);
    const r = openssl(
      ['ts', '-reply', '-config', 'tsa.cnf', '-queryfile', 'sig.tsq', '-token_out', '-out', 'sig.tst'],
      { cwd: tmp.dir },
    );
    expect(r.status, r.output).toBe(0);
    const second = addSignatureTimeStamp(first, readFileSync(tmp.path('sig.tst')));

    const v = verifyCms(second, { detachedContent: content });
    expect(v.status, v.message).toBe('valid');
    expect(v.signatureTimeStamps).toHaveLength(2);
    expect(v.timeStamps.map((t) => [t.valid, t.message])).toEqual([
      [true, 'the time-stamp token is cryptographically valid'],
      [true, 'the time-stamp token is cryptographically valid'],
    ]);
    expect(v.timeStamps[1]!.tsaCertificate).toEqual(pki.tsa.der);
    writeFileSync(tmp.path('cades-t2.der'), second);
    expect(opensslVerify('cades-t2.der', true).output).toContain('Verification successful');
  });

  it('works on BER input (openssl cms -sign -stream) and keeps it verifiable by openssl', async () => {
    const r = openssl(
      [
        'cms',
        '-sign',
        '-binary',
        '-nodetach',
        '-stream',
        '-signer',
        'rsa.pem',
        '-inkey',
        'rsa.key',
        '-certfile',
        'inter.pem', // embedded: openssl 3.0 cms -verify does not build chains from -certfile
        '-in',
        'data.bin',
        '-outform',
        'DER',
        '-out',
        'ber.der',
      ],
      { cwd: tmp.dir },
    );
    expect(r.status, r.output).toBe(0);
    const ber = readFileSync(tmp.path('ber.der'));
    expect(ber[1]).toBe(0x80); // indefinite length
    const withTs = addSignatureTimeStamp(ber, await stamp(ber));
    const v = verifyCms(withTs);
    expect(v.status, v.message).toBe('valid');
    expect(v.timeStamps[0]?.valid).toBe(true);
    writeFileSync(tmp.path('ber-t.der'), withTs);
    expect(opensslVerify('ber-t.der').output).toContain('Verification successful');
  });

  it('a tampered token is reported invalid; the signature itself stays valid', async () => {
    const cms = await signCms({ signer: pki.rsa.signer, certificate: pki.rsa.der, content, detached: false });
    const token = await stamp(cms);
    const bad = Buffer.from(token);
    bad[bad.length - 2]! ^= 0x01; // inside the TSA's signature
    const v = verifyCms(addSignatureTimeStamp(cms, bad));
    expect(v.status).toBe('valid');
    expect(v.timeStamps[0]!.valid).toBe(false);
    expect(v.timeStamps[0]!.subIndication).toBe('SIG_CRYPTO_FAILURE');
  });

  it('a token over another signature: refused by addSignatureTimeStamp, reported by verifyCms', async () => {
    const a = await signCms({ signer: pki.rsa.signer, certificate: pki.rsa.der, content, detached: false });
    const b = await signCms({ signer: pki.ec.signer, certificate: pki.ec.der, content, detached: false });
    const tokenForA = await stamp(a);
    expect(() => addSignatureTimeStamp(b, tokenForA)).toThrow(CmsError);

    // splice it in by hand, as an attacker (or a buggy tool) would
    const sd = parseSignedData(b);
    const si = sd.signerInfos[0]!;
    const body = Buffer.from(sd.reader.buf.subarray(si.node.contentStart, si.node.contentEnd));
    const spliced = replaceNode(
      sd.reader,
      [...sd.path, sd.signerInfosNode, si.node],
      tlv(0x30, body, tlv(0xa1, attribute(OID.signatureTimeStampToken, tokenForA))),
    );
    const v = verifyCms(spliced);
    expect(v.status).toBe('valid');
    expect(v.timeStamps[0]!.valid).toBe(false);
    expect(v.timeStamps[0]!.subIndication).toBe('HASH_FAILURE');
    expect(v.timeStamps[0]!.message).toMatch(/imprint/);
  });

  it('addSignatureTimeStamp refuses what it cannot edit', async () => {
    const cms = await signCms({ signer: pki.rsa.signer, certificate: pki.rsa.der, content, detached: false });
    expect(() => addSignatureTimeStamp(Buffer.from('junk'), Buffer.alloc(0))).toThrow(CmsError);
    expect(() => addSignatureTimeStamp(cms, Buffer.from('not a token'))).toThrow(CmsError);
    expect(() => addSignatureTimeStamp(cms, cms)).toThrow(CmsError); // a CMS, but not a time-stamp token
    const two = openssl(
      [
        'cms',
        '-sign',
        '-binary',
        '-nodetach',
        '-signer',
        'rsa.pem',
        '-inkey',
        'rsa.key',
        '-signer',
        'ec.pem',
        '-inkey',
        'ec.key',
        '-in',
        'data.bin',
        '-outform',
        'DER',
        '-out',
        'two.der',
      ],
      { cwd: tmp.dir },
    );
    expect(two.status, two.output).toBe(0);
    expect(() => addSignatureTimeStamp(readFileSync(tmp.path('two.der')), Buffer.alloc(0))).toThrow(
      /one SignerInfo/,
    );
  });
});
