// The PKCS#11 card on SoftHSM2: two tokens (<card>-sign, <card>-auth), keys generated on them,
// certificates stored as certificate objects, PIN change and the counter's reset with the SO PIN.

import { X509Certificate } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CardError,
  type CardSlot,
  PinFormatError,
  PinIncorrectError,
  UnblockError,
} from '../../src/card/card.ts';
import { PKCS11_CARD_LABELS, Pkcs11Card } from '../../src/card/pkcs11-card.ts';
import { verifyCsr } from '../../src/core/csr.ts';
import { decodePem } from '../../src/core/pem.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { verifySignature } from '../../src/verifier/verify-signature.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { tempDir } from '../helpers/openssl.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';
import { AUTH_PIN, opensslCa, SIGN_PIN } from './helpers.ts';

const required = process.env.JPKI_TEST_PKCS11 === '1';
const SO_PIN = { sign: 'SO-SIGN-1', auth: 'SO-AUTH-1' };

/** What an independent PKCS#11 application sees of a slot's objects (uses the process-wide login). */
function inspect(token: SoftHsmToken, slot: CardSlot) {
  const lib = new pkcs11js.PKCS11();
  lib.load(token.module);
  try {
    lib.C_Initialize();
  } catch (e) {
    if ((e as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
  }
  const s = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trimEnd() === token.tokenLabel)!;
  const session = lib.C_OpenSession(s, pkcs11js.CKF_SERIAL_SESSION);
  try {
    const find = (cls: number) => {
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: cls },
        { type: pkcs11js.CKA_LABEL, value: Buffer.from(PKCS11_CARD_LABELS[slot]) },
      ]);
      const found = lib.C_FindObjects(session, 10);
      lib.C_FindObjectsFinal(session);
      return found;
    };
    const read = (o: Buffer, types: number[]) =>
      Object.fromEntries(
        lib
          .C_GetAttributeValue(
            session,
            o,
            types.map((type) => ({ type })),
          )
          .map((a) => [a.type, a.value]),
      ) as Record<number, Buffer>;
    const privateKeys = find(pkcs11js.CKO_PRIVATE_KEY);
    const certificates = find(pkcs11js.CKO_CERTIFICATE);
    const priv = privateKeys[0]
      ? read(privateKeys[0], [
          pkcs11js.CKA_SENSITIVE,
          pkcs11js.CKA_EXTRACTABLE,
          pkcs11js.CKA_NEVER_EXTRACTABLE,
          pkcs11js.CKA_TOKEN,
          pkcs11js.CKA_ID,
        ])
      : undefined;
    let secretReadable = false;
    if (privateKeys[0]) {
      try {
        lib.C_GetAttributeValue(session, privateKeys[0], [
          { type: slot === 'sign' ? pkcs11js.CKA_PRIVATE_EXPONENT : pkcs11js.CKA_VALUE },
        ]);
        secretReadable = true;
      } catch {
        // CKR_ATTRIBUTE_SENSITIVE
      }
    }
    const cert = certificates[0]
      ? read(certificates[0], [pkcs11js.CKA_ID, pkcs11js.CKA_VALUE, pkcs11js.CKA_PRIVATE, pkcs11js.CKA_TOKEN])
      : undefined;
    return { privateKeys: privateKeys.length, certificates: certificates.length, priv, secretReadable, cert };
  } finally {
    lib.C_CloseSession(session);
    lib.close();
  }
}

