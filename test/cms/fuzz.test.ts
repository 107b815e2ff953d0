// Property tests: random and mutated input never makes the CMS / time-stamp code throw anything but
// its typed errors; the verifiers never throw at all, they report a failure.

import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asn1FormatError } from '../../src/core/cms/asn1.ts';
import { addSignatureTimeStamp, CmsError, signCms, verifyCms } from '../../src/core/cms/index.ts';
import { explicit, oid, sequence } from '../../src/core/der.ts';
import { OID } from '../../src/core/oids.ts';
import { newSerial } from '../../src/core/serial.ts';
import {
  buildTimeStampRequest,
  buildTimeStampResponse,
  parseTimeStampRequest,
  parseTimeStampResponse,
  TimeStampRequestError,
  verifyTimeStampResponse,
  verifyTimeStampToken,
} from '../../src/core/tsp/index.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { makePki } from './pki.ts';

const SUB_INDICATIONS = [
  'FORMAT_FAILURE',
  'HASH_FAILURE',
  'SIG_CRYPTO_FAILURE',
  'NO_SIGNING_CERTIFICATE_FOUND',
  'SIGNED_DATA_NOT_FOUND',
];

/** JPKI_FUZZ_SCALE=20 runs twenty times as many cases. */
const SCALE = Number(process.env.JPKI_FUZZ_SCALE ?? 1);

let tmp: ReturnType<typeof tempDir>;
const samples: Record<string, Buffer> = {};

beforeAll(async () => {
  tmp = tempDir('jpki-cms-fuzz-');
  const pki = makePki(tmp.dir);
  const content = Buffer.from('fuzz me\n');
  writeFileSync(tmp.path('data.bin'), content);
  samples.ours = await signCms({ signer: pki.ec.signer, certificate: pki.ec.der, content, detached: false });
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
      '-in',
      'data.bin',
      '-outform',
      'DER',
      '-out',
      'ber.der',
    ],
    { cwd: tmp.dir },
  );
  if (r.status !== 0) throw new Error(r.output);
  samples.ber = readFileSync(tmp.path('ber.der'));
  samples.request = buildTimeStampRequest({
    digest: Buffer.alloc(32, 7),
    hashAlgorithm: 'sha256',
    nonce: Buffer.from([1, 2, 3]),
    certReq: true,
  });
  samples.response = await buildTimeStampResponse({
    signer: pki.tsa.signer,
    tsaCertificate: pki.tsa.der,
    policy: '1.2.3.4',
    request: parseTimeStampRequest(samples.request),
    serial: newSerial(),
    genTime: new Date(),
    accuracySeconds: 2,
  });
  samples.token = parseTimeStampResponse(samples.response).token!;
});
afterAll(() => tmp?.cleanup());

/** Byte-level mutations: flips, overwrites, deletions, insertions, truncation. */
const mutations = fc.array(
  fc.record({
    at: fc.nat(),
    op: fc.constantFrom('flip', 'set', 'delete', 'insert', 'truncate'),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  { minLength: 1, maxLength: 6 },
);

function mutate(base: Buffer, ms: { at: number; op: string; value: number }[]): Buffer {
  let b = Buffer.from(base);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.op === 'flip') b[at]! ^= 1 << (m.value % 8);
    else if (m.op === 'set') b[at] = m.value;
    else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else if (m.op === 'insert')
      b = Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
    else b = b.subarray(0, at);
  }
  return b;
}

/** Random BER-ish trees: plausible tags, definite and indefinite lengths. */
const tree: fc.Arbitrary<Buffer> = fc.letrec<{ node: Buffer }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .tuple(
        fc.constantFrom(0x02, 0x04, 0x05, 0x06, 0x17, 0x18, 0x80, 0x01, 0x03),
        fc.uint8Array({ maxLength: 40 }),
      )
      .map(([tag, body]) => Buffer.concat([Buffer.from([tag, body.length]), body])),
    fc
      .tuple(
        fc.constantFrom(0x30, 0x31, 0xa0, 0xa1, 0x24),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.boolean(),
      )
      .map(([tag, kids, indefinite]) => {
        const body = Buffer.concat(kids);
        if (indefinite) return Buffer.concat([Buffer.from([tag, 0x80]), body, Buffer.from([0, 0])]);
        const len =
          body.length < 0x80
            ? Buffer.from([body.length])
            : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
        return Buffer.concat([Buffer.from([tag]), len, body]);
      }),
  ),
})).node;

function checkVerifyCms(der: Buffer): void {
  const v = verifyCms(der, { detachedContent: Buffer.from('fuzz me\n') });
  expect(['valid', 'failed']).toContain(v.status);
  if (v.status === 'failed') expect(SUB_INDICATIONS).toContain(v.subIndication);
  for (const t of v.timeStamps) expect(typeof t.valid).toBe('boolean');
}

function onlyTyped(f: () => unknown, ...types: (new (...args: never[]) => Error)[]): void {
  try {
    f();
  } catch (e) {
    if (!types.some((t) => e instanceof t)) throw e;
  }
}

describe('fuzzing', () => {
  it('verifyCms never throws on random bytes or random ASN.1 trees', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const v = verifyCms(Buffer.from(bytes));
        expect(v.status).toBe('failed');
        expect(v.subIndication).toBe('FORMAT_FAILURE');
      }),
      { numRuns: 500 * SCALE },
    );
    fc.assert(
      fc.property(tree, (t) => {
        checkVerifyCms(t);
        // the same tree inside a ContentInfo of type SignedData, to get past the first checks
        checkVerifyCms(sequence(oid(OID.signedData), explicit(0, t)));
      }),
      { numRuns: 500 * SCALE },
    );
  });

  it('verifyCms and addSignatureTimeStamp on mutated signatures (DER and BER)', () => {
    fc.assert(
      fc.property(fc.constantFrom('ours', 'ber'), mutations, (name, ms) => {
        const m = mutate(samples[name]!, ms);
        checkVerifyCms(m);
        onlyTyped(() => addSignatureTimeStamp(m, samples.token!), CmsError);
      }),
      { numRuns: 1500 * SCALE },
    );
  });

  it('time-stamp tokens, responses and requests, mutated', () => {
    fc.assert(
      fc.property(mutations, (ms) => {
        const token = mutate(samples.token!, ms);
        const t = verifyTimeStampToken(token, { data: Buffer.alloc(1) });
        expect(typeof t.valid).toBe('boolean');
        const resp = mutate(samples.response!, ms);
        const r = verifyTimeStampResponse(resp, samples.request!);
        expect(typeof r.valid).toBe('boolean');
        onlyTyped(() => parseTimeStampResponse(resp), Asn1FormatError);
        onlyTyped(() => parseTimeStampRequest(mutate(samples.request!, ms)), TimeStampRequestError);
        // a CMS signature with a mutated token in it
        onlyTyped(() => checkVerifyCms(addSignatureTimeStamp(samples.ours!, token)), CmsError);
      }),
      { numRuns: 1500 * SCALE },
    );
    fc.assert(
      fc.property(tree, (t) => {
        onlyTyped(() => parseTimeStampRequest(t), TimeStampRequestError);
        onlyTyped(() => parseTimeStampResponse(t), Asn1FormatError);
        expect(verifyTimeStampToken(t).valid).toBe(false);
      }),
      { numRuns: 500 * SCALE },
    );
  });
});
