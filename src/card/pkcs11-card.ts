// An IC card through PKCS#11: SoftHSM2 in the tests, a real card or token through its PKCS#11 module
// (OpenSC) in production.
//
// Mapping. A real card has one PIN per key; a PKCS#11 token has one user PIN. So a card is TWO tokens,
// one per slot: `<name>-sign` and `<name>-auth` by default (OpenSC likewise shows a card with several
// PINs as one virtual slot per PIN). In each token the key pair is labelled `jpki-card-sign` /
// `jpki-card-auth`, generated on the token as sensitive, non-extractable token objects
// (Pkcs11KeyStore), and the certificate is a public CKO_CERTIFICATE object with the same label and
// CKA_ID (CKA_VALUE = DER). The slot's PIN is the token's user PIN; the counter's unblock credential
// is the token's SO PIN (reset = SO login + C_InitPIN).
//
// Retry counters are the token's business: PKCS#11 only reports CKF_USER_PIN_COUNT_LOW, _FINAL_TRY and
// _LOCKED, never a number, so pinStatus() gives `triesLeft` only when the flags pin it down (locked: 0,
// final try: 1). The project's 5/3 limits are not imposed in software here: SoftHSM2 does not count
// at all (it sets COUNT_LOW after any wrong PIN, clears it after a right one, and never locks), and a
// real card counts for itself.
//
// A real My Number Card, read through OpenSC's JPKI driver, is read-only: its keys are generated and its
// certificates written by the issuing system at the counter, so generateKey and writeCertificate will
// fail there; pinStatus, certificate, signer and changePin are what a resident's machine uses.

import { createPublicKey, X509Certificate } from 'node:crypto';
import { readTlv } from '../core/der.ts';
import type { KeyAlgorithm, Signer } from '../core/signer.ts';
import { KeyNotFoundError } from '../keys/keystore.ts';
import { Pkcs11KeyStore, Pkcs11PinError, Pkcs11Token, type Pkcs11TokenStatus } from '../keys/pkcs11.ts';
import { algorithmOf } from '../keys/software.ts';
import {
  CARD_SLOTS,
  CardError,
  type CardKeyInfo,
  type CardSlot,
  checkPinFormat,
  checkSlot,
  type IcCard,
  PIN_RULES,
  PinIncorrectError,
  PinLockedError,
  type PinStatus,
  UnblockError,
} from './card.ts';
import { createCsr } from './csr.ts';

/** Labels of the key pair and certificate objects in each slot's token. */
export const PKCS11_CARD_LABELS: Readonly<Record<CardSlot, string>> = {
  sign: 'jpki-card-sign',
  auth: 'jpki-card-auth',
};

export interface Pkcs11CardOptions {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** The card's name (its id): the slots are the tokens `<name>-sign` and `<name>-auth`... */
  name: string;
  /** ...unless other token labels are given here. */
  tokens?: Partial<Record<CardSlot, string>>;
}

/** The token labels a card of this name uses. */
export function pkcs11CardTokens(options: Pkcs11CardOptions): Record<CardSlot, string> {
  return {
    sign: options.tokens?.sign ?? `${options.name}-sign`,
    auth: options.tokens?.auth ?? `${options.name}-auth`,
  };
}

export class Pkcs11Card implements IcCard {
  readonly kind = 'pkcs11';
  readonly id: string;
  readonly module: string;
  readonly tokenLabels: Readonly<Record<CardSlot, string>>;
  readonly #tokens: Record<CardSlot, Pkcs11Token>;
  /** The logged-in store of a slot, from its last PIN verification until the next one or close(). */
  readonly #stores: Partial<Record<CardSlot, Pkcs11KeyStore>> = {};
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(options: Pkcs11CardOptions, tokens: Record<CardSlot, Pkcs11Token>) {
    this.id = options.name;
    this.module = options.module;
    this.tokenLabels = pkcs11CardTokens(options);
    this.#tokens = tokens;
  }

