// PKCS#10 checks: what requests made by openssl (as a card helper would) are accepted, what is
// refused and with which message, and that any input at all ends in a result or a CsrError.

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign as signData,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsrError, checkSubjectKey, MAX_CSR_BYTES, verifyCsr } from '../../src/core/csr.ts';
import {
  bitString,
  explicit,
  integer,
  NULL,
  oid,
  readChildren,
  readTlv,
  sequence,
  set,
  tlv,
  utf8String,
} from '../../src/core/der.ts';
import { OID } from '../../src/core/oids.ts';
import { decodePem, encodePem } from '../../src/core/pem.ts';
import { openssl, opensslCsr, tempDir } from '../helpers/openssl.ts';

const tmp = tempDir('jpki-csr-');

function mustOpenssl(args: readonly string[]): string {
  const r = openssl(args, { cwd: tmp.dir });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}

/** openssl req with an existing key file (for key types opensslCsr does not make). */
function csrFor(keyFile: string, name: string, extra: readonly string[] = []): string {
  mustOpenssl(['req', '-new', '-key', keyFile, '-out', `${name}.csr`, '-subj', `/CN=${name}`, ...extra]);
  return readFileSync(tmp.path(`${name}.csr`), 'utf8');
}

const pem: Record<string, string> = {};
const der = (name: string) => decodePem(pem[name]!, ['CERTIFICATE REQUEST']);
/** The public key openssl says the request holds, as DER. */
const opensslSpki = (name: string) =>
  decodePem(mustOpenssl(['req', '-in', `${name}.csr`, '-pubkey', '-noout']), ['PUBLIC KEY']);

