import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readChildren, readTlv } from '../../src/core/der.ts';
import type { Signer } from '../../src/core/signer.ts';
import { KeyExistsError, KeyNotFoundError } from '../../src/keys/keystore.ts';
import { ecPointCoordinates, Pkcs11KeyStore, resolvePkcs11Pin } from '../../src/keys/pkcs11.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';

const spkiKey = (s: Signer) => createPublicKey({ key: s.publicKeySpki, format: 'der', type: 'spki' });
const verifies = (s: Signer, data: Buffer, sig: Buffer) => verify('sha256', data, spkiKey(s), sig);

/** Reads attributes of the key pair labelled `label` through an independent pkcs11js handle. */
function readKeyObjects(token: SoftHsmToken, label: string, secrets: number[]) {
  const lib = new pkcs11js.PKCS11();
  lib.load(token.module);
  try {
    lib.C_Initialize();
  } catch (e) {
    // The store under test initialised the library for this process; we must not finalise it.
    if ((e as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
  }
  const slot = lib
    .C_GetSlotList(true)
    .find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === token.tokenLabel);
  if (!slot) throw new Error('token not found');
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    // Login state is per application: the store is logged in, so private objects are visible.
    const find = (cls: number) => {
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: cls },
        { type: pkcs11js.CKA_LABEL, value: Buffer.from(label) },
      ]);
      const found = lib.C_FindObjects(session, 10);
      lib.C_FindObjectsFinal(session);
      return found;
    };
    const read = (object: Buffer, types: number[]) =>
      Object.fromEntries(
        lib
          .C_GetAttributeValue(
            session,
            object,
            types.map((type) => ({ type })),
          )
          .map((a) => [a.type, a.value]),
      ) as Record<number, Buffer>;
    const privs = find(pkcs11js.CKO_PRIVATE_KEY);
    const pubs = find(pkcs11js.CKO_PUBLIC_KEY);
    const priv = read(privs[0]!, [
      pkcs11js.CKA_TOKEN,
      pkcs11js.CKA_PRIVATE,
      pkcs11js.CKA_SENSITIVE,
      pkcs11js.CKA_EXTRACTABLE,
      pkcs11js.CKA_ALWAYS_SENSITIVE,
      pkcs11js.CKA_NEVER_EXTRACTABLE,
      pkcs11js.CKA_SIGN,
      pkcs11js.CKA_ID,
      pkcs11js.CKA_LABEL,
    ]);
    const pub = read(pubs[0]!, [pkcs11js.CKA_TOKEN, pkcs11js.CKA_ID, pkcs11js.CKA_LABEL]);
    // The secret parts (RSA: private exponent and primes; EC: the private value) must be refused.
    const secretErrors = secrets.map((type) => {
      try {
        lib.C_GetAttributeValue(session, privs[0]!, [{ type }]);
        return 'readable';
      } catch (e) {
        return (e as Error).message;
      }
    });
    return { privateCount: privs.length, publicCount: pubs.length, priv, pub, secretErrors };
  } finally {
    lib.C_CloseSession(session);
    lib.close();
  }
}

const required = process.env.JPKI_TEST_PKCS11 === '1';