  /** Opens the card's tokens (no PIN yet). */
  static async open(options: Pkcs11CardOptions): Promise<Pkcs11Card> {
    if (!options.name) throw new CardError('PKCS#11 card: no card name given');
    const labels = pkcs11CardTokens(options);
    if (labels.sign === labels.auth)
      throw new CardError('PKCS#11 card: the sign and auth slots need two tokens (one PIN each)');
    const sign = new Pkcs11Token({ module: options.module, tokenLabel: labels.sign });
    let auth: Pkcs11Token;
    try {
      auth = new Pkcs11Token({ module: options.module, tokenLabel: labels.auth });
    } catch (e) {
      await sign.close();
      throw e;
    }
    return new Pkcs11Card(options, { sign, auth });
  }

  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CardError(`card ${this.id} is closed`));
    const result = this.#queue.then(() => {
      if (this.#closed) throw new CardError(`card ${this.id} is closed`);
      return fn();
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #logout(slot: CardSlot): Promise<void> {
    const store = this.#stores[slot];
    delete this.#stores[slot];
    await store?.close();
  }

  /** Verifies the PIN by logging in to the slot's token (replacing the slot's previous login). */
  async #login(slot: CardSlot, pin: string): Promise<Pkcs11KeyStore> {
    checkPinFormat(slot, pin);
    await this.#logout(slot);
    const token = this.#tokens[slot];
    if ((await token.status()).userPinLocked) throw new PinLockedError(slot);
    let store: Pkcs11KeyStore;
    try {
      store = new Pkcs11KeyStore({ module: this.module, tokenLabel: this.tokenLabels[slot], pin });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (/wrong PIN|different PIN/.test(message)) throw wrongPin(slot, await token.status());
      if (/PIN of .* is locked/.test(message)) throw new PinLockedError(slot);
      throw e;
    }
    this.#stores[slot] = store;
    return store;
  }

  async pinStatus(slot: CardSlot): Promise<PinStatus> {
    checkSlot(slot);
    return this.#enqueue(async () => {
      const s = await this.#tokens[slot].status();
      return {
        triesLeft: s.userPinLocked ? 0 : s.userPinFinalTry ? 1 : undefined,
        maxTries: PIN_RULES[slot].maxTries,
        locked: s.userPinLocked,
        countLow: s.userPinCountLow,
        finalTry: s.userPinFinalTry,
      };
    });
  }

  async keyInfo(slot: CardSlot): Promise<CardKeyInfo | undefined> {
    checkSlot(slot);
    return this.#enqueue(async () => {
      const spki = await this.#tokens[slot].publicKeySpki(PKCS11_CARD_LABELS[slot]);
      if (!spki) return undefined;
      return {
        algorithm: algorithmOf(createPublicKey({ key: spki, format: 'der', type: 'spki' })),
        publicKeySpki: spki,
      };
    });
  }

  async generateKey(slot: CardSlot, algorithm: KeyAlgorithm, pin: string): Promise<Buffer> {
    checkSlot(slot);
    return this.#enqueue(async () => {
      const store = await this.#login(slot, pin);
      // The old key pair and its certificate go: the slot holds one key.
      await store.deleteKey(PKCS11_CARD_LABELS[slot]);
      const signer = await store.generate(PKCS11_CARD_LABELS[slot], algorithm);
      return signer.publicKeySpki;
    });
  }

  async #openKey(slot: CardSlot, pin: string): Promise<Signer> {
    const store = await this.#login(slot, pin);
    try {
      return await store.open(PKCS11_CARD_LABELS[slot]);
    } catch (e) {
      if (e instanceof KeyNotFoundError)
        throw new CardError(`the ${slot} slot of card ${this.id} has no key; generate one first`);
      throw e;
    }
  }

  async createCsr(slot: CardSlot, pin: string): Promise<Buffer> {
    checkSlot(slot);
    return this.#enqueue(async () => createCsr(await this.#openKey(slot, pin), this.id));
  }

  async writeCertificate(slot: CardSlot, der: Buffer): Promise<void> {
    checkSlot(slot);
    const bytes = Buffer.from(der);
    let cert: X509Certificate;
    try {
      if (readTlv(bytes, 0).end !== bytes.length) throw new Error('trailing data');
      cert = new X509Certificate(bytes);
    } catch {
      throw new CardError('not a DER X.509 certificate');
    }
    return this.#enqueue(async () => {
      const token = this.#tokens[slot];
      const spki = await token.publicKeySpki(PKCS11_CARD_LABELS[slot]);
      if (!spki) throw new CardError(`the ${slot} slot of card ${this.id} has no key to match a certificate`);
      if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki))
        throw new CardError(
          `the certificate (serial ${cert.serialNumber}) is for another key than the one in the ${slot} slot of card ${this.id}`,
        );
      await token.writeCertificate(PKCS11_CARD_LABELS[slot], bytes);
    });
  }

  async certificate(slot: CardSlot): Promise<Buffer | undefined> {
    checkSlot(slot);
    return this.#enqueue(() => this.#tokens[slot].readCertificate(PKCS11_CARD_LABELS[slot]));
  }

  async signer(slot: CardSlot, pin: string): Promise<Signer> {
    checkSlot(slot);
    return this.#enqueue(() => this.#openKey(slot, pin));
  }

  async changePin(slot: CardSlot, oldPin: string, newPin: string): Promise<void> {
    checkSlot(slot);
    checkPinFormat(slot, oldPin);
    checkPinFormat(slot, newPin, 'new PIN');
    return this.#enqueue(async () => {
      await this.#logout(slot);
      const token = this.#tokens[slot];
      if ((await token.status()).userPinLocked) throw new PinLockedError(slot);
      try {
        await token.setUserPin(oldPin, newPin);
      } catch (e) {
        if (e instanceof Pkcs11PinError && e.reason === 'incorrect')
          throw wrongPin(slot, await token.status());
        if (e instanceof Pkcs11PinError && e.reason === 'locked') throw new PinLockedError(slot);
        throw e;
      }
    });
  }

  async resetPin(slot: CardSlot, unblock: string, newPin: string): Promise<void> {
    checkSlot(slot);
    checkPinFormat(slot, newPin, 'new PIN');
    if (!unblock) throw new UnblockError('no SO PIN (unblock credential) given');
    return this.#enqueue(async () => {
      await this.#logout(slot);
      try {
        await this.#tokens[slot].initUserPin(unblock, newPin);
      } catch (e) {
        if (e instanceof Pkcs11PinError && e.user === 'so')
          throw new UnblockError(
            e.reason === 'locked'
              ? `the SO PIN of token "${this.tokenLabels[slot]}" is locked; the PIN cannot be reset`
              : `SO PIN (unblock credential) incorrect for token "${this.tokenLabels[slot]}"; the PIN was not reset`,
          );
        throw e;
      }
    });
  }

  /** Logs out, closes the tokens. Signers from this card stop working. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return this.#queue.then(() => undefined);
    const pending = this.#queue;
    this.#closed = true;
    await pending;
    for (const slot of CARD_SLOTS) await this.#logout(slot);
    await this.#tokens.sign.close();
    await this.#tokens.auth.close();
  }
}

function wrongPin(slot: CardSlot, s: Pkcs11TokenStatus): CardError {
  if (s.userPinLocked) return new PinIncorrectError(slot, 0);
  if (s.userPinFinalTry) return new PinIncorrectError(slot, 1);
  return new PinIncorrectError(
    slot,
    undefined,
    s.userPinCountLow
      ? 'the token reports few tries left but not how many'
      : 'the token does not say how many tries are left',
  );
}
