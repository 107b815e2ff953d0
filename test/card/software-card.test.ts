import { createPrivateKey, verify, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CardError,
  type CardSlot,
  type IcCard,
  PinFormatError,
  PinIncorrectError,
  PinLockedError,
  UnblockError,
} from '../../src/card/card.ts';
import { SoftwareCard, UNBLOCK_MAX_TRIES } from '../../src/card/software-card.ts';
import { tempDir } from '../helpers/openssl.ts';
import { AUTH_PIN, opensslCa, SIGN_PIN, type TestCa, UNBLOCK } from './helpers.ts';

const tmp = tempDir('jpki-card-');
let ca: TestCa;
let n = 0;

beforeAll(() => {
  ca = opensslCa(tmp.dir);
});
afterAll(() => tmp.cleanup());

const cards: IcCard[] = [];
afterAll(async () => {
  for (const c of cards) await c.close();
});

async function newCard(extra: { id?: string; kdf?: { N: number; r: number; p: number } } = {}) {
  const path = tmp.path(`card-${++n}.json`);
  const card = await SoftwareCard.create(path, {
    signPin: SIGN_PIN,
    authPin: AUTH_PIN,
    unblock: UNBLOCK,
    ...extra,
  });
  cards.push(card);
  return { card, path };
}

async function open(path: string) {
  const card = await SoftwareCard.open(path);
  cards.push(card);
  return card;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

const tries = async (card: IcCard, slot: CardSlot) => (await card.pinStatus(slot)).triesLeft;

describe('PIN rules', () => {
  it('refuses to create a card with PINs that break the rules, with a clear message that never shows the PIN', async () => {
    const bad: [Partial<Record<'signPin' | 'authPin' | 'unblock', string>>, RegExp][] = [
      [{ signPin: 'abc123' }, /signature PIN must be 6 to 16 characters of A-Z and 0-9/],
      [{ signPin: 'ABC12' }, /signature PIN must be 6 to 16/],
      [{ signPin: 'A'.repeat(17) }, /signature PIN must be 6 to 16/],
      [{ signPin: 'ABC-123' }, /signature PIN must be 6 to 16/],
      [{ signPin: 'ＡＢＣ１２３' }, /signature PIN must be 6 to 16/],
      [{ authPin: '123' }, /authentication PIN must be exactly 4 digits/],
      [{ authPin: '12345' }, /authentication PIN must be exactly 4 digits/],
      [{ authPin: 'abcd' }, /authentication PIN must be exactly 4 digits/],
      [{ authPin: '１２３４' }, /authentication PIN must be exactly 4 digits/],
      [{ unblock: 'short' }, /unblock secret must be 8 to 256 characters/],
    ];
    for (const [override, message] of bad) {
      const path = tmp.path(`bad-${++n}.json`);
      const e = await failure(
        SoftwareCard.create(path, { signPin: SIGN_PIN, authPin: AUTH_PIN, unblock: UNBLOCK, ...override }),
      );
      expect(e).toBeInstanceOf(CardError);
      expect(e.message).toMatch(message);
      for (const v of Object.values(override)) expect(e.message).not.toContain(v);
      expect(existsSync(path)).toBe(false);
    }
    // the longest and shortest legal PINs
    const path = tmp.path(`edge-${++n}.json`);
    const c = await SoftwareCard.create(path, { signPin: 'Z9'.repeat(8), authPin: '0000', unblock: UNBLOCK });
    await c.close();
  });

  it('a PIN in the wrong format is refused before the card looks at it: no try is consumed', async () => {
    const { card } = await newCard();
    for (const pin of ['12', '12345', 'abcd', '']) {
      expect(await failure(card.signer('auth', pin))).toBeInstanceOf(PinFormatError);
    }
    expect(await failure(card.signer('sign', 'abc123'))).toBeInstanceOf(PinFormatError);
    expect(await tries(card, 'auth')).toBe(3);
    expect(await tries(card, 'sign')).toBe(5);
    // a new PIN that breaks the rules is refused before the old one is checked
    const e = await failure(card.changePin('sign', 'WRONG1', 'short'));
    expect(e.message).toMatch(/signature new PIN must be 6 to 16/);
    expect(await tries(card, 'sign')).toBe(5);
  });

  it('refuses to overwrite an existing card file, and unknown slots', async () => {
    const { card, path } = await newCard();
    const e = await failure(
      SoftwareCard.create(path, { signPin: SIGN_PIN, authPin: AUTH_PIN, unblock: UNBLOCK }),
    );
    expect(e.message).toMatch(/exists; refusing to overwrite/);
    expect(await failure(card.pinStatus('admin' as CardSlot))).toBeInstanceOf(CardError);
  });
});

describe('retry counters and lock-out', () => {
  it('signature PIN: each wrong PIN says how many tries are left, the 5th locks, then even the right PIN is refused', async () => {
    const { card } = await newCard();
    await card.generateKey('sign', 'ecdsa-p256', SIGN_PIN);
    const messages: string[] = [];
    for (let i = 0; i < 5; i++) {
      const e = await failure(card.signer('sign', 'WRONG1'));
      expect(e).toBeInstanceOf(PinIncorrectError);
      expect((e as PinIncorrectError).triesLeft).toBe(4 - i);
      messages.push(e.message);
    }
    expect(messages).toEqual([
      'signature PIN incorrect: 4 tries left before the card locks',
      'signature PIN incorrect: 3 tries left before the card locks',
      'signature PIN incorrect: 2 tries left before the card locks',
      'signature PIN incorrect: 1 try left before the card locks',
      'signature PIN incorrect: no tries left; the PIN is now locked and must be reset at the municipal counter',
    ]);
    const locked = await failure(card.signer('sign', SIGN_PIN));
    expect(locked).toBeInstanceOf(PinLockedError);
    expect(locked.message).toBe(
      'the signature PIN is locked (no tries left); it must be reset at the municipal counter',
    );
    expect(await card.pinStatus('sign')).toEqual({ triesLeft: 0, maxTries: 5, locked: true });
    // the other slot is untouched
    expect(await card.pinStatus('auth')).toEqual({ triesLeft: 3, maxTries: 3, locked: false });
    // a locked PIN blocks every PIN operation of the slot
    expect(await failure(card.createCsr('sign', SIGN_PIN))).toBeInstanceOf(PinLockedError);
    expect(await failure(card.changePin('sign', SIGN_PIN, 'NEW123'))).toBeInstanceOf(PinLockedError);
    expect(await failure(card.generateKey('sign', 'ecdsa-p256', SIGN_PIN))).toBeInstanceOf(PinLockedError);
  });

  it('authentication PIN: the 3rd wrong PIN locks', async () => {
    const { card } = await newCard();
    expect((await failure(card.signer('auth', '0000'))).message).toBe(
      'authentication PIN incorrect: 2 tries left before the card locks',
    );
    expect((await failure(card.signer('auth', '0000'))).message).toMatch(/1 try left/);
    const last = await failure(card.signer('auth', '0000'));
    expect(last).toBeInstanceOf(PinIncorrectError);
    expect((last as PinIncorrectError).triesLeft).toBe(0);
    expect(await failure(card.signer('auth', AUTH_PIN))).toBeInstanceOf(PinLockedError);
  });

  it('a correct PIN resets the counter; asking for the status never consumes a try', async () => {
    const { card } = await newCard();
    await failure(card.signer('auth', '0000'));
    await failure(card.signer('auth', '0000'));
    expect(await tries(card, 'auth')).toBe(1);
    for (let i = 0; i < 10; i++) expect(await tries(card, 'auth')).toBe(1);
    // no key yet: the PIN is still checked (and correct) before that is reported
    expect((await failure(card.signer('auth', AUTH_PIN))).message).toMatch(/has no key/);
    expect(await tries(card, 'auth')).toBe(3);
  });

  it('reset at the counter: a wrong unblock secret fails and does not unlock; the right one sets a new PIN', async () => {
    const { card } = await newCard();
    await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    for (let i = 0; i < 3; i++) await failure(card.signer('auth', '9999'));
    expect((await card.pinStatus('auth')).locked).toBe(true);

    const wrong = await failure(card.resetPin('auth', 'not-the-secret', '5678'));
    expect(wrong).toBeInstanceOf(UnblockError);
    expect(wrong.message).toMatch(/unblock secret incorrect \(9 tries left\); the PIN was not reset/);
    expect(await card.pinStatus('auth')).toEqual({ triesLeft: 0, maxTries: 3, locked: true });
    expect(await card.unblockTriesLeft()).toBe(UNBLOCK_MAX_TRIES - 1);
    // the new PIN must follow the rules too
    expect(await failure(card.resetPin('auth', UNBLOCK, '56789'))).toBeInstanceOf(PinFormatError);

    await card.resetPin('auth', UNBLOCK, '5678');
    expect(await card.pinStatus('auth')).toEqual({ triesLeft: 3, maxTries: 3, locked: false });
    expect(await card.unblockTriesLeft()).toBe(UNBLOCK_MAX_TRIES);
    // the old PIN is gone (and costs a try); the new one works and restores the counter
    expect(await failure(card.signer('auth', AUTH_PIN))).toBeInstanceOf(PinIncorrectError);
    const signer = await card.signer('auth', '5678');
    expect(signer.algorithm).toBe('ecdsa-p256');
    expect(await tries(card, 'auth')).toBe(3);
  });

  it(`the unblock secret itself blocks after ${UNBLOCK_MAX_TRIES} wrong attempts`, async () => {
    const { card } = await newCard();
    for (let i = 0; i < UNBLOCK_MAX_TRIES; i++)
      await failure(card.resetPin('sign', 'wrong-secret', 'NEW123'));
    const e = await failure(card.resetPin('sign', UNBLOCK, 'NEW123'));
    expect(e).toBeInstanceOf(UnblockError);
    expect(e.message).toMatch(/blocked after 10 wrong attempts; the card must be replaced/);
  });

  it('change PIN: a wrong old PIN costs a try, the right one sets the new PIN', async () => {
    const { card } = await newCard();
    await card.generateKey('sign', 'ecdsa-p256', SIGN_PIN);
    const e = await failure(card.changePin('sign', 'WRONG1', 'NEWPIN99'));
    expect(e.message).toBe('signature PIN incorrect: 4 tries left before the card locks');
    await card.changePin('sign', SIGN_PIN, 'NEWPIN99');
    expect(await tries(card, 'sign')).toBe(5);
    expect(await failure(card.signer('sign', SIGN_PIN))).toBeInstanceOf(PinIncorrectError);
    await card.signer('sign', 'NEWPIN99');
  });
});

describe('persistence and concurrency', () => {
  it('counters, keys and certificates persist across re-opening the file; the file is 0600 and leaves nothing behind', async () => {
    const { card, path } = await newCard();
    const spki = await card.generateKey('sign', 'ecdsa-p256', SIGN_PIN);
    await card.writeCertificate('sign', ca.certify(await card.createCsr('sign', SIGN_PIN)));
    await failure(card.signer('sign', 'WRONG1'));
    await failure(card.signer('sign', 'WRONG1'));
    await failure(card.signer('auth', '0000'));
    await card.close();

    const again = await open(path);
    expect(again.id).toBe(card.id);
    expect(await again.pinStatus('sign')).toEqual({ triesLeft: 3, maxTries: 5, locked: false });
    expect(await tries(again, 'auth')).toBe(2);
    expect((await again.keyInfo('sign'))?.publicKeySpki.equals(spki)).toBe(true);
    expect(await again.certificate('sign')).toBeDefined();
    expect(await again.keyInfo('auth')).toBeUndefined();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const name = path.split('/').pop()!;
    expect(readdirSync(tmp.dir).filter((f) => f.startsWith(name) && f !== name)).toEqual([]);
  });

  it('a second object on the same file (another process) sees and shares the counter', async () => {
    const { card, path } = await newCard();
    const other = await open(path);
    await failure(card.signer('auth', '0000'));
    expect(await tries(other, 'auth')).toBe(2);
    await failure(other.signer('auth', '0000'));
    await failure(card.signer('auth', '0000'));
    expect(await failure(other.signer('auth', AUTH_PIN))).toBeInstanceOf(PinLockedError);
  });

  it('10 wrong PINs at once never buy more than the limit: on one object, and spread over three objects', async () => {
    const { card, path } = await newCard();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => card.signer('sign', 'WRONG1')));
    const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined));
    const incorrect = errors.filter((e) => e instanceof PinIncorrectError) as PinIncorrectError[];
    expect(incorrect.map((e) => e.triesLeft).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(errors.filter((e) => e instanceof PinLockedError)).toHaveLength(5);
    expect(await failure(card.signer('sign', SIGN_PIN))).toBeInstanceOf(PinLockedError);

    const objects = [card, await open(path), await open(path)];
    const spread = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => objects[i % 3]!.signer('auth', '0000')),
    );
    const wrong = spread.filter((r) => r.status === 'rejected' && r.reason instanceof PinIncorrectError);
    expect(wrong).toHaveLength(3);
    expect(spread.every((r) => r.status === 'rejected')).toBe(true);
    expect(await (await open(path)).pinStatus('auth')).toEqual({ triesLeft: 0, maxTries: 3, locked: true });
  });

  it('the spent try is on disk before the PIN is compared (so killing the process mid-check gains nothing)', async () => {
    // A slow hash, so the comparison takes long enough to watch the file while it runs.
    const { card, path } = await newCard({ kdf: { N: 1 << 16, r: 8, p: 1 } });
    const onDisk = () =>
      (JSON.parse(readFileSync(path, 'utf8')) as { slots: { auth: { triesLeft: number } } }).slots.auth
        .triesLeft;
    const seen = new Set<number>();
    let done = false;
    const check = card.changePin('auth', AUTH_PIN, '4321').finally(() => {
      done = true;
    });
    while (!done) {
      seen.add(onDisk());
      await new Promise((r) => setTimeout(r, 1));
    }
    await check;
    expect(seen.has(2)).toBe(true); // decremented while the correct PIN was being checked
    expect(onDisk()).toBe(3); // and given back after the match
  });
});