// Skipped only when SoftHSM2 (libsofthsm2.so and softhsm2-util) is not installed on this machine and
// JPKI_TEST_PKCS11=1 is not set; with JPKI_TEST_PKCS11=1 a missing SoftHSM2 fails the suite instead.
describe.skipIf(!required && !softHsmAvailable())('Pkcs11KeyStore on SoftHSM2', () => {
  let token: SoftHsmToken;
  let other: SoftHsmToken;
  let store: Pkcs11KeyStore;
  let rsa: Signer;
  let ec: Signer;
  const options = () => ({ module: token.module, tokenLabel: token.tokenLabel, pin: token.pin });

  beforeAll(async () => {
    // Both tokens before the library is initialised: SoftHSM only scans its token directory then.
    token = await createSoftHsmToken();
    other = await createSoftHsmToken();
    store = new Pkcs11KeyStore(options());
  });

  afterAll(async () => {
    await store?.close();
    await other?.cleanup();
    await token?.cleanup();
  });

  it('generates an RSA-2048 key (e = 65537) on the token whose signatures verify against its SPKI', async () => {
    expect(await store.has('ca-rsa')).toBe(false);
    rsa = await store.generate('ca-rsa', 'rsa-2048');
    expect(rsa.algorithm).toBe('rsa-2048');
    const key = spkiKey(rsa);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(key.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    expect((rsa as { mechanism?: string }).mechanism).toBe('CKM_SHA256_RSA_PKCS');
    const data = Buffer.from('tbsCertificate');
    const sig = await rsa.sign(data);
    expect(sig.length).toBe(256);
    expect(verifies(rsa, data, sig)).toBe(true);
    expect(verifies(rsa, Buffer.from('tbsCertificatf'), sig)).toBe(false);
    expect(await store.has('ca-rsa')).toBe(true);
  });

  it('generates an EC P-256 key whose signatures are DER Ecdsa-Sig-Values that verify', async () => {
    ec = await store.generate('ocsp-ec', 'ecdsa-p256');
    expect(ec.algorithm).toBe('ecdsa-p256');
    const key = spkiKey(ec);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    // SoftHSM 2.6 has no CKM_ECDSA_SHA256: then SHA-256 is computed here and the token does CKM_ECDSA.
    expect((ec as { mechanism?: string }).mechanism).toMatch(/^CKM_ECDSA/);
    const data = Buffer.from('tbsResponseData');
    for (let i = 0; i < 8; i++) {
      const sig = await ec.sign(data);
      // SEQUENCE { INTEGER r, INTEGER s }, nothing else
      const seq = readTlv(sig);
      expect(seq.tag).toBe(0x30);
      expect(seq.end).toBe(sig.length);
      const parts = readChildren(sig, seq);
      expect(parts.map((p) => p.tag)).toEqual([0x02, 0x02]);
      expect(verify('sha256', data, key, sig)).toBe(true);
      expect(verify('sha256', Buffer.from('tbsResponseDatb'), key, sig)).toBe(false);
    }
  });

  it('keeps the private keys on the token: sensitive, never extractable, same CKA_LABEL and CKA_ID as the public key', () => {
    const cases: [string, number[]][] = [
      ['ca-rsa', [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1, pkcs11js.CKA_PRIME_2]],
      ['ocsp-ec', [pkcs11js.CKA_VALUE]],
    ];
    for (const [label, secrets] of cases) {
      const o = readKeyObjects(token, label, secrets);
      expect(o.privateCount).toBe(1);
      expect(o.publicCount).toBe(1);
      expect(o.priv[pkcs11js.CKA_TOKEN]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_PRIVATE]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_SENSITIVE]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_EXTRACTABLE]).toEqual(Buffer.from([0]));
      expect(o.priv[pkcs11js.CKA_ALWAYS_SENSITIVE]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_NEVER_EXTRACTABLE]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_SIGN]).toEqual(Buffer.from([1]));
      expect(o.pub[pkcs11js.CKA_TOKEN]).toEqual(Buffer.from([1]));
      expect(o.priv[pkcs11js.CKA_LABEL]?.toString()).toBe(label);
      expect(o.pub[pkcs11js.CKA_LABEL]?.toString()).toBe(label);
      expect(o.priv[pkcs11js.CKA_ID]?.length).toBeGreaterThan(0);
      expect(o.pub[pkcs11js.CKA_ID]).toEqual(o.priv[pkcs11js.CKA_ID]);
      for (const error of o.secretErrors) expect(error).toBe('CKR_ATTRIBUTE_SENSITIVE');
    }
  });

  it('refuses to overwrite an existing label and leaves the original key working', async () => {
    await expect(store.generate('ca-rsa', 'rsa-2048')).rejects.toBeInstanceOf(KeyExistsError);
    await expect(store.generate('ca-rsa', 'ecdsa-p256')).rejects.toBeInstanceOf(KeyExistsError);
    await expect(store.generate('ocsp-ec', 'ecdsa-p256')).rejects.toBeInstanceOf(KeyExistsError);
    expect(readKeyObjects(token, 'ca-rsa', []).privateCount).toBe(1);
    const reopened = await store.open('ca-rsa');
    expect(reopened.publicKeySpki).toEqual(rsa.publicKeySpki);
    const data = Buffer.from('still the same key');
    expect(verifies(rsa, data, await rsa.sign(data))).toBe(true);
    expect(verifies(rsa, data, await reopened.sign(data))).toBe(true);
  });

  it('has() and open() of unknown labels', async () => {
    expect(await store.has('no-such-key')).toBe(false);
    await expect(store.open('no-such-key')).rejects.toBeInstanceOf(KeyNotFoundError);
    await expect(store.open('')).rejects.toThrow(/invalid key label/);
  });

  it('signs empty input (SoftHSM rejects empty C_SignUpdate parts, so they are skipped)', async () => {
    const empty = Buffer.alloc(0);
    expect(verifies(rsa, empty, await rsa.sign(empty))).toBe(true);
    expect(verifies(ec, empty, await ec.sign(empty))).toBe(true);
    expect(verifies(rsa, empty, await rsa.sign([empty, empty]))).toBe(true);
  });

  it('signs chunked input as the concatenation of the chunks', async () => {
    const chunks = [
      Buffer.from('a'),
      Buffer.alloc(0),
      randomBytes(3 * 1024 * 1024 + 17), // larger than one C_SignUpdate piece
      randomBytes(1000),
      Buffer.alloc(0),
      Buffer.from('z'),
    ];
    const whole = Buffer.concat(chunks);
    const rsaChunked = await rsa.sign(chunks);
    expect(verifies(rsa, whole, rsaChunked)).toBe(true);
    // PKCS#1 v1.5 is deterministic: streaming must give exactly the one-shot signature.
    expect(rsaChunked).toEqual(await rsa.sign(whole));
    expect(verifies(ec, whole, await ec.sign(chunks))).toBe(true);
    expect(verifies(ec, whole, await ec.sign(whole))).toBe(true);
  });

  it('streams a 50 MB CRL-sized input in 1 MB chunks', async () => {
    const block = randomBytes(1024 * 1024);
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.concat([Buffer.from([i]), block.subarray(1)]));
    const whole = Buffer.concat(chunks);
    expect(verifies(rsa, whole, await rsa.sign(chunks))).toBe(true);
    expect(verifies(ec, whole, await ec.sign(chunks))).toBe(true);
  });

  it('serialises 20 concurrent sign() calls on one session; every signature verifies', async () => {
    const jobs = Array.from({ length: 20 }, (_, i) => {
      const signer = i % 2 ? ec : rsa;
      const data =
        i % 5 === 0 ? [randomBytes(2 * 1024 * 1024), Buffer.from(`job ${i}`)] : [Buffer.from(`job ${i}`)];
      return signer.sign(data).then((sig) => ({ signer, data: Buffer.concat(data), sig }));
    });
    const results = await Promise.all(jobs);
    expect(results).toHaveLength(20);
    for (const r of results) expect(verifies(r.signer, r.data, r.sig)).toBe(true);
  });

  it('shares the library with a second store on the same token; closing one leaves the other working', async () => {
    const second = new Pkcs11KeyStore(options());
    const ec2 = await second.open('ocsp-ec');
    expect(ec2.publicKeySpki).toEqual(ec.publicKeySpki);
    const data = Buffer.from('two stores');
    const [a, b] = await Promise.all([ec.sign(data), ec2.sign(data)]);
    expect(verifies(ec, data, a!)).toBe(true);
    expect(verifies(ec, data, b!)).toBe(true);
    // A different PIN must not ride on the login the first store holds.
    expect(() => new Pkcs11KeyStore({ ...options(), pin: '9999' })).toThrow(/different PIN/);
    await second.close();
    await expect(ec2.sign(data)).rejects.toThrow(/closed/);
    expect(verifies(ec, data, await ec.sign(data))).toBe(true);
    expect(verifies(rsa, data, await rsa.sign(data))).toBe(true);
  });

  it('after close() (twice) and a new store with a new session, open() gives the same SPKI', async () => {
    const rsaSpki = rsa.publicKeySpki;
    const ecSpki = ec.publicKeySpki;
    await store.close();
    await store.close();
    await expect(rsa.sign(Buffer.from('x'))).rejects.toThrow(/closed/);
    await expect(store.has('ca-rsa')).rejects.toThrow(/closed/);

    store = new Pkcs11KeyStore(options());
    const rsa2 = await store.open('ca-rsa');
    const ec2 = await store.open('ocsp-ec');
    expect(rsa2.publicKeySpki).toEqual(rsaSpki);
    expect(ec2.publicKeySpki).toEqual(ecSpki);
    expect(rsa2.algorithm).toBe('rsa-2048');
    expect(ec2.algorithm).toBe('ecdsa-p256');
    const data = Buffer.from('after reopening');
    expect(verifies(rsa2, data, await rsa2.sign(data))).toBe(true);
    expect(verifies(ec2, data, await ec2.sign(data))).toBe(true);
    await expect(store.generate('ca-rsa', 'rsa-2048')).rejects.toBeInstanceOf(KeyExistsError);
    rsa = rsa2;
    ec = ec2;
  });

  it('reports a wrong PIN clearly', () => {
    // `other` has no store logged in, so the token itself checks the PIN.
    const attempt = () =>
      new Pkcs11KeyStore({ module: other.module, tokenLabel: other.tokenLabel, pin: '0000' });
    expect(attempt).toThrow(`PKCS#11: wrong PIN for token "${other.tokenLabel}"`);
    // and the right one still works afterwards
    const ok = new Pkcs11KeyStore({ module: other.module, tokenLabel: other.tokenLabel, pin: other.pin });
    return ok.close();
  });

  it('reports an unknown token label with the labels present, and a missing module', () => {
    const unknown = () => new Pkcs11KeyStore({ ...options(), tokenLabel: 'no-such-token' });
    expect(unknown).toThrow(
      `PKCS#11: no token labelled "no-such-token" in ${token.module}; tokens present: `,
    );
    expect(unknown).toThrow(`"${token.tokenLabel}"`);
    expect(unknown).toThrow(`"${other.tokenLabel}"`);
    expect(() => new Pkcs11KeyStore({ ...options(), module: '/nonexistent/libpkcs11.so' })).toThrow(
      'PKCS#11 module not found: /nonexistent/libpkcs11.so',
    );
    expect(() => new Pkcs11KeyStore({ ...options(), pin: '' })).toThrow(/no PIN/);
    // the store that is open is unaffected by the failed constructions
    return expect(store.has('ca-rsa')).resolves.toBe(true);
  });

  it('keys generated on one token are not visible on another', async () => {
    const s = new Pkcs11KeyStore({ module: other.module, tokenLabel: other.tokenLabel, pin: other.pin });
    try {
      expect(await s.has('ca-rsa')).toBe(false);
      const k = await s.generate('ca-rsa', 'ecdsa-p256');
      expect(k.publicKeySpki).not.toEqual(rsa.publicKeySpki);
      expect((await store.open('ca-rsa')).algorithm).toBe('rsa-2048');
    } finally {
      await s.close();
    }
  });
});

