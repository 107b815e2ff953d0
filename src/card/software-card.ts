// A software IC card: one JSON file per card, for development and tests.
//
// IT OFFERS NO HARDWARE PROTECTION. The private keys in the file are encrypted (AES-256-GCM over the
// PKCS#8 DER) with keys derived from a card-internal secret that is stored in the same file: anyone
// who can read the file can take the keys and brute-force the PINs offline. What it does model
// faithfully is the card's API boundary: no method ever returns a private key, signatures are made
// "inside" (in this module), PINs are checked with retry counters and lock-out, and a locked PIN
// needs the counter's unblock secret. Keep the file mode 0600 (it is written so).
//
// File layout (JSON, written atomically: temporary file + fsync + rename):
//   id, kdf (scrypt parameters), cardSecret, unblock {salt, hash, triesLeft},
//   slots.{sign,auth}: algorithm, publicKey (SPKI), encryptedKey {salt, iv, tag, data}, certificate,
//                      pin {salt, hash} (salted scrypt, never the PIN), triesLeft, locked
//
// PIN checks: the decremented counter is written to disk BEFORE the PIN is compared and restored only
// after a match, so killing the process mid-check cannot buy extra tries. Hashes are compared in
// constant time. Operations on one SoftwareCard object are serialised; between objects and processes
// every state-changing operation holds a lock file (`<file>.lock`, see file-lock.ts) and re-reads the
// file first, so counters are shared by everyone using the file.

import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  generateKeyPair,
  hkdfSync,
  type KeyObject,
  randomBytes,
  scrypt,
  timingSafeEqual,
  X509Certificate,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { readTlv } from '../core/der.ts';
import { KEY_ALGORITHMS, type KeyAlgorithm, type Signer } from '../core/signer.ts';
import { SoftwareSigner } from '../keys/software.ts';
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
  triesText,
  UnblockError,
} from './card.ts';
import { createCsr } from './csr.ts';
import { createFileAtomic, FileLockTimeoutError, withFileLock, writeFileAtomic } from './file-lock.ts';

const FORMAT = 'open-jpki-software-card';
const VERSION = 1;
/** Wrong unblock secrets in a row before the card can no longer be reset (it must be replaced). */
export const UNBLOCK_MAX_TRIES = 10;
const CARD_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
const DEFAULT_KDF: ScryptParams = { N: 1 << 14, r: 8, p: 1 };

interface SecretHash {
  salt: string;
  hash: string;
}

interface EncryptedKey {
  salt: string;
  iv: string;
  tag: string;
  data: string;
}

interface SlotState {
  algorithm: KeyAlgorithm | null;
  publicKey: string | null;
  encryptedKey: EncryptedKey | null;
  certificate: string | null;
  pin: SecretHash;
  triesLeft: number;
  locked: boolean;
}

interface CardState {
  format: typeof FORMAT;
  version: typeof VERSION;
  id: string;
  createdAt: string;
  kdf: { name: 'scrypt' } & ScryptParams;
  /** Card-internal secret the key-encryption keys are derived from. Never leaves through the API. */
  cardSecret: string;
  unblock: SecretHash & { triesLeft: number };
  slots: Record<CardSlot, SlotState>;
}

export interface CreateSoftwareCardOptions {
  /** Signature PIN: 6–16 of A–Z and 0–9. */
  signPin: string;
  /** Authentication PIN: 4 digits. */
  authPin: string;
  /** The counter's unblock secret (PUK) for PIN resets: 8 to 256 characters. */
  unblock: string;
  /** Card serial; default a random `SC` + 16 hex digits. */
  id?: string;
  /** scrypt parameters for PIN hashes (tests may lower N; default N=2^14, r=8, p=1). */
  kdf?: ScryptParams;
}

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

const b64 = (b: Buffer) => b.toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64');

async function hashSecret(secret: string, kdf: ScryptParams, salt = randomBytes(16)): Promise<SecretHash> {
  const hash = await scryptAsync(secret.normalize('NFC'), salt, 32, { ...kdf, maxmem: 256 * kdf.N * kdf.r });
  return { salt: b64(salt), hash: b64(hash) };
}