describe.skipIf(!required && !softHsmAvailable())('Pkcs11Card on SoftHSM2', () => {
  const tokens = {} as Record<CardSlot, SoftHsmToken>;
  const tmp = tempDir('jpki-card-p11-');
  let ta: TestAuthority;
  let card: Pkcs11Card;
  let module: string;

  beforeAll(async () => {
    // every token before the library is first initialised (SoftHSM reads its token directory once)
    tokens.sign = await createSoftHsmToken({ label: 'card1-sign', pin: SIGN_PIN, soPin: SO_PIN.sign });
    tokens.auth = await createSoftHsmToken({ label: 'card1-auth', pin: AUTH_PIN, soPin: SO_PIN.auth });
    module = tokens.sign.module;
    ta = await createTestAuthority();
    card = await Pkcs11Card.open({ module, name: 'card1' });
  });

  afterAll(async () => {
    await card?.close();
    await ta?.close();
    for (const t of Object.values(tokens)) await t.cleanup();
    tmp.cleanup();
  });

  it('a card is two tokens; a missing one is named', async () => {
    expect(card.tokenLabels).toEqual({ sign: 'card1-sign', auth: 'card1-auth' });
    await expect(Pkcs11Card.open({ module, name: 'card2' })).rejects.toThrow(
      /no token labelled "card2-sign"/,
    );
    expect(await card.keyInfo('sign')).toBeUndefined();
    expect(await card.certificate('sign')).toBeUndefined();
  });

  it('VERIFY with no PIN: SoftHSM reports no count, only flags; the card’s rules still apply to the PIN format', async () => {
    expect(await card.pinStatus('sign')).toEqual({
      triesLeft: undefined,
      maxTries: 5,
      locked: false,
      countLow: false,
      finalTry: false,
    });
    await expect(card.signer('auth', '12')).rejects.toBeInstanceOf(PinFormatError);
    await expect(card.signer('sign', 'abc123')).rejects.toBeInstanceOf(PinFormatError);
  });

  it('keys are generated on the tokens, sensitive and non-extractable; the requests are signed there', async () => {
    const signSpki = await card.generateKey('sign', 'rsa-2048', SIGN_PIN);
    const authSpki = await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    expect(await card.keyInfo('sign')).toEqual({ algorithm: 'rsa-2048', publicKeySpki: signSpki });
    expect((await card.keyInfo('auth'))?.algorithm).toBe('ecdsa-p256');
    for (const slot of ['sign', 'auth'] as const) {
      const seen = inspect(tokens[slot], slot); // the card's login of this slot is still open
      expect(seen.privateKeys).toBe(1);
      expect(seen.priv![pkcs11js.CKA_SENSITIVE]![0]).toBe(1);
      expect(seen.priv![pkcs11js.CKA_EXTRACTABLE]![0]).toBe(0);
      expect(seen.priv![pkcs11js.CKA_NEVER_EXTRACTABLE]![0]).toBe(1);
      expect(seen.priv![pkcs11js.CKA_TOKEN]![0]).toBe(1);
      expect(seen.secretReadable).toBe(false);
    }
    const csr = await card.createCsr('sign', SIGN_PIN);
    expect(verifyCsr(csr).spki.equals(signSpki)).toBe(true);
    expect(verifyCsr(await card.createCsr('auth', AUTH_PIN)).spki.equals(authSpki)).toBe(true);
  });

  it('issued certificates are stored as certificate objects with the key’s CKA_ID, and read back without a PIN', async () => {
    const FACTS = {
      name: '鈴木 一郎',
      dateOfBirth: '1970-01-31',
      sex: 'male',
      address: '北海道札幌市中央区北1条西2丁目',
    } as const;
    const signCert = await ta.authority.issue({
      kind: 'sign',
      csr: await card.createCsr('sign', SIGN_PIN),
      facts: FACTS,
    });
    const authCert = await ta.authority.issue({ kind: 'auth', csr: await card.createCsr('auth', AUTH_PIN) });
    // another key's certificate is refused
    await expect(card.writeCertificate('sign', authCert.der)).rejects.toThrow(/for another key/);
    await expect(card.writeCertificate('auth', opensslCa(tmp.dir).unrelated())).rejects.toThrow(
      /for another key/,
    );
    await card.writeCertificate('sign', signCert.der);
    await card.writeCertificate('auth', authCert.der);
    // writing again replaces rather than adds
    await card.writeCertificate('sign', signCert.der);
    await card.close();

    card = await Pkcs11Card.open({ module, name: 'card1' });
    expect((await card.certificate('sign'))?.equals(signCert.der)).toBe(true);
    expect((await card.certificate('auth'))?.equals(authCert.der)).toBe(true);
    await card.signer('sign', SIGN_PIN); // log in, so the private key is visible to inspect()
    const seen = inspect(tokens.sign, 'sign');
    expect(seen.certificates).toBe(1);
    expect(seen.cert![pkcs11js.CKA_VALUE]!.equals(signCert.der)).toBe(true);
    expect(seen.cert![pkcs11js.CKA_ID]!.equals(seen.priv![pkcs11js.CKA_ID]!)).toBe(true);
    expect(seen.cert![pkcs11js.CKA_PRIVATE]![0]).toBe(0);
  });

  it('signs an application on the token: TOTAL_PASSED with the authority’s CRLs', async () => {
    const signer = await card.signer('sign', SIGN_PIN);
    const certificate = (await card.certificate('sign'))!;
    const { output } = await signDocument({
      format: 'cms',
      signer,
      certificate,
      content: Buffer.from('申請書'),
    });
    await ta.authority.generateCrl('root');
    await ta.authority.generateCrl('sign');
    const report = await verifySignature({
      signature: output,
      trust: [decodePem(ta.certPem('root'), ['CERTIFICATE'])],
      untrusted: [decodePem(ta.certPem('sign'), ['CERTIFICATE'])],
      crls: [
        (await ta.authority.currentCrl('root', 'full'))!.der,
        (await ta.authority.currentCrl('sign', 'full'))!.der,
      ],
    });
    expect(report.indication, report.messages.join('\n')).toBe('TOTAL_PASSED');
    expect(report.signer?.basicFacts?.name).toBe('鈴木　一郎');
  });

  it('a wrong PIN is refused; SoftHSM only raises COUNT_LOW and never locks (it does not count)', async () => {
    const e = await card.signer('auth', '0000').catch((x: Error) => x);
    expect(e).toBeInstanceOf(PinIncorrectError);
    expect((e as PinIncorrectError).triesLeft).toBeUndefined();
    expect((e as Error).message).toBe(
      'authentication PIN incorrect: the token reports few tries left but not how many (the card locks after 3 tries in a row)',
    );
    for (let i = 0; i < 5; i++)
      await expect(card.signer('auth', '0000')).rejects.toBeInstanceOf(PinIncorrectError);
    expect(await card.pinStatus('auth')).toMatchObject({
      locked: false,
      countLow: true,
      triesLeft: undefined,
    });
    // the right PIN still works after 6 wrong ones, and clears the flag
    await card.signer('auth', AUTH_PIN);
    expect(await card.pinStatus('auth')).toMatchObject({ locked: false, countLow: false });
  });

  it('change PIN (C_SetPIN) and the counter’s reset (SO login + C_InitPIN)', async () => {
    await expect(card.changePin('sign', 'WRONG1', 'NEWSIGN1')).rejects.toBeInstanceOf(PinIncorrectError);
    await card.changePin('sign', SIGN_PIN, 'NEWSIGN1');
    await expect(card.signer('sign', SIGN_PIN)).rejects.toBeInstanceOf(PinIncorrectError);
    const signer = await card.signer('sign', 'NEWSIGN1');
    await signer.sign(Buffer.from('still the same key'));

    const wrong = await card.resetPin('sign', 'not-the-so-pin', 'RESET22').catch((x: Error) => x);
    expect(wrong).toBeInstanceOf(UnblockError);
    expect((wrong as Error).message).toMatch(
      /SO PIN \(unblock credential\) incorrect for token "card1-sign"; the PIN was not reset/,
    );
    await card.signer('sign', 'NEWSIGN1'); // unchanged
    await card.resetPin('sign', SO_PIN.sign, 'RESET22');
    await expect(card.signer('sign', 'NEWSIGN1')).rejects.toBeInstanceOf(PinIncorrectError);
    const after = await card.signer('sign', 'RESET22');
    const data = Buffer.from('after reset');
    const cert = new X509Certificate((await card.certificate('sign'))!);
    const { verify } = await import('node:crypto');
    expect(verify('sha256', data, cert.publicKey, await after.sign(data))).toBe(true);
  });

  it('a new key replaces the old key pair and removes its certificate; old signers stop', async () => {
    const old = await card.signer('auth', AUTH_PIN);
    const before = (await card.keyInfo('auth'))!.publicKeySpki;
    const spki = await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    expect(spki.equals(before)).toBe(false);
    await expect(old.sign(Buffer.from('x'))).rejects.toThrow(/closed/);
    const seen = inspect(tokens.auth, 'auth');
    expect(seen.privateKeys).toBe(1);
    expect(seen.certificates).toBe(0);
    expect(await card.certificate('auth')).toBeUndefined();
    await card.close();
    await expect(card.pinStatus('auth')).rejects.toBeInstanceOf(CardError);
  });
});
