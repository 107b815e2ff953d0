// Signature algorithms beyond the NIST data (RSA PKCS#1 v1.5 and DSA there): RSA-PSS, ECDSA P-384
// with SHA-384, Ed25519, each made by openssl; and the caches of the hot path.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PkiCache, validatePath } from '../../src/core/path/index.ts';
import { decodePem } from '../../src/core/pem.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { makeCert } from './helpers.ts';

const tmp = tempDir('jpki-alg-');
const der = (name: string) => decodePem(readFileSync(tmp.path(name), 'utf8'), ['CERTIFICATE']);

function run(args: string[]) {
  const r = openssl(args, { cwd: tmp.dir });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.output}`);
}

/** A root of the given key type and a leaf it signs, with extra signing options. */
function pair(prefix: string, keyArgs: string[], signArgs: string[]) {
  run([
    'req',
    '-x509',
    '-new',
    ...keyArgs,
    '-nodes',
    '-keyout',
    `${prefix}-ca.key`,
    '-out',
    `${prefix}-ca.pem`,
    '-subj',
    `/CN=${prefix} Root`,
    ...signArgs,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  run([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${prefix}-ee.key`,
    '-out',
    `${prefix}-ee.csr`,
    '-subj',
    `/CN=${prefix} leaf`,
  ]);
  run([
    'x509',
    '-req',
    '-in',
    `${prefix}-ee.csr`,
    '-CA',
    `${prefix}-ca.pem`,
    '-CAkey',
    `${prefix}-ca.key`,
    '-out',
    `${prefix}-ee.pem`,
    '-days',
    '30',
    ...signArgs,
  ]);
  return { root: der(`${prefix}-ca.pem`), leaf: der(`${prefix}-ee.pem`) };
}

describe('signature algorithms', () => {
  afterAll(() => tmp.cleanup());
  const cases: [string, string[], string[]][] = [
    [
      'pss',
      ['-newkey', 'rsa:2048'],
      ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'],
    ],
    ['p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], ['-sha384']],
    ['ed25519', ['-newkey', 'ed25519'], []],
  ];
  it.each(cases)('%s: a leaf validates, a tampered one does not', (prefix, keyArgs, signArgs) => {
    const { root, leaf } = pair(prefix, keyArgs, signArgs);
    const input = { trustAnchors: [root], at: new Date(), options: { checkRevocation: false } };
    const ok = validatePath({ ...input, target: leaf });
    expect(ok.indication, ok.message).toBe('TOTAL_PASSED');
    // change one byte of the subject public key inside the signed part
    const tampered = Buffer.from(leaf);
    tampered[tampered.length - 120]! ^= 1;
    const bad = validatePath({ ...input, target: tampered });
    expect(bad.indication).not.toBe('TOTAL_PASSED');
  });
});

describe('caches', () => {
  let root: Awaited<ReturnType<typeof makeCert>>;
  let ca: Awaited<ReturnType<typeof makeCert>>;
  beforeAll(async () => {
    root = await makeCert({ subject: [['CN', 'Cache Root']], ca: true });
    ca = await makeCert({ subject: [['CN', 'Cache CA']], issuer: root, ca: true });
  });

  it('each certificate is parsed and each signature verified once', async () => {
    const cache = new PkiCache();
    const leaves = await Promise.all(
      [1, 2, 3].map((i) => makeCert({ subject: [['CN', `leaf ${i}`]], issuer: ca })),
    );
    const validate = (leaf: Buffer) =>
      validatePath({
        target: leaf,
        intermediates: [ca.der],
        trustAnchors: [root.der],
        at: new Date(),
        options: { cache, checkRevocation: false },
      });
    expect(validate(leaves[0]!.der).indication).toBe('TOTAL_PASSED');
    const certs = cache.certificates.size;
    const sigs = cache.signatures.size;
    expect(certs).toBe(3);
    expect(validate(leaves[0]!.der).indication).toBe('TOTAL_PASSED');
    expect(cache.certificates.size).toBe(certs);
    expect(cache.signatures.size).toBe(sigs);
    validate(leaves[1]!.der);
    validate(leaves[2]!.der);
    expect(cache.certificates.size).toBe(certs + 2);
    expect(cache.signatures.size).toBe(sigs + 2); // only the new leaves' signatures
  });
});