async function secretMatches(secret: string, stored: SecretHash, kdf: ScryptParams): Promise<boolean> {
  const { hash } = await hashSecret(secret, kdf, unb64(stored.salt));
  const expected = unb64(stored.hash);
  const actual = unb64(hash);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function checkUnblockFormat(unblock: unknown): asserts unblock is string {
  if (typeof unblock !== 'string' || unblock.length < 8 || unblock.length > 256)
    throw new CardError('the unblock secret must be 8 to 256 characters');
}

function emptySlot(pin: SecretHash, slot: CardSlot): SlotState {
  return {
    algorithm: null,
    publicKey: null,
    encryptedKey: null,
    certificate: null,
    pin,
    triesLeft: PIN_RULES[slot].maxTries,
    locked: false,
  };
}

/** AAD binding an encrypted key to its card, slot and public key. */
const keyAad = (id: string, slot: CardSlot, spki: Buffer) =>
  Buffer.concat([Buffer.from(`${FORMAT}\0${id}\0${slot}\0`, 'utf8'), spki]);

function keyEncryptionKey(st: CardState, slot: CardSlot, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', unb64(st.cardSecret), salt, `${FORMAT} key ${slot}`, 32));
}

function encryptKey(st: CardState, slot: CardSlot, key: KeyObject, spki: Buffer): EncryptedKey {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyEncryptionKey(st, slot, salt), iv);
  cipher.setAAD(keyAad(st.id, slot, spki));
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const data = Buffer.concat([cipher.update(der), cipher.final()]);
  der.fill(0);
  return { salt: b64(salt), iv: b64(iv), tag: b64(cipher.getAuthTag()), data: b64(data) };
}

function decryptKey(
  st: CardState,
  slot: CardSlot,
): { key: KeyObject; algorithm: KeyAlgorithm; spki: Buffer } {
  const s = st.slots[slot];
  if (!s.encryptedKey || !s.publicKey || !s.algorithm)
    throw new CardError(`the ${slot} slot of card ${st.id} has no key; generate one first`);
  const spki = unb64(s.publicKey);
  const e = s.encryptedKey;
  let der: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyEncryptionKey(st, slot, unb64(e.salt)), unb64(e.iv));
    decipher.setAAD(keyAad(st.id, slot, spki));
    decipher.setAuthTag(unb64(e.tag));
    der = Buffer.concat([decipher.update(unb64(e.data)), decipher.final()]);
  } catch {
    throw new CardError(`the ${slot} key of card ${st.id} is damaged (it does not decrypt)`);
  }
  try {
    return {
      key: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
      algorithm: s.algorithm,
      spki,
    };
  } finally {
    der.fill(0);
  }
}

function parseState(text: string, path: string): CardState {
  const bad = (why: string) => new CardError(`${path} is not a usable software card file (${why})`);
  let st: CardState;
  try {
    st = JSON.parse(text) as CardState;
  } catch {
    throw bad('not JSON');
  }
  if (st?.format !== FORMAT) throw bad('wrong format marker');
  if (st.version !== VERSION) throw bad(`version ${String(st.version)}, expected ${VERSION}`);
  if (typeof st.id !== 'string' || !CARD_ID.test(st.id)) throw bad('bad card id');
  const k = st.kdf;
  if (
    k?.name !== 'scrypt' ||
    !Number.isInteger(k.N) ||
    k.N < 1024 ||
    k.N > 1 << 20 ||
    (k.N & (k.N - 1)) !== 0 ||
    !Number.isInteger(k.r) ||
    k.r < 1 ||
    k.r > 32 ||
    !Number.isInteger(k.p) ||
    k.p < 1 ||
    k.p > 16
  )
    throw bad('bad scrypt parameters');
  if (typeof st.cardSecret !== 'string' || unb64(st.cardSecret).length !== 32) throw bad('bad card secret');
  const isHash = (h: SecretHash | undefined) => typeof h?.salt === 'string' && typeof h.hash === 'string';
  if (!isHash(st.unblock) || !Number.isInteger(st.unblock.triesLeft)) throw bad('bad unblock record');
  for (const slot of CARD_SLOTS) {
    const s = st.slots?.[slot];
    if (!s || !isHash(s.pin) || !Number.isInteger(s.triesLeft) || typeof s.locked !== 'boolean')
      throw bad(`bad ${slot} slot`);
    if (s.triesLeft < 0 || s.triesLeft > PIN_RULES[slot].maxTries) throw bad(`bad ${slot} retry counter`);
    if (s.algorithm !== null && !KEY_ALGORITHMS.includes(s.algorithm)) throw bad(`bad ${slot} algorithm`);
    if (
      (s.publicKey === null) !== (s.encryptedKey === null) ||
      (s.publicKey === null) !== (s.algorithm === null)
    )
      throw bad(`inconsistent ${slot} key`);
  }
  return st;
}

