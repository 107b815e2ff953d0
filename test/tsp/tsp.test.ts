import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCertificate } from '../../src/core/certificate.ts';
import { certificateInfo } from '../../src/core/cms/signed-data.ts';
import { timeStampingTemplate } from '../../src/core/profiles.ts';
import { newSerial } from '../../src/core/serial.ts';
import {
  buildTimeStampRequest,
  buildTimeStampResponse,
  errorTimeStampResponse,
  type ParsedTimeStampRequest,
  parseTimeStampRequest,
  parseTimeStampResponse,
  respondToTimeStampRequest,
  type TimeStampAuthority,
  TimeStampRequestError,
  verifyTimeStampResponse,
  verifyTimeStampToken,
} from '../../src/core/tsp/index.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { makePki, type Pki, writeCertPem } from '../cms/pki.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';

const POLICY = '1.2.392.200149.8.5.99.1';
const data = Buffer.from('document to be time-stamped\n');
const dataHash = createHash('sha256').update(data).digest();

let tmp: ReturnType<typeof tempDir>;
let pki: Pki;
/** Our TSAs: certificates from timeStampingTemplate, RSA and EC keys. */
let tsas: Record<'rsa' | 'ec', TimeStampAuthority>;

beforeAll(async () => {
  tmp = tempDir('jpki-tsp-');
  pki = makePki(tmp.dir);
  writeFileSync(tmp.path('data.bin'), data);
  const inter = certificateInfo(pki.inter.der);
  const make = async (alg: 'rsa-2048' | 'ecdsa-p256'): Promise<TimeStampAuthority> => {
    const signer = SoftwareSigner.generate(alg);
    const t = timeStampingTemplate(
      signer.publicKeySpki,
      { name: inter.subject, spki: inter.spki },
      new Date(Date.now() - 60_000),
      5,
    );
    const der = await signCertificate(pki.inter.signer, {
      serial: newSerial(),
      issuer: inter.subject,
      subject: t.subject,
      notBefore: t.validity.notBefore,
      notAfter: t.validity.notAfter,
      spki: signer.publicKeySpki,
      extensions: t.extensions,
    });
    return { signer, tsaCertificate: der, chain: [pki.inter.der], policy: POLICY, accuracySeconds: 1 };
  };
  tsas = { rsa: await make('rsa-2048'), ec: await make('ecdsa-p256') };
  writeCertPem(tmp.path('our-tsa-rsa.pem'), tsas.rsa.tsaCertificate);
  writeCertPem(tmp.path('our-tsa-ec.pem'), tsas.ec.tsaCertificate);
  writeFileSync(
    tmp.path('untrusted.pem'),
    [pki.inter.certPath, tmp.path('our-tsa-rsa.pem'), tmp.path('our-tsa-ec.pem')]
      .map((p) => readFileSync(p, 'utf8'))
      .join(''),
  );
});
afterAll(() => tmp?.cleanup());