describe('keys stay on the card', () => {
  it.each(['rsa-2048', 'ecdsa-p256'] as const)(
    '%s: signatures made on the card verify against the certificate written to it',
    async (algorithm) => {
      const { card } = await newCard();
      const spki = await card.generateKey('sign', algorithm, SIGN_PIN);
      expect((await card.keyInfo('sign'))?.algorithm).toBe(algorithm);
      const cert = ca.certify(await card.createCsr('sign', SIGN_PIN));
      await card.writeCertificate('sign', cert);
      expect((await card.certificate('sign'))?.equals(cert)).toBe(true);
      const key = new X509Certificate(cert).publicKey;
      expect(key.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);

      const signer = await card.signer('sign', SIGN_PIN);
      expect(signer.algorithm).toBe(algorithm);
      const data = Buffer.from('転入届 2026-04-01');
      expect(verify('sha256', data, key, await signer.sign(data))).toBe(true);
      // chunks are signed as their concatenation
      const chunks = [Buffer.from('part one, '), Buffer.from('part two')];
      expect(verify('sha256', Buffer.concat(chunks), key, await signer.sign(chunks))).toBe(true);
    },
  );

  it('the file holds no private key in clear, and neither the card nor its signer has a way to export one', async () => {
    const { card, path } = await newCard();
    await card.generateKey('sign', 'rsa-2048', SIGN_PIN);
    await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toMatch(/PRIVATE KEY/);
    expect(text).not.toContain(SIGN_PIN);
    expect(text).not.toMatch(/"1234"/);
    // PKCS#8 version + AlgorithmIdentifier of an RSA / EC key, as bytes, base64 and hex
    const prefixes = [
      '020100300d06092a864886f70d0101010500',
      '020100301306072a8648ce3d020106082a8648ce3d030107',
    ];
    const strings: string[] = [];
    const walk = (v: unknown) => {
      if (typeof v === 'string') strings.push(v);
      else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
    };
    walk(JSON.parse(text));
    for (const s of strings) {
      const bytes = Buffer.from(s, 'base64');
      for (const p of prefixes) {
        expect(bytes.includes(Buffer.from(p, 'hex'))).toBe(false);
        expect(s.toLowerCase()).not.toContain(p);
      }
      for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const)
        expect(() => createPrivateKey({ key: bytes, format: 'der', type })).toThrow();
    }

    const exported = /export|private|secret|pkcs8|pem|jwk|der$/i;
    const names = (o: object) => {
      const out = new Set<string>();
      for (let p = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p))
        for (const k of Object.getOwnPropertyNames(p)) out.add(k);
      return [...out];
    };
    expect(names(card).filter((k) => exported.test(k))).toEqual([]);
    const signer = await card.signer('sign', SIGN_PIN);
    expect(names(signer).sort()).toEqual(['algorithm', 'constructor', 'publicKeySpki', 'sign']);
  });

  it('refuses a certificate for another key, and garbage; a new key removes the old certificate and retires old signers', async () => {
    const { card } = await newCard();
    expect((await failure(card.writeCertificate('sign', ca.unrelated()))).message).toMatch(/has no key/);
    await card.generateKey('sign', 'ecdsa-p256', SIGN_PIN);
    const e = await failure(card.writeCertificate('sign', ca.unrelated()));
    expect(e.message).toMatch(/is for another key than the one in the sign slot/);
    expect(await card.certificate('sign')).toBeUndefined();
    expect((await failure(card.writeCertificate('sign', Buffer.from('not a certificate')))).message).toMatch(
      /not a DER X\.509 certificate/,
    );
    const cert = ca.certify(await card.createCsr('sign', SIGN_PIN));
    // the sign key's certificate does not fit the auth slot
    await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    expect((await failure(card.writeCertificate('auth', cert))).message).toMatch(/another key/);
    await card.writeCertificate('sign', cert);

    const old = await card.signer('sign', SIGN_PIN);
    await card.generateKey('sign', 'ecdsa-p256', SIGN_PIN);
    expect(await card.certificate('sign')).toBeUndefined();
    expect((await failure(old.sign(Buffer.from('x')))).message).toMatch(
      /has been replaced; verify the PIN again/,
    );
  });

  it('signers stop when the card is closed, and a locked PIN stops them too', async () => {
    const { card, path } = await newCard();
    await card.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
    const signer = await card.signer('auth', AUTH_PIN);
    await signer.sign(Buffer.from('ok'));
    const other = await open(path);
    for (let i = 0; i < 3; i++) await failure(other.signer('auth', '0000'));
    expect(await failure(signer.sign(Buffer.from('x')))).toBeInstanceOf(PinLockedError);
    await other.resetPin('auth', UNBLOCK, '2468');
    await signer.sign(Buffer.from('ok again'));
    await card.close();
    expect((await failure(signer.sign(Buffer.from('x')))).message).toMatch(/is closed/);
    expect((await failure(card.pinStatus('sign'))).message).toMatch(/is closed/);
  });

  it('refuses a damaged or foreign file with one clear message', async () => {
    const path = tmp.path('not-a-card.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, '{"hello": 1}');
    expect((await failure(SoftwareCard.open(path))).message).toMatch(/is not a usable software card file/);
    expect((await failure(SoftwareCard.open(tmp.path('missing.json')))).message).toMatch(/no card file/);
  });
});