/** The DER certificate, checked to be one whole X.509 certificate. */
function parseCertificate(der: Buffer): X509Certificate {
  try {
    if (readTlv(der, 0).end !== der.length) throw new Error('trailing data');
    return new X509Certificate(der);
  } catch {
    throw new CardError('not a DER X.509 certificate');
  }
}

/** A development/test card in a JSON file. See the file comment: no hardware protection. */
export class SoftwareCard implements IcCard {
  readonly kind = 'software';
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    readonly path: string,
    readonly id: string,
  ) {}

  /** Creates a new card file; refuses if the file exists. */
  static async create(path: string, options: CreateSoftwareCardOptions): Promise<SoftwareCard> {
    checkPinFormat('sign', options.signPin);
    checkPinFormat('auth', options.authPin);
    checkUnblockFormat(options.unblock);
    const id = options.id ?? `SC${randomBytes(8).toString('hex').toUpperCase()}`;
    if (!CARD_ID.test(id))
      throw new CardError(`invalid card id "${id}" (letters, digits, . _ -; at most 64)`);
    const kdf = options.kdf ?? DEFAULT_KDF;
    const [signPin, authPin, unblock] = await Promise.all([
      hashSecret(options.signPin, kdf),
      hashSecret(options.authPin, kdf),
      hashSecret(options.unblock, kdf),
    ]);
    const state: CardState = {
      format: FORMAT,
      version: VERSION,
      id,
      createdAt: new Date().toISOString(),
      kdf: { name: 'scrypt', ...kdf },
      cardSecret: b64(randomBytes(32)),
      unblock: { ...unblock, triesLeft: UNBLOCK_MAX_TRIES },
      slots: { sign: emptySlot(signPin, 'sign'), auth: emptySlot(authPin, 'auth') },
    };
    parseState(JSON.stringify(state), path); // the parameters given must make a file open() accepts
    try {
      await createFileAtomic(path, serialise(state));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new CardError(`${path} exists; refusing to overwrite a card`);
      throw e;
    }
    return new SoftwareCard(path, id);
  }

  /** Opens an existing card file. */
  static async open(path: string): Promise<SoftwareCard> {
    const st = await readState(path);
    return new SoftwareCard(path, st.id);
  }

  /** Runs `fn` after everything queued on this object before it. */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CardError(`card ${this.id} is closed`));
    const result = this.#queue.then(() => {
      if (this.#closed) throw new CardError(`card ${this.id} is closed`);
      return fn();
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** A read of the current file (writes are renames, so no lock is needed). */
  #read<T>(fn: (st: CardState) => T): Promise<T> {
    return this.#enqueue(async () => fn(await this.#load()));
  }

  /** A state-changing operation: the lock file is held and the state read fresh from the file. */
  #update<T>(fn: (st: CardState) => Promise<T>): Promise<T> {
    return this.#enqueue(async () => {
      try {
        return await withFileLock(this.path, async () => fn(await this.#load()));
      } catch (e) {
        if (e instanceof FileLockTimeoutError) throw new CardError(e.message);
        throw e;
      }
    });
  }

  async #load(): Promise<CardState> {
    const st = await readState(this.path);
    if (st.id !== this.id) throw new CardError(`${this.path} now holds card ${st.id}, not ${this.id}`);
    return st;
  }

  #save(st: CardState): Promise<void> {
    return writeFileAtomic(this.path, serialise(st));
  }

  /**
   * Checks the PIN inside an update. The spent try is on disk before the comparison; it is given
   * back only on a match.
   */
  async #verifyPin(st: CardState, slot: CardSlot, pin: string): Promise<void> {
    checkPinFormat(slot, pin);
    const s = st.slots[slot];
    if (s.locked || s.triesLeft <= 0) throw new PinLockedError(slot);
    s.triesLeft -= 1;
    s.locked = s.triesLeft === 0;
    await this.#save(st);
    if (!(await secretMatches(pin, s.pin, st.kdf))) throw new PinIncorrectError(slot, s.triesLeft);
    s.triesLeft = PIN_RULES[slot].maxTries;
    s.locked = false;
    await this.#save(st);
  }

  async pinStatus(slot: CardSlot): Promise<PinStatus> {
    checkSlot(slot);
    return this.#read((st) => {
      const s = st.slots[slot];
      return { triesLeft: s.triesLeft, maxTries: PIN_RULES[slot].maxTries, locked: s.locked };
    });
  }

  /** Tries left on the unblock secret (the counter's view). */
  async unblockTriesLeft(): Promise<number> {
    return this.#read((st) => st.unblock.triesLeft);
  }

  async keyInfo(slot: CardSlot): Promise<CardKeyInfo | undefined> {
    checkSlot(slot);
    return this.#read((st) => {
      const s = st.slots[slot];
      return s.algorithm && s.publicKey
        ? { algorithm: s.algorithm, publicKeySpki: unb64(s.publicKey) }
        : undefined;
    });
  }

  async generateKey(slot: CardSlot, algorithm: KeyAlgorithm, pin: string): Promise<Buffer> {
    checkSlot(slot);
    if (!KEY_ALGORITHMS.includes(algorithm))
      throw new CardError(`unsupported algorithm ${algorithm} (${KEY_ALGORITHMS.join(' or ')})`);
    return this.#update(async (st) => {
      await this.#verifyPin(st, slot, pin);
      const { privateKey, publicKey } =
        algorithm === 'rsa-2048'
          ? await generateKeyPairAsync('rsa', { modulusLength: 2048 })
          : await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      const s = st.slots[slot];
      s.algorithm = algorithm;
      s.publicKey = b64(spki);
      s.encryptedKey = encryptKey(st, slot, privateKey, spki);
      s.certificate = null; // it was for the old key
      await this.#save(st);
      return spki;
    });
  }

  async createCsr(slot: CardSlot, pin: string): Promise<Buffer> {
    checkSlot(slot);
    return this.#update(async (st) => {
      await this.#verifyPin(st, slot, pin);
      const { key, algorithm } = decryptKey(st, slot);
      return createCsr(new SoftwareSigner(key, algorithm), st.id);
    });
  }

  async writeCertificate(slot: CardSlot, der: Buffer): Promise<void> {
    checkSlot(slot);
    const cert = parseCertificate(Buffer.from(der));
    const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
    return this.#update(async (st) => {
      const s = st.slots[slot];
      if (!s.publicKey)
        throw new CardError(`the ${slot} slot of card ${st.id} has no key to match a certificate`);
      if (!unb64(s.publicKey).equals(certSpki))
        throw new CardError(
          `the certificate (serial ${cert.serialNumber}) is for another key than the one in the ${slot} slot of card ${st.id}`,
        );
      s.certificate = b64(Buffer.from(der));
      await this.#save(st);
    });
  }

  async certificate(slot: CardSlot): Promise<Buffer | undefined> {
    checkSlot(slot);
    return this.#read((st) => {
      const c = st.slots[slot].certificate;
      return c ? unb64(c) : undefined;
    });
  }

  async signer(slot: CardSlot, pin: string): Promise<Signer> {
    checkSlot(slot);
    return this.#update(async (st) => {
      await this.#verifyPin(st, slot, pin);
      const s = st.slots[slot];
      if (!s.algorithm || !s.publicKey)
        throw new CardError(`the ${slot} slot of card ${st.id} has no key; generate one first`);
      const spki = unb64(s.publicKey);
      return new SoftwareCardSigner(s.algorithm, spki, (data) => this.#signInside(slot, spki, data));
    });
  }

  /** The signature, made with the key decrypted for this one operation. */
  #signInside(slot: CardSlot, spki: Buffer, data: Buffer | readonly Buffer[]): Promise<Buffer> {
    return this.#read((st) => {
      const s = st.slots[slot];
      if (s.locked) throw new PinLockedError(slot);
      if (!s.publicKey || !unb64(s.publicKey).equals(spki))
        throw new CardError(`the ${slot} key of card ${st.id} has been replaced; verify the PIN again`);
      const { key, algorithm } = decryptKey(st, slot);
      return new SoftwareSigner(key, algorithm).signSync(data);
    });
  }

  async changePin(slot: CardSlot, oldPin: string, newPin: string): Promise<void> {
    checkSlot(slot);
    checkPinFormat(slot, newPin, 'new PIN');
    return this.#update(async (st) => {
      await this.#verifyPin(st, slot, oldPin);
      const s = st.slots[slot];
      s.pin = await hashSecret(newPin, st.kdf);
      await this.#save(st);
    });
  }

  async resetPin(slot: CardSlot, unblock: string, newPin: string): Promise<void> {
    checkSlot(slot);
    checkPinFormat(slot, newPin, 'new PIN');
    if (typeof unblock !== 'string' || unblock.length === 0)
      throw new UnblockError('no unblock secret given');
    return this.#update(async (st) => {
      const u = st.unblock;
      if (u.triesLeft <= 0)
        throw new UnblockError(
          `the unblock secret of card ${st.id} is blocked after ${UNBLOCK_MAX_TRIES} wrong attempts; the card must be replaced`,
        );
      u.triesLeft -= 1;
      await this.#save(st);
      if (!(await secretMatches(unblock, u, st.kdf)))
        throw new UnblockError(
          u.triesLeft === 0
            ? `unblock secret incorrect; it is now blocked and card ${st.id} must be replaced`
            : `unblock secret incorrect (${triesText(u.triesLeft)} left); the PIN was not reset`,
        );
      u.triesLeft = UNBLOCK_MAX_TRIES;
      const s = st.slots[slot];
      s.pin = await hashSecret(newPin, st.kdf);
      s.triesLeft = PIN_RULES[slot].maxTries;
      s.locked = false;
      await this.#save(st);
    });
  }

  /** Waits for queued operations, then refuses further ones (signers included). Idempotent. */
  async close(): Promise<void> {
    const pending = this.#queue;
    this.#closed = true;
    await pending;
  }
}

/** A Signer whose key stays in the card: it holds no key, only the way to ask the card. */
class SoftwareCardSigner implements Signer {
  readonly #sign: (data: Buffer | readonly Buffer[]) => Promise<Buffer>;
  constructor(
    readonly algorithm: KeyAlgorithm,
    readonly publicKeySpki: Buffer,
    sign: (data: Buffer | readonly Buffer[]) => Promise<Buffer>,
  ) {
    this.#sign = sign;
  }

  sign(data: Buffer | readonly Buffer[]): Promise<Buffer> {
    return this.#sign(data);
  }
}

async function readState(path: string): Promise<CardState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CardError(`no card file ${path}`);
    throw new CardError(`cannot read the card file ${path}: ${(e as Error).message}`);
  }
  return parseState(text, path);
}

function serialise(st: CardState): string {
  return `${JSON.stringify(st, null, 2)}\n`;
}

function generateKeyPairAsync(
  type: 'rsa' | 'ec',
  options: { modulusLength: number } | { namedCurve: string },
): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    generateKeyPair(type as 'rsa', options as { modulusLength: number }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ publicKey, privateKey }),
    );
  });
}
