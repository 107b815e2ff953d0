import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CmsError, signCms, verifyCms } from '../../src/core/cms/index.ts';
import type { Signer } from '../../src/core/signer.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { makePki, type Pki } from './pki.ts';

let tmp: ReturnType<typeof tempDir>;
let pki: Pki;
// binary content: CRLF, NUL and high bytes must survive untouched (-binary)
const content = Buffer.concat([Buffer.from('申請書\r\nline two\n\0'), Buffer.from([0xff, 0x80, 0x0d])]);
const signingTime = new Date('2026-04-01T09:30:15Z');

beforeAll(() => {
  tmp = tempDir('jpki-cms-');
  pki = makePki(tmp.dir);
  writeFileSync(tmp.path('data.bin'), content);
});
afterAll(() => tmp?.cleanup());

const write = (name: string, der: Buffer) => {
  writeFileSync(tmp.path(name), der);
  return name;
};

/** `openssl cms -verify` against our root, the intermediate given as -certfile. */
function opensslVerify(file: string, opts: { detached?: boolean; cades?: boolean } = {}) {
  return openssl(
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
      ...(opts.cades ? ['-cades'] : []),
      ...(opts.detached ? ['-content', 'data.bin'] : []),
      '-out',
      `${file}.out`,
    ],
    { cwd: tmp.dir },
  );
}

/** `openssl cms -sign` with the given extra arguments; returns the DER. */
function opensslSign(key: 'rsa' | 'ec', args: string[], input = 'data.bin'): Buffer {
  const out = `openssl-${key}-${args.join('_').replace(/[^a-z0-9_]/gi, '')}.der`;
  const r = openssl(
    [
      'cms',
      '-sign',
      '-binary',
      '-signer',
      `${key}.pem`,
      '-inkey',
      `${key}.key`,
      '-outform',
      'DER',
      '-in',
      input,
      '-out',
      out,
      ...args,
    ],
    { cwd: tmp.dir },
  );
  if (r.status !== 0) throw new Error(r.output);
  return readFileSync(tmp.path(out));
}

const flip = (buf: Buffer, at: number): Buffer => {
  const copy = Buffer.from(buf);
  copy[at]! ^= 0x01;
  return copy;
};

describe('signCms → openssl cms -verify', () => {
  for (const key of ['rsa', 'ec'] as const) {
    for (const detached of [false, true]) {
      it(`${key}, ${detached ? 'detached' : 'attached'}`, async () => {
        const id = pki[key];
        const der = await signCms({
          signer: id.signer,
          certificate: id.der,
          chain: [pki.inter.der],
          content,
          detached,
          signingTime,
        });
        const file = write(`ours-${key}-${detached}.der`, der);

        const r = opensslVerify(file, { detached });
        expect(r.output).toContain('Verification successful');
        expect(r.status).toBe(0);
        if (!detached) expect(readFileSync(tmp.path(`${file}.out`))).toEqual(content);
        // openssl's CAdES-BES check of the signing-certificate(-v2) attribute
        expect(opensslVerify(file, { detached, cades: true }).output).toContain(
          'CAdES Verification successful',
        );

        const printed = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', file], {
          cwd: tmp.dir,
        }).stdout;
        expect(printed).toContain('id-smime-aa-signingCertificateV2');
        expect(printed).toContain('signingTime');
        expect(printed).toContain('UTCTIME:Apr  1 09:30:15 2026 GMT');
        expect(printed).toContain('contentType');
        expect(printed).toContain('messageDigest');
        expect(printed).toMatch(/version: 1\n/);
        expect(printed).toContain(key === 'rsa' ? 'rsaEncryption' : 'ecdsa-with-SHA256');
        if (detached) expect(printed).toMatch(/eContent: <ABSENT>/);

        const v = verifyCms(der, detached ? { detachedContent: content } : {});
        expect(v.status, v.message).toBe('valid');
        if (v.status !== 'valid') return;
        expect(v.signerCertificate).toEqual(id.der);
        expect(v.certificates).toHaveLength(2);
        expect(v.signingTime).toEqual(signingTime);
        expect(v.signingCertificateAttribute).toBe('v2');
        expect(v.signedAttributesDigestAlgorithm).toBe('sha256');
        expect(v.content).toEqual(content);
        expect(v.signatureTimeStamps).toEqual([]);
      });
    }
  }

  it('leaves out hashAlgorithm of ESSCertIDv2 (SHA-256 is the DER default)', async () => {
    const der = await signCms({ signer: pki.rsa.signer, certificate: pki.rsa.der, content, detached: true });
    const certHash = createHash('sha256').update(pki.rsa.der).digest();
    const at = der.indexOf(certHash);
    expect(at).toBeGreaterThan(0);
    // ESSCertIDv2 ::= SEQUENCE { certHash OCTET STRING (first: no AlgorithmIdentifier before it), ... }
    expect(der.subarray(at - 2, at)).toEqual(Buffer.from([0x04, 0x20]));
    expect(der[at - 4]).toBe(0x30);
  });

  it('refuses a certificate that does not hold the signer key', async () => {
    await expect(
      signCms({ signer: pki.ec.signer, certificate: pki.rsa.der, content, detached: false }),
    ).rejects.toThrow(CmsError);
  });

  it('uses only Signer.sign(), with a plain object signer', async () => {
    const calls: number[] = [];
    const signer: Signer = {
      algorithm: pki.ec.signer.algorithm,
      publicKeySpki: pki.ec.signer.publicKeySpki,
      sign: async (data) => {
        calls.push(Buffer.isBuffer(data) ? data.length : -1);
        return pki.ec.signer.sign(data);
      },
    };
    const der = await signCms({ signer, certificate: pki.ec.der, content, detached: false });
    expect(calls).toHaveLength(1);
    expect(verifyCms(der).status).toBe('valid');
  });
});