beforeAll(() => {
  for (const [name, key] of [
    ['rsa2048', 'rsa:2048'],
    ['rsa3072', 'rsa:3072'],
    ['ec', 'ec'],
    ['rsa1024', 'rsa:1024'],
    ['p384', 'ec-p384'],
  ] as const)
    pem[name] = readFileSync(opensslCsr(tmp.dir, name, key).csrPath, 'utf8');
  pem.sha1 = csrFor(tmp.path('rsa2048.key'), 'sha1', ['-sha1']);
  pem.sha512 = csrFor(tmp.path('rsa2048.key'), 'sha512', ['-sha512']);
  mustOpenssl([
    'genpkey',
    '-algorithm',
    'RSA',
    '-pkeyopt',
    'rsa_keygen_bits:2048',
    '-pkeyopt',
    'rsa_keygen_pubexp:3',
    '-out',
    'e3.key',
  ]);
  pem.e3 = csrFor('e3.key', 'e3');
  mustOpenssl(['genpkey', '-algorithm', 'ed25519', '-out', 'ed.key']);
  pem.ed25519 = csrFor('ed.key', 'ed25519');
  mustOpenssl(['genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'pss.key']);
  pem.pss = csrFor('pss.key', 'pss');
});

afterAll(() => tmp.cleanup());

// ---------------------------------------------------------------------------------------------
// Requests built by hand, for what openssl will not make.

const SUBJECT = sequence(set(sequence(oid(OID.commonName), utf8String('hand made'))));

function handMade(
  key: KeyObject,
  opts: { sigOid: string; hash: string; spki?: Buffer; params?: boolean; trailing?: Buffer },
): Buffer {
  const spki = opts.spki ?? createPublicKey(key).export({ type: 'spki', format: 'der' });
  const info = sequence(integer(0), SUBJECT, spki, explicit(0));
  const signature = signData(opts.hash, info, key);
  const alg = opts.params === false ? sequence(oid(opts.sigOid)) : sequence(oid(opts.sigOid), NULL);
  return Buffer.concat([sequence(info, alg, bitString(signature)), opts.trailing ?? Buffer.alloc(0)]);
}

const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ecKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

function expectCsrError(input: Uint8Array | string, message: RegExp) {
  let caught: unknown;
  try {
    verifyCsr(input);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CsrError);
  expect((caught as Error).message).toMatch(message);
}

describe('verifyCsr accepts', () => {
  it.each(['rsa2048', 'rsa3072', 'ec', 'sha512'])(
    'an openssl %s request, PEM or DER, and returns its key',
    (name) => {
      const fromPem = verifyCsr(pem[name]!);
      const fromDer = verifyCsr(der(name));
      expect(fromPem.spki).toEqual(opensslSpki(name));
      expect(fromDer.spki).toEqual(fromPem.spki);
      expect(fromPem.publicKey.export({ type: 'spki', format: 'der' })).toEqual(fromPem.spki);
    },
  );

  it('the NEW CERTIFICATE REQUEST label and CRLF line ends', () => {
    const body = pem
      .ec!.replaceAll('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST')
      .replaceAll('\n', '\r\n');
    expect(verifyCsr(body).spki).toEqual(opensslSpki('ec'));
  });

  it('RSA with SHA-384 and SHA-512, ECDSA P-256 with SHA-384', () => {
    expect(() =>
      verifyCsr(handMade(rsaKey, { sigOid: '1.2.840.113549.1.1.12', hash: 'sha384' })),
    ).not.toThrow();
    expect(() =>
      verifyCsr(handMade(rsaKey, { sigOid: '1.2.840.113549.1.1.13', hash: 'sha512' })),
    ).not.toThrow();
    expect(() =>
      verifyCsr(handMade(ecKey, { sigOid: '1.2.840.10045.4.3.3', hash: 'sha384', params: false })),
    ).not.toThrow();
  });

  it('a compressed P-256 point', () => {
    const spki = createPublicKey(ecKey).export({ type: 'spki', format: 'der' });
    // 0x04 || X || Y → 0x02/0x03 || X
    const point = spki.subarray(spki.length - 65);
    const compressed = Buffer.concat([Buffer.from([2 + (point[64]! & 1)]), point.subarray(1, 33)]);
    const ecAlg = sequence(oid(OID.ecPublicKey), oid(OID.prime256v1));
    const compressedSpki = sequence(ecAlg, bitString(compressed));
    const csr = handMade(ecKey, {
      sigOid: OID.ecdsaWithSHA256,
      hash: 'sha256',
      params: false,
      spki: compressedSpki,
    });
    expect(verifyCsr(csr).spki).toEqual(compressedSpki);
  });
});

describe('verifyCsr refuses, saying why', () => {
  it.each([
    ['RSA-1024', 'rsa1024', /RSA key of 1024 bits is too weak \(2048 at least\)/],
    ['P-384', 'p384', /EC curve secp384r1 is not allowed \(P-256 only\)/],
    [
      'SHA-1 signed',
      'sha1',
      /signature algorithm 1\.2\.840\.113549\.1\.1\.5 is not accepted \(use SHA-256 or better\)/,
    ],
    ['public exponent 3', 'e3', /RSA public exponent 3 is not allowed/],
    ['Ed25519', 'ed25519', /signature algorithm 1\.3\.101\.112 is not accepted/],
    ['RSA-PSS', 'pss', /signature algorithm 1\.2\.840\.113549\.1\.1\.10 is not accepted/],
  ])('%s', (_, name, message) => {
    expectCsrError(pem[name]!, message);
    expectCsrError(der(name), message);
  });

  it('a tampered signature (no proof of possession)', () => {
    for (const name of ['rsa2048', 'ec']) {
      const bytes = der(name);
      bytes[bytes.length - 3]! ^= 0x40;
      expectCsrError(bytes, /signature does not verify \(no proof of possession\)/);
    }
  });

  it('a request signed by another key than the one it holds', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const spki = createPublicKey(rsaKey).export({ type: 'spki', format: 'der' });
    const csr = handMade(other, { sigOid: OID.sha256WithRSAEncryption, hash: 'sha256', spki });
    expectCsrError(csr, /signature does not verify/);
  });

  it('a signature algorithm that does not match the key', () => {
    const csr = handMade(ecKey, { sigOid: OID.sha256WithRSAEncryption, hash: 'sha256' });
    expectCsrError(csr, /signature algorithm does not match its key/);
  });

  it('MD5 and SHA-1 with RSA, ECDSA with SHA-1', () => {
    expectCsrError(
      handMade(rsaKey, { sigOid: '1.2.840.113549.1.1.4', hash: 'md5' }),
      /1\.2\.840\.113549\.1\.1\.4 is not accepted/,
    );
    expectCsrError(handMade(rsaKey, { sigOid: OID.sha1WithRSAEncryption, hash: 'sha1' }), /is not accepted/);
    expectCsrError(
      handMade(ecKey, { sigOid: '1.2.840.10045.4.1', hash: 'sha1', params: false }),
      /is not accepted/,
    );
  });

  it('a public key that is not DER (it would be copied into the certificate as is)', () => {
    const spki = createPublicKey(ecKey).export({ type: 'spki', format: 'der' });
    // the same key with a long-form length on the outer SEQUENCE: OpenSSL parses it
    const longForm = Buffer.concat([Buffer.from([0x30, 0x81, spki[1]!]), spki.subarray(2)]);
    expect(createPublicKey({ key: longForm, format: 'der', type: 'spki' }).type).toBe('public');
    const csr = handMade(ecKey, {
      sigOid: OID.ecdsaWithSHA256,
      hash: 'sha256',
      params: false,
      spki: longForm,
    });
    expectCsrError(csr, /public key in the request is not DER/);
    // an RSA key without the NULL parameters RFC 3279 requires
    const rsaSpki = createPublicKey(rsaKey).export({ type: 'spki', format: 'der' });
    const bits = rsaSpki.subarray(rsaSpki.indexOf(Buffer.from([0x03, 0x82])));
    const noNull = sequence(sequence(oid(OID.rsaEncryption)), bits);
    expectCsrError(
      handMade(rsaKey, { sigOid: OID.sha256WithRSAEncryption, hash: 'sha256', spki: noNull }),
      /not DER/,
    );
  });

  it('a malformed public key', () => {
    const bogus = sequence(
      sequence(oid(OID.rsaEncryption), NULL),
      bitString(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])),
    );
    const info = sequence(integer(0), SUBJECT, bogus, explicit(0));
    const csr = sequence(
      info,
      sequence(oid(OID.sha256WithRSAEncryption), NULL),
      bitString(Buffer.alloc(256, 1)),
    );
    expectCsrError(csr, /public key in the request is malformed/);
  });

  it('trailing bytes, truncation, emptiness, excess size, wrong PEM labels', () => {
    expectCsrError(Buffer.concat([der('ec'), Buffer.from([0])]), /not valid PKCS#10 DER/);
    expectCsrError(der('ec').subarray(0, 100), /not valid PKCS#10 DER/);
    expectCsrError(Buffer.alloc(0), /empty/);
    expectCsrError(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30), /larger than 16384 bytes/);
    expectCsrError('', /no CERTIFICATE REQUEST PEM block found/);
    expectCsrError(
      pem.ec!.replaceAll('CERTIFICATE REQUEST', 'CERTIFICATE'),
      /no CERTIFICATE REQUEST PEM block/,
    );
    expectCsrError(pem.ec!.replace(/\n[A-Za-z0-9]/, '\n@'), /damaged base64/);
    expectCsrError(encodePem('CERTIFICATE REQUEST', Buffer.from('not a request')), /not valid PKCS#10 DER/);
    // a certificate is not a request, even under the right label
    const cert = decodePem(
      mustOpenssl(['req', '-x509', '-key', 'rsa2048.key', '-subj', '/CN=x', '-days', '1']),
      ['CERTIFICATE'],
    );
    expectCsrError(encodePem('CERTIFICATE REQUEST', cert), /not valid PKCS#10 DER/);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties: any input is answered, never with an error of another kind.

/** verifyCsr's outcome: 'ok', or the CsrError; anything else fails the property. */
function outcome(input: Uint8Array | string): 'ok' | 'refused' {
  try {
    verifyCsr(input);
    return 'ok';
  } catch (e) {
    if (e instanceof CsrError) return 'refused';
    throw new Error(`verifyCsr threw ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'set'; at: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  // length and tag bytes are where parsers break: set a byte to a boundary value
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.constantFrom(0x00, 0x7f, 0x80, 0x81, 0x84, 0xff, 0x30, 0xa0),
  }),
);

function mutate(input: Buffer, ms: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.kind) {
      case 'flip':
        if (b.length) b[at]! ^= 1 << m.bit;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'set':
        if (b.length) b[at] = m.value;
        break;
    }
  }
  return b;
}

describe('verifyCsr on arbitrary input (properties)', () => {
  it('random bytes: refused with CsrError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(outcome(bytes)).toBe('refused');
      }),
      { numRuns: 1000 },
    );
  });

  it('random DER-looking bytes (a SEQUENCE header then anything): refused with CsrError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (body) => {
        const bytes = Buffer.concat([sequence(Buffer.from(body))]);
        expect(outcome(bytes)).toBe('refused');
      }),
      { numRuns: 500 },
    );
  });

  it('random text, and PEM armour around random bytes: refused with CsrError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (text, bytes) => {
        expect(outcome(text)).toBe('refused');
        expect(outcome(encodePem('CERTIFICATE REQUEST', bytes))).toBe('refused');
      }),
      { numRuns: 500 },
    );
  });

  it.each(['rsa2048', 'ec'])(
    'mutations of a valid %s request: a result or a CsrError, and a mutated key never passes',
    (name) => {
      const original = der(name);
      const originalSpki = verifyCsr(original).spki;
      let accepted = 0;
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
          const bytes = mutate(original, ms);
          let result: ReturnType<typeof verifyCsr> | undefined;
          try {
            result = verifyCsr(bytes);
          } catch (e) {
            if (!(e instanceof CsrError)) throw e;
          }
          if (result) {
            accepted++;
            // whatever was changed, the key that passes is still the one whose owner signed
            expect(result.spki).toEqual(originalSpki);
          }
          // and as PEM text too
          expect(outcome(encodePem('CERTIFICATE REQUEST', bytes))).toBe(result ? 'ok' : 'refused');
        }),
        { numRuns: 400 },
      );
      // most mutations break the structure or the signature; the few accepted ones only touched
      // bytes outside what was signed (and the key came out the same, above)
      expect(accepted).toBeLessThan(100);
    },
  );

  it('mutations of the PEM text: a result or a CsrError', () => {
    const text = pem.rsa2048!;
    fc.assert(
      fc.property(fc.nat(), fc.string({ maxLength: 4 }), fc.nat({ max: 8 }), (at, insert, del) => {
        const i = at % text.length;
        outcome(text.slice(0, i) + insert + text.slice(i + del));
      }),
      { numRuns: 500 },
    );
  });

  it('a key of any size or type openssl can describe: accepted only within the policy', () => {
    // node-generated keys rather than openssl: same rules, much faster
    const cases: [KeyObject, string, boolean][] = [
      [createPrivateKey(readFileSync(tmp.path('rsa2048.key'))), OID.sha256WithRSAEncryption, true],
      [generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey, OID.ecdsaWithSHA256, false],
      [generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey, OID.ecdsaWithSHA256, false],
      [generateKeyPairSync('rsa', { modulusLength: 2040 }).privateKey, OID.sha256WithRSAEncryption, false],
    ];
    for (const [key, sigOid, ok] of cases) {
      const csr = handMade(key, { sigOid, hash: 'sha256', params: sigOid === OID.sha256WithRSAEncryption });
      expect(outcome(csr)).toBe(ok ? 'ok' : 'refused');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The key: RSA and P-256 keys in canonical DER are imported from their parts (a JWK), everything
// else through OpenSSL's SPKI decoder. Both must come to the same verdict on any input.

/** What the DER import alone says about an SPKI: the key policy, then the DER check. */
function viaDerImport(spki: Buffer): string {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return 'the public key in the request is malformed';
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < 2048) return `RSA key of ${bits} bits is too weak (2048 at least)`;
    if (bits > 8192) return `RSA key of ${bits} bits is larger than allowed (8192)`;
    const e = d.publicExponent ?? 0n;
    if (e < 65537n || e % 2n === 0n) return `RSA public exponent ${e} is not allowed`;
  } else if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve !== 'prime256v1') return `EC curve ${d.namedCurve ?? '?'} is not allowed (P-256 only)`;
  } else return `key type ${key.asymmetricKeyType ?? 'unknown'} is not allowed (RSA-2048+ or ECDSA P-256)`;
  if (!key.export({ type: 'spki', format: 'der' }).equals(spki))
    return 'the public key in the request is not DER-encoded';
  return `ok ${key.export({ type: 'spki', format: 'der' }).toString('hex')}`;
}

function viaCheckSubjectKey(spki: Buffer): string {
  try {
    return `ok ${checkSubjectKey(spki).export({ type: 'spki', format: 'der' }).toString('hex')}`;
  } catch (e) {
    if (e instanceof CsrError) return e.message;
    throw e;
  }
}

describe('checkSubjectKey', () => {
  const rsa2048 = createPublicKey(rsaKey).export({ type: 'spki', format: 'der' });
  const p256 = createPublicKey(ecKey).export({ type: 'spki', format: 'der' });
  const rsaE3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
    type: 'spki',
    format: 'der',
  });

  it('agrees with the DER import on well-formed keys', () => {
    for (const spki of [rsa2048, p256, rsaE3, rsa1024]) {
      expect(viaCheckSubjectKey(spki)).toBe(viaDerImport(spki));
    }
    expect(viaCheckSubjectKey(rsa2048)).toBe(`ok ${rsa2048.toString('hex')}`);
    expect(viaCheckSubjectKey(p256)).toBe(`ok ${p256.toString('hex')}`);
  });

  it('agrees with the DER import on non-canonical encodings of the same keys', () => {
    // RSAPublicKey with a superfluous leading 00 on the exponent, and with a long-form length
    const rsaBits = readChildren(rsa2048, readTlv(rsa2048, 0))[1]!;
    const inner = rsa2048.subarray(rsaBits.contentStart + 1, rsaBits.end);
    const [n, e] = readChildren(inner, readTlv(inner, 0));
    const modulus = inner.subarray(n!.start, n!.end);
    const exponent = inner.subarray(e!.contentStart, e!.end);
    const rsaAlg = sequence(oid(OID.rsaEncryption), NULL);
    const variants = [
      sequence(rsaAlg, bitString(sequence(modulus, tlv(0x02, Buffer.concat([Buffer.from([0]), exponent]))))),
      sequence(rsaAlg, bitString(Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x0a]), inner.subarray(4)]))),
      sequence(sequence(oid(OID.rsaEncryption)), bitString(inner)),
      sequence(rsaAlg, bitString(inner, 1)),
      Buffer.concat([Buffer.from([0x30, 0x81, p256[1]!]), p256.subarray(2)]),
      Buffer.concat([Buffer.from([0x31]), rsa2048.subarray(1)]), // a SET, not a SEQUENCE
      Buffer.concat([rsa2048, Buffer.from([0])]), // a trailing byte
    ];
    for (const spki of variants) expect(viaCheckSubjectKey(spki)).toBe(viaDerImport(spki));
  });

  it('agrees with the DER import on mutated keys (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(rsa2048, p256, rsaE3),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (spki, ms) => {
          const bytes = mutate(spki, ms);
          expect(viaCheckSubjectKey(bytes)).toBe(viaDerImport(bytes));
        },
      ),
      { numRuns: 1500 },
    );
  });
});