describe('resolvePkcs11Pin', () => {
  it('prefers JPKI_PKCS11_PIN, then the file in JPKI_PKCS11_PIN_FILE without its trailing newline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jpki-pin-'));
    try {
      const file = join(dir, 'pin');
      await writeFile(file, '24680\n');
      expect(resolvePkcs11Pin({ JPKI_PKCS11_PIN: '1357', JPKI_PKCS11_PIN_FILE: file })).toBe('1357');
      expect(resolvePkcs11Pin({ JPKI_PKCS11_PIN_FILE: file })).toBe('24680');
      expect(Pkcs11KeyStore.resolvePkcs11Pin({ JPKI_PKCS11_PIN_FILE: file })).toBe('24680');
      expect(resolvePkcs11Pin({})).toBeUndefined();
      expect(() => resolvePkcs11Pin({ JPKI_PKCS11_PIN_FILE: join(dir, 'missing') })).toThrow(
        /cannot read the PKCS#11 PIN file/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ecPointCoordinates', () => {
  const x = Buffer.alloc(32, 0x11);
  const y = Buffer.alloc(32, 0x22);
  const point = Buffer.concat([Buffer.from([0x04]), x, y]);
  it('accepts the DER OCTET STRING PKCS#11 specifies, and the bare point some tokens return', () => {
    expect(ecPointCoordinates(Buffer.concat([Buffer.from([0x04, 0x41]), point]), 32)).toEqual({ x, y });
    expect(ecPointCoordinates(point, 32)).toEqual({ x, y });
  });
  it('rejects compressed or truncated points', () => {
    expect(() => ecPointCoordinates(Buffer.concat([Buffer.from([0x04, 0x21, 0x02]), x]), 32)).toThrow(
      /uncompressed/,
    );
    expect(() => ecPointCoordinates(point.subarray(0, 40), 32)).toThrow();
  });
});
