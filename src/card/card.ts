// The resident's IC card (住基カード / My Number Card) behind one interface.
//
// A card has two key slots:
//   sign  署名用電子証明書      signature certificate;          PIN 6–16 of A–Z and 0–9, 5 tries
//   auth  利用者証明用電子証明書  user-authentication certificate; PIN exactly 4 digits,       3 tries
// Each slot holds a key pair generated ON the card (the private key never leaves it), the certificate
// written after issuance, and a PIN with a retry counter. A correct PIN resets the counter; at zero the
// PIN is locked and only a reset at the municipal counter (with the counter's unblock credential) opens
// it again, with a new PIN.
//
// Implementations: `SoftwareCard` (a JSON file; development and tests, no hardware protection) and
// `Pkcs11Card` (one PKCS#11 token per slot: SoftHSM2 in tests, a real card through OpenSC).

import type { KeyAlgorithm, Signer } from '../core/signer.ts';

export type CardSlot = 'sign' | 'auth';
export const CARD_SLOTS: readonly CardSlot[] = ['sign', 'auth'];

export interface PinRule {
  /** What the PIN protects, for messages: "signature" / "authentication". */
  readonly name: string;
  readonly pattern: RegExp;
  /** The rule in words, for error messages. */
  readonly description: string;
  /** Wrong PINs in a row before the PIN locks. */
  readonly maxTries: number;
}

/** The PIN rules of the real service (J-LIS). */
export const PIN_RULES: Readonly<Record<CardSlot, PinRule>> = {
  sign: {
    name: 'signature',
    pattern: /^[A-Z0-9]{6,16}$/,
    description: '6 to 16 characters of A-Z and 0-9',
    maxTries: 5,
  },
  auth: {
    name: 'authentication',
    pattern: /^[0-9]{4}$/,
    description: 'exactly 4 digits',
    maxTries: 3,
  },
};

export function isCardSlot(s: unknown): s is CardSlot {
  return s === 'sign' || s === 'auth';
}

/** Throws CardError unless `slot` is 'sign' or 'auth' (for callers without type checks). */
export function checkSlot(slot: unknown): asserts slot is CardSlot {
  if (!isCardSlot(slot)) throw new CardError(`unknown card slot "${String(slot)}" (sign or auth)`);
}

/** Throws PinFormatError unless `pin` follows the slot's rule. The message never contains the PIN. */
export function checkPinFormat(slot: CardSlot, pin: unknown, what = 'PIN'): asserts pin is string {
  const rule = PIN_RULES[slot];
  if (typeof pin !== 'string' || !rule.pattern.test(pin))
    throw new PinFormatError(`the ${rule.name} ${what} must be ${rule.description}`);
}

/** What a VERIFY with no PIN tells: no try is consumed. */
export interface PinStatus {
  /** Tries left before the PIN locks; undefined when the card does not say (most PKCS#11 tokens). */
  triesLeft: number | undefined;
  maxTries: number;
  locked: boolean;
  /** PKCS#11 CKF_USER_PIN_COUNT_LOW / CKF_USER_PIN_FINAL_TRY, when the token reports them. */
  countLow?: boolean;
  finalTry?: boolean;
}

export interface CardKeyInfo {
  algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  publicKeySpki: Buffer;
}

/**
 * One resident's card. Operations on one object are serialised. A PIN given to a method is checked by
 * the card: a wrong one consumes a try (PinIncorrectError says how many are left), a locked PIN is
 * refused (PinLockedError) without looking at the PIN, and a PIN that does not follow the slot's rule
 * is refused (PinFormatError) before the card is asked, so it consumes no try.
 *
 * There is deliberately no way to read a private key: signing happens inside the card.
 */
export interface IcCard {
  /** Card serial or name; the CN of the requests the card makes. */
  readonly id: string;
  readonly kind: 'software' | 'pkcs11';

  /** VERIFY with no PIN: the tries left, without consuming one. */
  pinStatus(slot: CardSlot): Promise<PinStatus>;
  /** The slot's public key, or undefined if no key has been generated. No PIN needed. */
  keyInfo(slot: CardSlot): Promise<CardKeyInfo | undefined>;
  /**
   * Generates a key pair inside the card (at the counter), replacing the slot's key and removing its
   * certificate. Needs the slot's PIN. Returns the SubjectPublicKeyInfo (DER).
   */
  generateKey(slot: CardSlot, algorithm: KeyAlgorithm, pin: string): Promise<Buffer>;
  /** A PKCS#10 request (DER, subject CN=<card id>) for the slot's key, signed inside the card. */
  createCsr(slot: CardSlot, pin: string): Promise<Buffer>;
  /** Stores the issued certificate (DER). Refused if it is not for the slot's key. */
  writeCertificate(slot: CardSlot, der: Buffer): Promise<void>;
  /** The slot's certificate (DER), or undefined. No PIN needed. */
  certificate(slot: CardSlot): Promise<Buffer | undefined>;
  /**
   * Verifies the PIN and returns a Signer for the slot's key; the signature is made inside the card.
   * The Signer stops working when the card is closed (and, on PKCS#11, when the slot is verified again).
   */
  signer(slot: CardSlot, pin: string): Promise<Signer>;
  /** Changes the PIN; the old PIN is verified (a wrong one consumes a try). */
  changePin(slot: CardSlot, oldPin: string, newPin: string): Promise<void>;
  /**
   * At the municipal counter: sets a new PIN and unlocks the slot, with the counter's unblock
   * credential (software card: the card's unblock secret; PKCS#11: the token's SO PIN).
   */
  resetPin(slot: CardSlot, unblock: string, newPin: string): Promise<void>;
  close(): Promise<void>;
}

export class CardError extends Error {
  override name = 'CardError';
}

export class PinFormatError extends CardError {
  override name = 'PinFormatError';
}

const tries = (n: number) => `${n} ${n === 1 ? 'try' : 'tries'}`;

/** A wrong PIN. `triesLeft` is undefined when the card does not say. */
export class PinIncorrectError extends CardError {
  override name = 'PinIncorrectError';
  constructor(
    readonly slot: CardSlot,
    readonly triesLeft: number | undefined,
    detail?: string,
  ) {
    const rule = PIN_RULES[slot];
    super(
      triesLeft === 0
        ? `${rule.name} PIN incorrect: no tries left; the PIN is now locked and must be reset at the municipal counter`
        : triesLeft === undefined
          ? `${rule.name} PIN incorrect${detail ? `: ${detail}` : ''} (the card locks after ${tries(rule.maxTries)} in a row)`
          : `${rule.name} PIN incorrect: ${tries(triesLeft)} left before the card locks`,
    );
  }
}

export class PinLockedError extends CardError {
  override name = 'PinLockedError';
  constructor(readonly slot: CardSlot) {
    super(
      `the ${PIN_RULES[slot].name} PIN is locked (no tries left); it must be reset at the municipal counter`,
    );
  }
}

/** The counter's unblock credential was wrong (or is itself blocked). */
export class UnblockError extends CardError {
  override name = 'UnblockError';
}

export const SLOT_TITLES: Readonly<Record<CardSlot, string>> = {
  sign: 'sign (署名用, signature)',
  auth: 'auth (利用者証明用, user authentication)',
};

export { tries as triesText };