const run = (args: string[]) => openssl(args, { cwd: tmp.dir });
const must = (args: string[]) => {
  const r = run(args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.output}`);
  return r;
};

function opensslQuery(name: string, extra: string[] = []): { der: Buffer; file: string } {
  const file = `${name}.tsq`;
  must(['ts', '-query', '-data', 'data.bin', '-out', file, ...extra]);
  return { der: readFileSync(tmp.path(file)), file };
}

describe('TSA profile', () => {
  it('timeStampingTemplate: subject, critical EKU timeStamping, key usage, SKI/AKI', () => {
    const text = must(['x509', '-in', 'our-tsa-rsa.pem', '-noout', '-text']).stdout;
    expect(text).toMatch(/Subject: C ?= ?JP, O ?= ?JPKI, OU ?= ?JPKI Time Stamping Authority, CN ?= ?TSA/);
    expect(text).toMatch(/X509v3 Extended Key Usage: critical\n\s+Time Stamping\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Digital Signature, Non Repudiation\n/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain('X509v3 Authority Key Identifier');
    const purpose = must(['x509', '-in', 'our-tsa-rsa.pem', '-noout', '-purpose']).stdout;
    expect(purpose).toContain('Time Stamp signing : Yes');
    expect(
      must([
        'verify',
        '-CAfile',
        'root.pem',
        '-untrusted',
        'inter.pem',
        '-purpose',
        'timestampsign',
        'our-tsa-rsa.pem',
      ]).stdout,
    ).toContain('OK');
  });
});

describe('parseTimeStampRequest', () => {
  it('reads openssl ts -query (-sha256 -cert): imprint, nonce, certReq', () => {
    const { der } = opensslQuery('q1', ['-sha256', '-cert']);
    const req = parseTimeStampRequest(der);
    expect(req.hashAlgorithm).toBe('sha256');
    expect(req.digest).toEqual(dataHash);
    expect(req.certReq).toBe(true);
    expect(req.nonce?.length).toBeGreaterThan(0);
    expect(req.policy).toBeUndefined();
    const text = must(['ts', '-query', '-in', 'q1.tsq', '-text']).stdout;
    // openssl prints whole bytes (0x04A0…), so allow leading zeros.
    expect(text).toMatch(
      new RegExp(
        `Nonce: 0x0*${BigInt(`0x${req.nonce!.toString('hex')}`)
          .toString(16)
          .toUpperCase()}\\b`,
      ),
    );
  });

  it('reads -no_nonce, -sha512, -tspolicy, no -cert', () => {
    const req = parseTimeStampRequest(
      opensslQuery('q2', ['-sha512', '-no_nonce', '-tspolicy', '1.2.3.4']).der,
    );
    expect(req.hashAlgorithm).toBe('sha512');
    expect(req.nonce).toBeUndefined();
    expect(req.certReq).toBe(false);
    expect(req.policy).toBe('1.2.3.4');
  });

  it('round-trips buildTimeStampRequest and openssl reads it', () => {
    const nonce = randomBytes(8);
    const der = buildTimeStampRequest({ digest: dataHash, hashAlgorithm: 'sha256', nonce, certReq: true });
    const req = parseTimeStampRequest(der);
    expect(req.digest).toEqual(dataHash);
    expect(req.certReq).toBe(true);
    expect(BigInt(`0x${req.nonce!.toString('hex')}`)).toBe(BigInt(`0x${nonce.toString('hex')}`));
    writeFileSync(tmp.path('ours.tsq'), der);
    const text = must(['ts', '-query', '-in', 'ours.tsq', '-text']).stdout;
    expect(text).toContain('Certificate required: yes');
    expect(text).toContain('Hash Algorithm: sha256');
  });

  const rejects = (der: Buffer, failInfo: string, message?: RegExp) => {
    try {
      parseTimeStampRequest(der);
    } catch (e) {
      expect(e).toBeInstanceOf(TimeStampRequestError);
      expect((e as TimeStampRequestError).failInfo).toBe(failInfo);
      if (message) expect((e as Error).message).toMatch(message);
      return;
    }
    throw new Error('accepted');
  };

  it('refuses with a typed error and the right failInfo', () => {
    rejects(opensslQuery('sha1', ['-sha1']).der, 'badAlg', /1\.3\.14\.3\.2\.26 not accepted/);
    rejects(Buffer.from('garbage'), 'badDataFormat');
    const good = opensslQuery('q3', ['-sha256']).der;
    rejects(good.subarray(0, good.length - 1), 'badDataFormat');
    rejects(Buffer.concat([good, Buffer.from([0])]), 'badDataFormat');
    // version 2
    const v2 = Buffer.from(good);
    v2[good.indexOf(Buffer.from([0x02, 0x01, 0x01]), 2) + 2] = 2;
    rejects(v2, 'badRequest', /version/);
    // a SHA-256 imprint of 31 bytes
    const short = buildTimeStampRequest({ digest: dataHash, hashAlgorithm: 'sha256' });
    const cut = Buffer.concat([short.subarray(0, short.length - 1)]);
    cut[1]! -= 1; // outer length
    cut[6]! -= 1; // MessageImprint length
    cut[cut.length - 32]! -= 1; // OCTET STRING length
    rejects(cut, 'badDataFormat', /a sha256 imprint of 31 bytes/);
    // an extension
    const ext = Buffer.from('a0123010060355040e0409040701020304050607', 'hex');
    const body = Buffer.concat([short.subarray(2), ext]);
    rejects(Buffer.concat([Buffer.from([0x30, body.length]), body]), 'unacceptedExtension');
  });
});

describe('our TSA → openssl ts', () => {
  for (const alg of ['rsa', 'ec'] as const) {
    for (const certReq of [true, false]) {
      it(`${alg} TSA, certReq ${certReq}: openssl prints and verifies the response`, async () => {
        const q = opensslQuery(`q-${alg}-${certReq}`, ['-sha256', ...(certReq ? ['-cert'] : [])]);
        const request = parseTimeStampRequest(q.der);
        const genTime = new Date('2026-05-06T07:08:09.120Z');
        const serial = Buffer.from('0123456789abcdef', 'hex');
        const resp = await buildTimeStampResponse({
          ...tsas[alg],
          request,
          serial,
          genTime,
          includeTsaName: true,
        });
        const file = `resp-${alg}-${certReq}.tsr`;
        writeFileSync(tmp.path(file), resp);

        const text = must(['ts', '-reply', '-in', file, '-text']).stdout;
        expect(text).toContain('Status: Granted.');
        expect(text).toContain(`Policy OID: ${POLICY}`);
        expect(text).toContain('Hash Algorithm: sha256');
        expect(text).toContain('Serial number: 0x0123456789ABCDEF');
        expect(text).toContain('Time stamp: May  6 07:08:09.12 2026 GMT');
        expect(text).toContain('Accuracy: 0x01 seconds');
        // openssl prints whole bytes (0x04A0…), so allow leading zeros.
        expect(text).toMatch(
          new RegExp(
            `Nonce: 0x0*${BigInt(`0x${request.nonce!.toString('hex')}`)
              .toString(16)
              .toUpperCase()}\\b`,
          ),
        );
        expect(text).toContain('TSA: DirName:/C=JP/O=JPKI/OU=JPKI Time Stamping Authority/CN=TSA');

        const v = must([
          'ts',
          '-verify',
          '-in',
          file,
          '-queryfile',
          q.file,
          '-CAfile',
          'root.pem',
          '-untrusted',
          certReq ? 'inter.pem' : 'untrusted.pem',
        ]);
        expect(v.output).toContain('Verification: OK');
        // also against the data itself
        const d = run([
          'ts',
          '-verify',
          '-in',
          file,
          '-data',
          'data.bin',
          '-CAfile',
          'root.pem',
          '-untrusted',
          'untrusted.pem',
        ]);
        expect(d.output).toContain('Verification: OK');

        const ours = verifyTimeStampResponse(resp, request, { certificates: [tsas[alg].tsaCertificate] });
        expect(ours.valid, ours.message).toBe(true);
        expect(ours.genTime).toEqual(genTime);
        expect(ours.nonce).toEqual(request.nonce);
        expect(ours.serial).toEqual(serial);
        expect(ours.policy).toBe(POLICY);
        expect(ours.tsaCertificate).toEqual(tsas[alg].tsaCertificate);
        expect(ours.certificates.length).toBe(certReq ? 2 : 0);
      });
    }
  }

  it('echoes the nonce exactly (leading zero byte included)', async () => {
    const nonce = Buffer.from('00ff00ff00ff00ff', 'hex'); // magnitude with a leading zero
    const reqDer = buildTimeStampRequest({ digest: dataHash, hashAlgorithm: 'sha256', nonce });
    const request = parseTimeStampRequest(reqDer);
    const resp = await buildTimeStampResponse({
      ...tsas.ec,
      request,
      serial: newSerial(),
      genTime: new Date(),
    });
    const token = parseTimeStampResponse(resp).token!;
    const v = verifyTimeStampToken(token, {
      expectedNonce: request.nonce,
      certificates: [tsas.ec.tsaCertificate],
    });
    expect(v.valid, v.message).toBe(true);
    expect(v.nonce).toEqual(request.nonce);
    const other = verifyTimeStampToken(token, {
      expectedNonce: Buffer.from([1]),
      certificates: [tsas.ec.tsaCertificate],
    });
    expect(other.valid).toBe(false);
  });

  it('honours a reqPolicy equal to ours and rejects another (unacceptedPolicy)', async () => {
    const ok = opensslQuery('pol-ok', ['-sha256', '-tspolicy', POLICY]);
    const granted = await respondToTimeStampRequest(ok.der, {
      ...tsas.rsa,
      serial: newSerial(),
      genTime: new Date(),
    });
    expect(granted.status).toBe('granted');
    const bad = opensslQuery('pol-bad', ['-sha256', '-tspolicy', '1.2.3.4.5']);
    const r = await respondToTimeStampRequest(bad.der, {
      ...tsas.rsa,
      serial: newSerial(),
      genTime: new Date(),
    });
    expect(r.status).toBe('rejection');
    expect(r.failInfo).toBe('unacceptedPolicy');
    writeFileSync(tmp.path('pol.tsr'), r.der);
    const text = must(['ts', '-reply', '-in', 'pol.tsr', '-text']).stdout;
    expect(text).toContain('Status: Rejected.');
    expect(text).toContain('Failure info: the requested TSA policy is not supported by the TSA');
  });

  it('bad requests get rejection responses that openssl parses', async () => {
    const cases: [Buffer, string, RegExp][] = [
      [
        Buffer.from('not a request'),
        'badDataFormat',
        /Failure info: the data submitted has the wrong format/,
      ],
      [
        opensslQuery('bad-sha1', ['-sha1']).der,
        'badAlg',
        /Failure info: unrecognized or unsupported algorithm identifier/,
      ],
    ];
    for (const [der, failInfo, pattern] of cases) {
      const r = await respondToTimeStampRequest(der, {
        ...tsas.rsa,
        serial: newSerial(),
        genTime: new Date(),
      });
      expect(r.status).toBe('rejection');
      expect(r.failInfo).toBe(failInfo);
      writeFileSync(tmp.path('rej.tsr'), r.der);
      const text = must(['ts', '-reply', '-in', 'rej.tsr', '-text']).stdout;
      expect(text).toContain('Status: Rejected.');
      expect(text).toMatch(pattern);
      expect(text).toContain('TST info:\nNot included.');
      const parsed = parseTimeStampResponse(r.der);
      expect(parsed.statusName).toBe('rejection');
      expect(parsed.failInfo).toEqual([failInfo]);
      expect(parsed.token).toBeUndefined();
    }
    for (const failInfo of [
      'badRequest',
      'systemFailure',
      'timeNotAvailable',
      'unacceptedExtension',
    ] as const) {
      const der = errorTimeStampResponse('rejection', failInfo);
      writeFileSync(tmp.path('rej2.tsr'), der);
      expect(must(['ts', '-reply', '-in', 'rej2.tsr', '-text']).stdout).toContain('Status: Rejected.');
      expect(parseTimeStampResponse(der).failInfo).toEqual([failInfo]);
    }
  });
});

describe('openssl TSA → verifyTimeStampToken', () => {
  for (const essAlg of ['sha1', 'sha256'] as const) {
    it(`openssl ts -reply (ess_cert_id_alg ${essAlg}) is accepted`, () => {
      writeFileSync(tmp.path('tsaserial'), '01\n');
      writeFileSync(
        tmp.path('tsa.cnf'),
        `[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = ${tmp.path('tsaserial')}
crypto_device = builtin
signer_cert = ${pki.tsa.certPath}
signer_key = ${pki.tsa.keyPath}
certs = ${pki.chainPath}
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = ${essAlg}
`,
      );
      const q = opensslQuery(`oq-${essAlg}`, ['-sha384', '-cert']);
      must(['ts', '-reply', '-config', 'tsa.cnf', '-queryfile', q.file, '-out', `o-${essAlg}.tsr`]);
      must([
        'ts',
        '-reply',
        '-config',
        'tsa.cnf',
        '-queryfile',
        q.file,
        '-token_out',
        '-out',
        `o-${essAlg}.tst`,
      ]);
      const resp = readFileSync(tmp.path(`o-${essAlg}.tsr`));
      const request = parseTimeStampRequest(q.der);

      const v = verifyTimeStampResponse(resp, request);
      expect(v.valid, v.message).toBe(true);
      expect(v.policy).toBe('1.2.3.4.1');
      expect(v.accuracy).toEqual({ seconds: 1, millis: 500 });
      expect(v.ordering).toBe(true);
      expect(v.tsaCertificate).toEqual(pki.tsa.der);

      const token = readFileSync(tmp.path(`o-${essAlg}.tst`));
      const t = verifyTimeStampToken(token, { data, expectedNonce: request.nonce });
      expect(t.valid, t.message).toBe(true);
      expect(t.imprint).toEqual({ algorithm: 'sha384', digest: createHash('sha384').update(data).digest() });
      expect(Math.abs(t.genTime!.getTime() - Date.now())).toBeLessThan(120_000);
      expect(verifyTimeStampToken(token, { data: Buffer.from('other') }).subIndication).toBe('HASH_FAILURE');
    });
  }
});

describe('verifyTimeStampToken failures', () => {
  let request: ParsedTimeStampRequest;
  let token: Buffer;
  beforeAll(async () => {
    request = parseTimeStampRequest(
      buildTimeStampRequest({ digest: dataHash, hashAlgorithm: 'sha256', certReq: true }),
    );
    token = parseTimeStampResponse(
      await buildTimeStampResponse({ ...tsas.rsa, request, serial: newSerial(), genTime: new Date() }),
    ).token!;
  });

  it('accepts the untouched token', () => {
    const v = verifyTimeStampToken(token, { expectedImprint: { algorithm: 'sha256', digest: dataHash } });
    expect(v.valid, v.message).toBe(true);
  });

  it('a tampered TSTInfo → HASH_FAILURE; a tampered signature → SIG_CRYPTO_FAILURE', () => {
    const tampered = Buffer.from(token);
    tampered[token.indexOf(dataHash) + 1]! ^= 1;
    expect(verifyTimeStampToken(tampered).subIndication).toBe('HASH_FAILURE');
    const sig = Buffer.from(token);
    sig[sig.length - 3]! ^= 1;
    expect(verifyTimeStampToken(sig).subIndication).toBe('SIG_CRYPTO_FAILURE');
  });

  it('a wrong expected imprint → HASH_FAILURE', () => {
    const v = verifyTimeStampToken(token, {
      expectedImprint: { algorithm: 'sha256', digest: Buffer.alloc(32) },
    });
    expect(v.valid).toBe(false);
    expect(v.subIndication).toBe('HASH_FAILURE');
    expect(
      verifyTimeStampToken(token, { expectedImprint: { algorithm: 'sha384', digest: Buffer.alloc(48) } })
        .valid,
    ).toBe(false);
  });

  it('a TSA certificate without critical EKU timeStamping is refused', async () => {
    // the RSA signer certificate (no EKU) used as a TSA
    const t = parseTimeStampResponse(
      await buildTimeStampResponse({
        signer: pki.rsa.signer,
        tsaCertificate: pki.rsa.der,
        policy: POLICY,
        request,
        serial: newSerial(),
        genTime: new Date(),
      }),
    ).token!;
    const v = verifyTimeStampToken(t);
    expect(v.valid).toBe(false);
    expect(v.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
    expect(v.message).toMatch(/extendedKeyUsage/);
  });

  it('a CMS signature is not a time-stamp token', async () => {
    const { signCms } = await import('../../src/core/cms/sign.ts');
    const cms = await signCms({
      signer: pki.rsa.signer,
      certificate: pki.rsa.der,
      content: data,
      detached: false,
    });
    const v = verifyTimeStampToken(cms);
    expect(v.valid).toBe(false);
    expect(v.subIndication).toBe('FORMAT_FAILURE');
  });

  it('a response for another request is refused', async () => {
    const other = parseTimeStampRequest(
      buildTimeStampRequest({ digest: dataHash, hashAlgorithm: 'sha256', nonce: randomBytes(8) }),
    );
    const resp = await buildTimeStampResponse({
      ...tsas.rsa,
      request,
      serial: newSerial(),
      genTime: new Date(),
    });
    const v = verifyTimeStampResponse(resp, other, { certificates: [tsas.rsa.tsaCertificate] });
    expect(v.valid).toBe(false);
    expect(v.message).toMatch(/nonce/);
  });
});