describe('openssl cms -sign → verifyCms', () => {
  for (const key of ['rsa', 'ec'] as const) {
    for (const md of ['sha256', 'sha384', 'sha512'] as const) {
      for (const nodetach of [true, false]) {
        it(`${key} ${md} ${nodetach ? '-nodetach' : 'detached'}`, () => {
          const der = opensslSign(key, ['-md', md, ...(nodetach ? ['-nodetach'] : [])]);
          const v = verifyCms(der, nodetach ? {} : { detachedContent: content });
          expect(v.status, v.message).toBe('valid');
          if (v.status !== 'valid') return;
          expect(v.signerCertificate).toEqual(pki[key].der);
          expect(v.signedAttributesDigestAlgorithm).toBe(md);
          expect(v.signatureAlgorithm).toBe(
            key === 'rsa' ? 'rsaEncryption' : `ecdsa-with-${md.toUpperCase()}`,
          );
          expect(v.signingTime).toBeInstanceOf(Date);
          expect(v.content).toEqual(content);
          expect(v.signingCertificateAttribute).toBeUndefined();
        });
      }
    }

    it(`${key}: -stream output is BER with indefinite lengths and chunked content`, () => {
      const big = Buffer.alloc(5000, 0x61);
      writeFileSync(tmp.path('big.bin'), big);
      const der = opensslSign(key, ['-nodetach', '-stream'], 'big.bin');
      expect(der.subarray(0, 2)).toEqual(Buffer.from([0x30, 0x80]));
      const v = verifyCms(der);
      expect(v.status, v.message).toBe('valid');
      expect(v.content).toEqual(big);
      // the same, detached
      const det = opensslSign(key, ['-stream'], 'big.bin');
      expect(verifyCms(det, { detachedContent: big }).status).toBe('valid');
      expect(verifyCms(det, { detachedContent: flip(big, 4000) }).subIndication).toBe('HASH_FAILURE');
    });

    it(`${key}: subjectKeyIdentifier as signer identifier (-keyid)`, () => {
      const v = verifyCms(opensslSign(key, ['-nodetach', '-keyid']));
      expect(v.status, v.message).toBe('valid');
      expect(v.signerCertificate).toEqual(pki[key].der);
    });

    it(`${key}: -cades (signing-certificate-v2) is checked`, () => {
      const v = verifyCms(opensslSign(key, ['-nodetach', '-cades']));
      expect(v.status, v.message).toBe('valid');
      if (v.status === 'valid') expect(v.signingCertificateAttribute).toBe('v2');
    });

    it(`${key}: without signed attributes (-noattr)`, () => {
      const v = verifyCms(opensslSign(key, ['-nodetach', '-noattr']));
      expect(v.status, v.message).toBe('valid');
      if (v.status === 'valid') expect(v.signedAttributes).toBe(false);
      expect(
        verifyCms(opensslSign(key, ['-noattr']), { detachedContent: flip(content, 0) }).subIndication,
      ).toBe('SIG_CRYPTO_FAILURE');
    });

    it(`${key}: no embedded certificate (-nocerts) unless given by the caller`, () => {
      const der = opensslSign(key, ['-nodetach', '-nocerts']);
      expect(verifyCms(der).subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
      const v = verifyCms(der, { certificates: [pki.inter.der, pki[key].der] });
      expect(v.status, v.message).toBe('valid');
      expect(v.certificates).toEqual([]);
    });
  }

  it('RSA-PSS (-keyopt rsa_padding_mode:pss)', () => {
    for (const [md, salt] of [
      ['sha256', []],
      ['sha384', ['-keyopt', 'rsa_pss_saltlen:32']],
    ] as const) {
      const der = opensslSign('rsa', ['-nodetach', '-md', md, '-keyopt', 'rsa_padding_mode:pss', ...salt]);
      const v = verifyCms(der);
      expect(v.status, v.message).toBe('valid');
      expect(v.signatureAlgorithm).toBe('rsassaPss');
      expect(verifyCms(flip(der, der.length - 1)).subIndication).toBe('SIG_CRYPTO_FAILURE');
    }
  });

  it('two signers: both verified, the first failure reported', () => {
    const der = opensslSign('rsa', ['-nodetach', '-signer', 'ec.pem', '-inkey', 'ec.key']);
    const v = verifyCms(der);
    expect(v.status, v.message).toBe('valid');
    expect(v.signerCount).toBe(2);
    // the last byte of the DER is the last byte of the second SignerInfo's signature
    const bad = verifyCms(flip(der, der.length - 1));
    expect(bad.subIndication).toBe('SIG_CRYPTO_FAILURE');
    expect(bad.message).toMatch(/^SignerInfo 2: /);
  });
});

describe('verifyCms failures', () => {
  let attached: Buffer;
  let detached: Buffer;
  beforeAll(() => {
    attached = opensslSign('rsa', ['-nodetach', '-cades']);
    detached = opensslSign('ec', []);
  });

  it('one altered byte of the content → HASH_FAILURE', () => {
    const at = attached.indexOf(content);
    expect(at).toBeGreaterThan(0);
    const v = verifyCms(flip(attached, at + 3));
    expect(v.status).toBe('failed');
    expect(v.subIndication).toBe('HASH_FAILURE');
    expect(verifyCms(detached, { detachedContent: flip(content, 3) }).subIndication).toBe('HASH_FAILURE');
  });

  it('an altered signature → SIG_CRYPTO_FAILURE', () => {
    // openssl puts the signature last when there are no unsigned attributes
    for (const der of [attached, detached]) {
      const v = verifyCms(flip(der, der.length - 5), { detachedContent: content });
      expect(v.subIndication, v.message).toBe('SIG_CRYPTO_FAILURE');
      expect(v.signerCertificate).toBeDefined();
    }
  });

  it('altered signed attributes → SIG_CRYPTO_FAILURE', () => {
    // the units digit of the signingTime seconds
    const v = verifyCms(attached);
    if (v.status !== 'valid') throw new Error(v.message);
    const st = attached.indexOf(
      Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05]),
    );
    const bad = verifyCms(flip(attached, st + 11 + 2 + 2 + 11));
    expect(bad.subIndication, bad.message).toBe('SIG_CRYPTO_FAILURE');
  });

  it('signed by another key while claiming the certificate → SIG_CRYPTO_FAILURE', async () => {
    // a signer that reports the RSA certificate's key but signs with another one
    const other = SoftwareSigner.generate('rsa-2048');
    const impostor: Signer = {
      algorithm: 'rsa-2048',
      publicKeySpki: pki.rsa.signer.publicKeySpki,
      sign: (d) => other.sign(d),
    };
    const der = await signCms({ signer: impostor, certificate: pki.rsa.der, content, detached: false });
    expect(verifyCms(der).subIndication).toBe('SIG_CRYPTO_FAILURE');

    // openssl: a look-alike certificate (same issuer name and serial number, another key)
    const serial = openssl(['x509', '-in', 'rsa.pem', '-noout', '-serial'], { cwd: tmp.dir })
      .stdout.trim()
      .split('=')[1]!;
    const mk = (args: string[]) => {
      const r = openssl(args, { cwd: tmp.dir });
      if (r.status !== 0) throw new Error(r.output);
    };
    mk([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'evilca.key',
      '-out',
      'evilca.pem',
      '-subj',
      '/C=JP/O=Test/CN=Test Intermediate',
      '-days',
      '2',
    ]);
    mk([
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'evil.key',
      '-out',
      'evil.csr',
      '-subj',
      '/C=JP/CN=RSA Signer',
    ]);
    mk([
      'x509',
      '-req',
      '-in',
      'evil.csr',
      '-CA',
      'evilca.pem',
      '-CAkey',
      'evilca.key',
      '-set_serial',
      `0x${serial}`,
      '-out',
      'evil.pem',
      '-days',
      '2',
    ]);
    mk([
      'cms',
      '-sign',
      '-binary',
      '-nodetach',
      '-nocerts',
      '-signer',
      'evil.pem',
      '-inkey',
      'evil.key',
      '-in',
      'data.bin',
      '-outform',
      'DER',
      '-out',
      'evil.der',
    ]);
    const evil = readFileSync(tmp.path('evil.der'));
    const v = verifyCms(evil, { certificates: [pki.rsa.der] });
    expect(v.subIndication, v.message).toBe('SIG_CRYPTO_FAILURE');
    expect(v.signerCertificate).toEqual(pki.rsa.der);
  });

  it('a signing-certificate-v2 naming another certificate → NO_SIGNING_CERTIFICATE_FOUND', async () => {
    const der = await signCms({ signer: pki.rsa.signer, certificate: pki.rsa.der, content, detached: false });
    const at = der.indexOf(createHash('sha256').update(pki.rsa.der).digest());
    const v = verifyCms(flip(der, at + 5));
    expect(v.subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
    expect(v.message).toMatch(/signing-certificate-v2/);
    // openssl -cades output too
    const at2 = attached.indexOf(createHash('sha256').update(pki.rsa.der).digest());
    expect(at2).toBeGreaterThan(0);
    expect(verifyCms(flip(attached, at2)).subIndication).toBe('NO_SIGNING_CERTIFICATE_FOUND');
  });

  it('a content-type attribute differing from eContentType → FORMAT_FAILURE', async () => {
    const der = await signCms({ signer: pki.ec.signer, certificate: pki.ec.der, content, detached: false });
    const idData = Buffer.from('06092a864886f70d010701', 'hex');
    const at = der.lastIndexOf(idData); // the content-type attribute value (the first is eContentType)
    expect(at).toBeGreaterThan(der.indexOf(idData));
    const bad = Buffer.from(der);
    bad[at + idData.length - 1] = 0x02; // id-signedData
    const v = verifyCms(bad);
    expect(v.subIndication).toBe('FORMAT_FAILURE');
    expect(v.message).toMatch(/content-type/);
  });

  it('a detached signature without its content → SIGNED_DATA_NOT_FOUND', () => {
    expect(verifyCms(detached).subIndication).toBe('SIGNED_DATA_NOT_FOUND');
  });

  it('detached content given with an attached signature must match', () => {
    expect(verifyCms(attached, { detachedContent: content }).status).toBe('valid');
    const v = verifyCms(attached, { detachedContent: Buffer.from('something else') });
    expect(v.subIndication).toBe('HASH_FAILURE');
  });

  it('garbage, truncation, trailing bytes, oversize → FORMAT_FAILURE', () => {
    const cases = [
      Buffer.alloc(0),
      Buffer.from('not a signature'),
      attached.subarray(0, attached.length - 1),
      attached.subarray(0, 100),
      Buffer.concat([attached, Buffer.from([0])]),
      Buffer.from([0x30, 0x80, 0x00]),
      Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
    ];
    for (const c of cases) {
      const v = verifyCms(c);
      expect(v.status).toBe('failed');
      expect(v.subIndication).toBe('FORMAT_FAILURE');
    }
    const huge = Buffer.alloc(64 * 1024 * 1024 + 1);
    expect(verifyCms(huge).subIndication).toBe('FORMAT_FAILURE');
  });

  it('not SignedData (an enveloped message) → FORMAT_FAILURE', () => {
    const r = openssl(
      ['cms', '-encrypt', '-binary', '-in', 'data.bin', '-outform', 'DER', '-out', 'env.der', 'rsa.pem'],
      { cwd: tmp.dir },
    );
    expect(r.status).toBe(0);
    const v = verifyCms(readFileSync(tmp.path('env.der')));
    expect(v.subIndication).toBe('FORMAT_FAILURE');
    expect(v.message).toMatch(/not SignedData/);
  });
});
