import { createHash, createPublicKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { endianness } from 'node:os';
import pkcs11js from 'pkcs11js';
import { oid, readChildren, readTlv, sequence, slice, unsignedInteger } from '../core/der.ts';
import { OID } from '../core/oids.ts';
import type { KeyAlgorithm, Signer } from '../core/signer.ts';
import { KeyExistsError, KeyNotFoundError, type KeyStore } from './keystore.ts';
import { algorithmOf } from './software.ts';

// A KeyStore on a PKCS#11 token (HSM, SoftHSM2, smart card), written on pkcs11js directly rather
// than graphene-pk11: graphene's multi-part Sign.final() is synchronous only, while pkcs11js has
// C_SignFinalAsync / C_SignAsync / C_GenerateKeyPairAsync, which run the slow part (the private-key
// operation inside the token) off the event loop. Plain CKR_* codes also make the error messages easy.

export interface Pkcs11Options {
  /** Path of the PKCS#11 library (.so), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** CKA_LABEL of the token (trailing blanks are ignored). */
  tokenLabel: string;
  /** User PIN. */
  pin: string;
}

type Handle = Buffer;
type Template = pkcs11js.Template;

/** DER of the namedCurve OID that is CKA_EC_PARAMS for P-256. */
const P256_PARAMS = oid(OID.prime256v1);
/** DigestInfo prefix for SHA-256 (RFC 8017 9.2 note 1), for tokens that only have raw CKM_RSA_PKCS. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
/** Largest piece handed to one C_SignUpdate; the event loop gets a turn every YIELD_EVERY bytes. */
const UPDATE_CHUNK = 1 << 20;
const YIELD_EVERY = 8 << 20;
/** Return codes meaning "this token cannot do that mechanism (multi-part)": fall back to hashing here. */
const MECHANISM_UNSUPPORTED = new Set([
  pkcs11js.CKR_MECHANISM_INVALID,
  pkcs11js.CKR_FUNCTION_NOT_SUPPORTED,
  pkcs11js.CKR_OPERATION_NOT_INITIALIZED,
]);

function ckr(e: unknown): number | undefined {
  return e instanceof pkcs11js.Pkcs11Error ? e.code : undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const trimLabel = (s: string) => s.replace(/[\s\0]+$/, '');

/** A CK_ULONG attribute value (native byte order, 4 or 8 bytes). */
function ulong(b: Buffer): number {
  const le = endianness() === 'LE';
  if (b.length === 8) return Number(le ? b.readBigUInt64LE() : b.readBigUInt64BE());
  if (b.length === 4) return le ? b.readUInt32LE() : b.readUInt32BE();
  throw new Error(`unexpected CK_ULONG attribute of ${b.length} bytes`);
}

const b64url = (b: Buffer) => b.toString('base64url');

// --- one initialised library per path, shared by all stores of the process ------------------------
//
// dlopen() returns the same library for every load of a path, so C_Initialize/C_Finalize and the login
// state (per application and token, not per session) are process-wide: a store must not finalise the
// library or log out while another store still uses it. Hence reference counts.

interface Login {
  count: number;
  pinHash: Buffer;
  /** False if someone else in the process had already logged in: then we never log out. */
  ours: boolean;
}

interface SharedModule {
  key: string;
  lib: pkcs11js.PKCS11;
  refs: number;
  /** False if the library was already initialised by other code in the process: then we never finalise. */
  ownsInit: boolean;
  logins: Map<string, Login>;
}

const modules = new Map<string, SharedModule>();

function acquireModule(path: string): SharedModule {
  if (!existsSync(path)) throw new Error(`PKCS#11 module not found: ${path}`);
  const key = realpathSync(path);
  const hit = modules.get(key);
  if (hit) {
    hit.refs++;
    return hit;
  }
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(path);
  } catch (e) {
    throw new Error(`cannot load PKCS#11 module ${path}: ${messageOf(e)}`);
  }
  let ownsInit = true;
  try {
    // Async calls run on libuv's thread pool, so the library must lock for itself.
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (ckr(e) === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) ownsInit = false;
    else {
      closeQuietly(lib);
      throw new Error(`C_Initialize of PKCS#11 module ${path} failed: ${messageOf(e)}`);
    }
  }
  const shared: SharedModule = { key, lib, refs: 1, ownsInit, logins: new Map() };
  modules.set(key, shared);
  return shared;
}

function releaseModule(m: SharedModule): void {
  if (--m.refs > 0) return;
  modules.delete(m.key);
  if (m.ownsInit) {
    try {
      m.lib.C_Finalize();
    } catch {
      // already finalised
    }
  }
  closeQuietly(m.lib);
}

function closeQuietly(lib: pkcs11js.PKCS11): void {
  try {
    lib.close();
  } catch {
    // not loaded
  }
}

// --- the store -----------------------------------------------------------------------------------

interface KeyRef {
  label: string;
  handle: Handle;
  algorithm: KeyAlgorithm;
  /** Signature buffer size to hand to C_Sign / C_SignFinal. */
  maxSignatureLength: number;
}

/**
 * Keys inside a PKCS#11 token. Private keys are generated on the token as non-extractable, sensitive
 * token objects and never leave it; signing is done by the token. One R/W session per store; every
 * operation on it goes through a promise queue, because a PKCS#11 session runs one operation at a time.
 */
export class Pkcs11KeyStore implements KeyStore {
  readonly kind = 'pkcs11';
  /** The PIN helper, also reachable as a static for callers that only import the class. */
  static readonly resolvePkcs11Pin = resolvePkcs11Pin;

  private readonly shared: SharedModule;
  private readonly lib: pkcs11js.PKCS11;
  private readonly slot: Handle;
  private readonly slotKey: string;
  private readonly mechanisms: Set<number>;
  private session: Handle | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  /** undefined until the first ECDSA signature shows whether CKM_ECDSA_SHA256 works multi-part. */
  private ecdsaMultipart: boolean | undefined;

  /** Module path and token label (the PIN is not kept). */
  readonly module: string;
  readonly tokenLabel: string;

  constructor(options: Pkcs11Options) {
    if (!options.module) throw new Error('PKCS#11: no module path given');
    if (!options.tokenLabel) throw new Error('PKCS#11: no token label given');
    if (!options.pin) throw new Error('PKCS#11: no PIN given (JPKI_PKCS11_PIN or JPKI_PKCS11_PIN_FILE)');
    this.module = options.module;
    this.tokenLabel = options.tokenLabel;
    this.shared = acquireModule(options.module);
    this.lib = this.shared.lib;
    try {
      this.slot = this.findSlot();
      this.slotKey = this.slot.toString('hex');
      this.mechanisms = new Set(this.lib.C_GetMechanismList(this.slot));
      this.session = this.lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      this.login(options.pin);
    } catch (e) {
      if (this.session) {
        try {
          this.lib.C_CloseSession(this.session);
        } catch {
          // ignore
        }
        this.session = undefined;
      }
      releaseModule(this.shared);
      throw e;
    }
    if (!this.mechanisms.has(pkcs11js.CKM_ECDSA_SHA256)) this.ecdsaMultipart = false;
  }

  private get tokenDescription(): string {
    return `token "${this.tokenLabel}" (${this.module})`;
  }

  private findSlot(): Handle {
    const present: string[] = [];
    let uninitialised = 0;
    const matches: Handle[] = [];
    for (const slot of this.lib.C_GetSlotList(true)) {
      const info = this.lib.C_GetTokenInfo(slot);
      if (!(info.flags & pkcs11js.CKF_TOKEN_INITIALIZED)) {
        uninitialised++;
        continue;
      }
      const label = trimLabel(info.label);
      present.push(label);
      if (label === this.tokenLabel) matches.push(slot);
    }
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1)
      throw new Error(
        `PKCS#11: ${matches.length} tokens are labelled "${this.tokenLabel}"; labels must be unique`,
      );
    const list = present.length ? present.map((l) => `"${l}"`).join(', ') : 'none';
    const extra = uninitialised ? ` (plus ${uninitialised} uninitialised)` : '';
    throw new Error(
      `PKCS#11: no token labelled "${this.tokenLabel}" in ${this.module}; tokens present: ${list}${extra}`,
    );
  }

  private login(pin: string): void {
    const pinHash = createHash('sha256').update(pin, 'utf8').digest();
    const existing = this.shared.logins.get(this.slotKey);
    if (existing) {
      // The token is logged in for the whole process already; C_Login would not look at this PIN.
      if (!timingSafeEqual(existing.pinHash, pinHash))
        throw new Error(
          `PKCS#11: ${this.tokenDescription} is already logged in by another key store in this process with a different PIN`,
        );
      existing.count++;
      return;
    }
    let ours = true;
    try {
      this.lib.C_Login(this.session!, pkcs11js.CKU_USER, pin);
    } catch (e) {
      const code = ckr(e);
      if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) ours = false;
      else if (code === pkcs11js.CKR_PIN_INCORRECT || code === pkcs11js.CKR_PIN_LEN_RANGE) {
        const flags = this.lib.C_GetTokenInfo(this.slot).flags;
        const warning =
          flags & pkcs11js.CKF_USER_PIN_FINAL_TRY
            ? '; one more wrong attempt will lock the PIN'
            : flags & pkcs11js.CKF_USER_PIN_COUNT_LOW
              ? '; few attempts are left before the PIN locks'
              : '';
        throw new Error(`PKCS#11: wrong PIN for ${this.tokenDescription}${warning}`);
      } else if (code === pkcs11js.CKR_PIN_LOCKED)
        throw new Error(`PKCS#11: the user PIN of ${this.tokenDescription} is locked`);
      else if (code === pkcs11js.CKR_USER_PIN_NOT_INITIALIZED)
        throw new Error(`PKCS#11: the user PIN of ${this.tokenDescription} has not been initialised`);
      else throw new Error(`PKCS#11: login to ${this.tokenDescription} failed: ${messageOf(e)}`);
    }
    this.shared.logins.set(this.slotKey, { count: 1, pinHash, ours });
  }

  /** Runs `fn` after everything queued before it; the session is used by one operation at a time. */
  private run<T>(fn: (session: Handle) => T | Promise<T>): Promise<T> {
    if (this.closing)
      return Promise.reject(new Error(`PKCS#11 key store for ${this.tokenDescription} is closed`));
    const result = this.queue.then(() => {
      if (!this.session) throw new Error(`PKCS#11 key store for ${this.tokenDescription} is closed`);
      return fn(this.session);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private find(session: Handle, template: Template): Handle[] {
    return findObjects(this.lib, session, template);
  }

  private findPrivateKeys(session: Handle, label: string): Handle[] {
    return this.find(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_LABEL, value: Buffer.from(label, 'utf8') },
    ]);
  }

  private attributes(session: Handle, object: Handle, types: readonly number[]): Buffer[] {
    const result = this.lib.C_GetAttributeValue(
      session,
      object,
      types.map((type) => ({ type })),
    );
    return types.map((type) => result.find((a) => a.type === type)?.value ?? Buffer.alloc(0));
  }

  /** Labels of the private keys on the token (for choosing a card's signing key). */
  async privateKeyLabels(): Promise<string[]> {
    return this.run((session) =>
      this.find(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]).map((k) =>
        this.attributes(session, k, [pkcs11js.CKA_LABEL])[0]!.toString('utf8'),
      ),
    );
  }

  async has(label: string): Promise<boolean> {
    checkLabel(label);
    return this.run((session) => this.findPrivateKeys(session, label).length > 0);
  }

  async generate(label: string, algorithm: KeyAlgorithm): Promise<Signer> {
    checkLabel(label);
    if (algorithm !== 'rsa-2048' && algorithm !== 'ecdsa-p256')
      throw new Error(`unsupported algorithm ${algorithm}`);
    return this.run(async (session) => {
      if (this.findPrivateKeys(session, label).length > 0) throw new KeyExistsError(label);
      const labelBytes = Buffer.from(label, 'utf8');
      const id = randomBytes(20);
      const common: Template = [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: labelBytes },
        { type: pkcs11js.CKA_ID, value: id },
      ];
      const rsa = algorithm === 'rsa-2048';
      const publicTemplate: Template = [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: false },
        { type: pkcs11js.CKA_VERIFY, value: true },
        ...(rsa
          ? [
              { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
              { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([0x01, 0x00, 0x01]) },
            ]
          : [{ type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS }]),
      ];
      const privateTemplate: Template = [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
        ...(rsa
          ? [
              { type: pkcs11js.CKA_DECRYPT, value: false },
              { type: pkcs11js.CKA_UNWRAP, value: false },
            ]
          : [{ type: pkcs11js.CKA_DERIVE, value: false }]),
      ];
      const mechanism = rsa ? pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN;
      let pair: pkcs11js.KeyPair;
      try {
        pair = await this.lib.C_GenerateKeyPairAsync(session, { mechanism }, publicTemplate, privateTemplate);
      } catch (e) {
        throw new Error(
          `PKCS#11: generating a ${algorithm} key "${label}" on ${this.tokenDescription} failed: ${messageOf(e)}`,
        );
      }
      try {
        // Another process may have generated the same label between our check and now.
        if (this.findPrivateKeys(session, label).length > 1) throw new KeyExistsError(label);
        const [sensitive, extractable] = this.attributes(session, pair.privateKey, [
          pkcs11js.CKA_SENSITIVE,
          pkcs11js.CKA_EXTRACTABLE,
        ]);
        if (sensitive?.[0] !== 1 || extractable?.[0] !== 0)
          throw new Error(
            `PKCS#11: ${this.tokenDescription} did not make key "${label}" sensitive and non-extractable`,
          );
        return this.signerFor(session, label, pair.privateKey, pair.publicKey);
      } catch (e) {
        for (const object of [pair.privateKey, pair.publicKey]) {
          try {
            this.lib.C_DestroyObject(session, object);
          } catch {
            // best effort
          }
        }
        throw e;
      }
    });
  }

  async open(label: string): Promise<Signer> {
    checkLabel(label);
    return this.run((session) => {
      const keys = this.findPrivateKeys(session, label);
      if (keys.length === 0) throw new KeyNotFoundError(label);
      if (keys.length > 1) throw new Error(`PKCS#11: ${keys.length} private keys are labelled "${label}"`);
      const privateKey = keys[0]!;
      const [id] = this.attributes(session, privateKey, [pkcs11js.CKA_ID]);
      const labelBytes = Buffer.from(label, 'utf8');
      const byId = id?.length
        ? this.find(session, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
            { type: pkcs11js.CKA_ID, value: id },
          ])
        : [];
      const byLabel = this.find(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
        { type: pkcs11js.CKA_LABEL, value: labelBytes },
      ]);
      const both = byId.filter((h) => byLabel.some((l) => l.equals(h)));
      const publicKey =
        both[0] ??
        (byId.length === 1 ? byId[0] : undefined) ??
        (byLabel.length === 1 ? byLabel[0] : undefined);
      return this.signerFor(session, label, privateKey, publicKey);
    });
  }

  /**
   * Destroys the private and public key objects labelled `label`, and certificate objects with the
   * same label. Returns how many objects were destroyed (0: there was no such key). For IC cards,
   * whose key slots are regenerated at the counter; the authority's keys are never deleted.
   */
  async deleteKey(label: string): Promise<number> {
    checkLabel(label);
    return this.run((session) => {
      const labelBytes = Buffer.from(label, 'utf8');
      const objects = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY, pkcs11js.CKO_CERTIFICATE].flatMap(
        (cls) =>
          this.find(session, [
            { type: pkcs11js.CKA_CLASS, value: cls },
            { type: pkcs11js.CKA_LABEL, value: labelBytes },
          ]),
      );
      for (const object of objects) {
        try {
          this.lib.C_DestroyObject(session, object);
        } catch (e) {
          throw new Error(`PKCS#11: cannot delete "${label}" on ${this.tokenDescription}: ${messageOf(e)}`);
        }
      }
      return objects.length;
    });
  }

  /** Builds the SPKI from the public key object (or the RSA private key's public attributes). */
  private signerFor(
    session: Handle,
    label: string,
    privateKey: Handle,
    publicKey: Handle | undefined,
  ): Pkcs11Signer {
    const [keyTypeBytes, canSign] = this.attributes(session, privateKey, [
      pkcs11js.CKA_KEY_TYPE,
      pkcs11js.CKA_SIGN,
    ]);
    if (canSign?.[0] !== 1)
      throw new Error(`PKCS#11: key "${label}" is not allowed to sign (CKA_SIGN false)`);
    const keyType = ulong(keyTypeBytes!);
    let spki: Buffer;
    if (keyType === pkcs11js.CKK_RSA) {
      // RSA private key objects carry the modulus and public exponent too.
      const source = publicKey ?? privateKey;
      const [n, e] = this.attributes(session, source, [pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT]);
      if (!n?.length || !e?.length) throw new Error(`PKCS#11: cannot read the RSA public key of "${label}"`);
      spki = createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' }).export({
        type: 'spki',
        format: 'der',
      });
    } else if (keyType === pkcs11js.CKK_EC) {
      if (!publicKey) throw new Error(`PKCS#11: no public key object found for EC key "${label}"`);
      const [params, point] = this.attributes(session, publicKey, [
        pkcs11js.CKA_EC_PARAMS,
        pkcs11js.CKA_EC_POINT,
      ]);
      if (!params?.equals(P256_PARAMS)) throw new Error(`PKCS#11: EC key "${label}" is not on P-256`);
      const { x, y } = ecPointCoordinates(point!, 32);
      spki = createPublicKey({
        key: { kty: 'EC', crv: 'P-256', x: b64url(x), y: b64url(y) },
        format: 'jwk',
      }).export({
        type: 'spki',
        format: 'der',
      });
    } else throw new Error(`PKCS#11: key "${label}" has unsupported CKA_KEY_TYPE ${keyType}`);
    let algorithm: KeyAlgorithm;
    try {
      algorithm = algorithmOf(createPublicKey({ key: spki, format: 'der', type: 'spki' }));
    } catch (e) {
      throw new Error(`PKCS#11: key "${label}": ${messageOf(e)}`);
    }
    const key: KeyRef = {
      label,
      handle: privateKey,
      algorithm,
      maxSignatureLength: algorithm === 'rsa-2048' ? 512 : 132,
    };
    return new Pkcs11Signer(this, key, spki);
  }

  /** @internal used by Pkcs11Signer */
  signWith(key: KeyRef, data: Buffer | readonly Buffer[]): Promise<Buffer> {
    const chunks: readonly Buffer[] = Buffer.isBuffer(data) ? [data] : data;
    return this.run(async (session) => {
      try {
        return key.algorithm === 'rsa-2048'
          ? await this.signRsa(session, key, chunks)
          : await this.signEcdsa(session, key, chunks);
      } catch (e) {
        if (e instanceof Error && e.message.startsWith('PKCS#11')) throw e;
        throw new Error(
          `PKCS#11: signing with "${key.label}" on ${this.tokenDescription} failed: ${messageOf(e)}`,
          {
            cause: e,
          },
        );
      }
    });
  }

  /** The mechanism `sign()` uses for keys of this algorithm (for logs and diagnostics). */
  mechanismFor(algorithm: KeyAlgorithm): string {
    if (algorithm === 'rsa-2048')
      return this.mechanisms.has(pkcs11js.CKM_SHA256_RSA_PKCS)
        ? 'CKM_SHA256_RSA_PKCS'
        : 'CKM_RSA_PKCS (SHA-256 DigestInfo made in software)';
    return this.ecdsaMultipart === false ? 'CKM_ECDSA (SHA-256 hashed in software)' : 'CKM_ECDSA_SHA256';
  }

  private async signRsa(session: Handle, key: KeyRef, chunks: readonly Buffer[]): Promise<Buffer> {
    if (this.mechanisms.has(pkcs11js.CKM_SHA256_RSA_PKCS)) {
      return this.signMultipart(session, key, pkcs11js.CKM_SHA256_RSA_PKCS, chunks);
    }
    const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, await sha256(chunks)]);
    return this.signOnce(session, key, pkcs11js.CKM_RSA_PKCS, digestInfo);
  }

  private async signEcdsa(session: Handle, key: KeyRef, chunks: readonly Buffer[]): Promise<Buffer> {
    let raw: Buffer | undefined;
    if (this.ecdsaMultipart !== false) {
      try {
        raw = await this.signMultipart(session, key, pkcs11js.CKM_ECDSA_SHA256, chunks, (code) => {
          if (!MECHANISM_UNSUPPORTED.has(code)) return false;
          this.ecdsaMultipart = false;
          return true;
        });
        this.ecdsaMultipart = true;
      } catch (e) {
        if (!(e instanceof FallBack)) throw e;
      }
    }
    raw ??= await this.signOnce(session, key, pkcs11js.CKM_ECDSA, await sha256(chunks));
    if (raw.length !== 64) throw new Error(`PKCS#11: unexpected ECDSA signature length ${raw.length}`);
    return sequence(unsignedInteger(raw.subarray(0, 32)), unsignedInteger(raw.subarray(32)));
  }

  /**
   * C_SignInit, C_SignUpdate per chunk (pieces of at most UPDATE_CHUNK, empty ones skipped: SoftHSM
   * answers CKR_ARGUMENTS_BAD to them), C_SignFinal on the thread pool. `fallBack(code)` may turn a
   * failure of init/update into a FallBack.
   */
  private async signMultipart(
    session: Handle,
    key: KeyRef,
    mechanism: number,
    chunks: readonly Buffer[],
    fallBack?: (code: number) => boolean,
  ): Promise<Buffer> {
    let active = false;
    try {
      this.lib.C_SignInit(session, { mechanism }, key.handle);
      active = true;
      let sinceYield = 0;
      for (const chunk of chunks) {
        for (let at = 0; at < chunk.length; at += UPDATE_CHUNK) {
          const piece = chunk.subarray(at, Math.min(chunk.length, at + UPDATE_CHUNK));
          this.lib.C_SignUpdate(session, piece);
          sinceYield += piece.length;
          if (sinceYield >= YIELD_EVERY) {
            sinceYield = 0;
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      }
      const signature = await this.lib.C_SignFinalAsync(session, Buffer.alloc(key.maxSignatureLength));
      active = false;
      return signature;
    } catch (e) {
      if (active) this.abortSign(session);
      const code = ckr(e);
      if (fallBack && code !== undefined && fallBack(code)) throw new FallBack();
      throw e;
    }
  }

  private async signOnce(session: Handle, key: KeyRef, mechanism: number, input: Buffer): Promise<Buffer> {
    this.lib.C_SignInit(session, { mechanism }, key.handle);
    try {
      return await this.lib.C_SignAsync(session, input, Buffer.alloc(key.maxSignatureLength));
    } catch (e) {
      this.abortSign(session);
      throw e;
    }
  }

  /**
   * Ends a failed signing operation so the session is usable again. Not every error ends it (SoftHSM
   * keeps the operation active after CKR_ARGUMENTS_BAD); C_SignFinal ends it in any case.
   */
  private abortSign(session: Handle): void {
    try {
      this.lib.C_SignFinal(session, Buffer.alloc(1024));
    } catch {
      // CKR_OPERATION_NOT_INITIALIZED: already ended
    }
  }

  /** Logs out (if this was the process's last store on the token), closes the session, finalises the library if unused. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.queue.then(() => this.teardown());
    return this.closing;
  }

  private teardown(): void {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    const login = this.shared.logins.get(this.slotKey);
    if (login && --login.count === 0) {
      this.shared.logins.delete(this.slotKey);
      if (login.ours) {
        try {
          this.lib.C_Logout(session);
        } catch {
          // not logged in any more
        }
      }
    }
    try {
      this.lib.C_CloseSession(session);
    } catch {
      // session already gone (token removed, library reset)
    }
    releaseModule(this.shared);
  }
}

class FallBack extends Error {}

/** A private key on the token. Signs through its store's queue. */
export class Pkcs11Signer implements Signer {
  readonly algorithm: KeyAlgorithm;
  readonly label: string;
  constructor(
    private readonly store: Pkcs11KeyStore,
    private readonly key: KeyRef,
    readonly publicKeySpki: Buffer,
  ) {
    this.algorithm = key.algorithm;
    this.label = key.label;
  }

  /** The PKCS#11 mechanism used (diagnostics). */
  get mechanism(): string {
    return this.store.mechanismFor(this.algorithm);
  }

  sign(data: Buffer | readonly Buffer[]): Promise<Buffer> {
    return this.store.signWith(this.key, data);
  }
}

async function sha256(chunks: readonly Buffer[]): Promise<Buffer> {
  const hash = createHash('sha256');
  let sinceYield = 0;
  for (const chunk of chunks) {
    hash.update(chunk);
    sinceYield += chunk.length;
    if (sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return hash.digest();
}

/**
 * x and y of an uncompressed point from CKA_EC_POINT, which PKCS#11 defines as the DER OCTET STRING
 * wrapping the point (some older tokens return the bare point; both are accepted).
 */
export function ecPointCoordinates(value: Buffer, size: number): { x: Buffer; y: Buffer } {
  let point = value;
  if (value.length !== 2 * size + 1 && value[0] === 0x04) {
    const t = readTlv(value, 0);
    if (t.end !== value.length) throw new Error('CKA_EC_POINT: trailing bytes after the OCTET STRING');
    point = value.subarray(t.contentStart, t.end);
  }
  if (point.length !== 2 * size + 1 || point[0] !== 0x04)
    throw new Error(`CKA_EC_POINT is not an uncompressed point of a ${size * 8}-bit curve`);
  return { x: point.subarray(1, 1 + size), y: point.subarray(1 + size) };
}

/** All objects on the token matching `template` (C_FindObjects in batches). */
function findObjects(lib: pkcs11js.PKCS11, session: Handle, template: Template): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    const out: Handle[] = [];
    for (;;) {
      const batch = lib.C_FindObjects(session, 32);
      if (batch.length === 0) return out;
      out.push(...batch);
    }
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

function checkLabel(label: string): void {
  if (
    typeof label !== 'string' ||
    label.length === 0 ||
    label.length > 128 ||
    /[\u0000-\u001f\u007f]/.test(label)
  )
    throw new Error(`invalid key label "${label}"`);
}

/**
 * The user PIN of the token: JPKI_PKCS11_PIN, or the contents of the file named by JPKI_PKCS11_PIN_FILE
 * (trailing newline removed). undefined if neither is set.
 */
export function resolvePkcs11Pin(env: NodeJS.ProcessEnv): string | undefined {
  if (env.JPKI_PKCS11_PIN) return env.JPKI_PKCS11_PIN;
  const file = env.JPKI_PKCS11_PIN_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new Error(`cannot read the PKCS#11 PIN file ${file} (JPKI_PKCS11_PIN_FILE): ${messageOf(e)}`);
  }
}

// --- a token without a user login: PIN status, public objects, PIN management ---------------------
//
// Added for IC cards (src/card/pkcs11-card.ts): what a card reader can do before any PIN is given
// (the PIN flags, the public key, the certificate), writing the certificate object (a public token
// object: a R/W public session may create it), and the PIN operations (C_SetPIN; C_InitPIN under the
// SO login, which is how a locked user PIN is reset). Shares the process-wide library and login
// bookkeeping with Pkcs11KeyStore.

/** Why a PIN operation failed. */
export type Pkcs11PinFailure = 'incorrect' | 'locked' | 'invalid' | 'not-initialised';

export class Pkcs11PinError extends Error {
  override name = 'Pkcs11PinError';
  constructor(
    message: string,
    readonly reason: Pkcs11PinFailure,
    /** Which PIN: the user's or the security officer's. */
    readonly user: 'user' | 'so',
  ) {
    super(message);
  }
}

export interface Pkcs11TokenStatus {
  label: string;
  manufacturer: string;
  model: string;
  serialNumber: string;
  /** CK_TOKEN_INFO.flags as read. */
  flags: number;
  userPinLocked: boolean;
  userPinFinalTry: boolean;
  userPinCountLow: boolean;
  soPinLocked: boolean;
  minPinLength: number;
  maxPinLength: number;
}

export interface Pkcs11TokenOptions {
  module: string;
  tokenLabel: string;
}

/** A token opened without a PIN (one R/W public session); see the section comment. */
export class Pkcs11Token {
  readonly module: string;
  readonly tokenLabel: string;
  private readonly shared: SharedModule;
  private readonly lib: pkcs11js.PKCS11;
  private readonly slot: Handle;
  private readonly slotKey: string;
  private session: Handle | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(options: Pkcs11TokenOptions) {
    if (!options.module) throw new Error('PKCS#11: no module path given');
    if (!options.tokenLabel) throw new Error('PKCS#11: no token label given');
    this.module = options.module;
    this.tokenLabel = options.tokenLabel;
    this.shared = acquireModule(options.module);
    this.lib = this.shared.lib;
    try {
      const matches = this.lib.C_GetSlotList(true).filter((slot) => {
        const info = this.lib.C_GetTokenInfo(slot);
        return info.flags & pkcs11js.CKF_TOKEN_INITIALIZED && trimLabel(info.label) === this.tokenLabel;
      });
      if (matches.length !== 1)
        throw new Error(
          matches.length === 0
            ? `PKCS#11: no token labelled "${this.tokenLabel}" in ${this.module}`
            : `PKCS#11: ${matches.length} tokens are labelled "${this.tokenLabel}"; labels must be unique`,
        );
      this.slot = matches[0]!;
      this.slotKey = this.slot.toString('hex');
      try {
        this.session = this.lib.C_OpenSession(
          this.slot,
          pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
        );
      } catch (e) {
        // A read-only card (a My Number Card through OpenSC): status, keys and certificates can still be read.
        if (ckr(e) !== pkcs11js.CKR_TOKEN_WRITE_PROTECTED) throw e;
        this.session = this.lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION);
      }
    } catch (e) {
      releaseModule(this.shared);
      throw e;
    }
  }

  private get description(): string {
    return `token "${this.tokenLabel}" (${this.module})`;
  }

  private run<T>(fn: (session: Handle) => T | Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new Error(`PKCS#11: ${this.description} is closed`));
    const result = this.queue.then(() => {
      if (!this.session) throw new Error(`PKCS#11: ${this.description} is closed`);
      return fn(this.session);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private find(session: Handle, template: Template): Handle[] {
    return findObjects(this.lib, session, template);
  }

  private attribute(session: Handle, object: Handle, type: number): Buffer {
    return this.lib.C_GetAttributeValue(session, object, [{ type }])[0]?.value ?? Buffer.alloc(0);
  }

  private byLabel(session: Handle, cls: number, label: string): Handle[] {
    return this.find(session, [
      { type: pkcs11js.CKA_CLASS, value: cls },
      { type: pkcs11js.CKA_LABEL, value: Buffer.from(label, 'utf8') },
    ]);
  }

  /** C_GetTokenInfo: the PIN flags (no PIN needed, no try consumed). */
  async status(): Promise<Pkcs11TokenStatus> {
    return this.run(() => {
      const info = this.lib.C_GetTokenInfo(this.slot);
      const f = info.flags;
      return {
        label: trimLabel(info.label),
        manufacturer: trimLabel(info.manufacturerID),
        model: trimLabel(info.model),
        serialNumber: trimLabel(info.serialNumber),
        flags: f,
        userPinLocked: (f & pkcs11js.CKF_USER_PIN_LOCKED) !== 0,
        userPinFinalTry: (f & pkcs11js.CKF_USER_PIN_FINAL_TRY) !== 0,
        userPinCountLow: (f & pkcs11js.CKF_USER_PIN_COUNT_LOW) !== 0,
        soPinLocked: (f & pkcs11js.CKF_SO_PIN_LOCKED) !== 0,
        minPinLength: info.minPinLen,
        maxPinLength: info.maxPinLen,
      };
    });
  }

  /** SubjectPublicKeyInfo (DER) of the public key object labelled `label`, or undefined. */
  async publicKeySpki(label: string): Promise<Buffer | undefined> {
    checkLabel(label);
    return this.run((session) => {
      const keys = this.byLabel(session, pkcs11js.CKO_PUBLIC_KEY, label);
      if (keys.length === 0) return undefined;
      if (keys.length > 1) throw new Error(`PKCS#11: ${keys.length} public keys are labelled "${label}"`);
      const key = keys[0]!;
      const keyType = ulong(this.attribute(session, key, pkcs11js.CKA_KEY_TYPE));
      if (keyType === pkcs11js.CKK_RSA) {
        const n = this.attribute(session, key, pkcs11js.CKA_MODULUS);
        const e = this.attribute(session, key, pkcs11js.CKA_PUBLIC_EXPONENT);
        return createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' }).export({
          type: 'spki',
          format: 'der',
        });
      }
      if (keyType === pkcs11js.CKK_EC) {
        if (!this.attribute(session, key, pkcs11js.CKA_EC_PARAMS).equals(P256_PARAMS))
          throw new Error(`PKCS#11: EC key "${label}" is not on P-256`);
        const { x, y } = ecPointCoordinates(this.attribute(session, key, pkcs11js.CKA_EC_POINT), 32);
        return createPublicKey({
          key: { kty: 'EC', crv: 'P-256', x: b64url(x), y: b64url(y) },
          format: 'jwk',
        }).export({ type: 'spki', format: 'der' });
      }
      throw new Error(`PKCS#11: key "${label}" has unsupported CKA_KEY_TYPE ${keyType}`);
    });
  }

  /** CKA_VALUE of the certificate object labelled `label`, or undefined. */
  async readCertificate(label: string): Promise<Buffer | undefined> {
    checkLabel(label);
    return this.run((session) => {
      const certs = this.byLabel(session, pkcs11js.CKO_CERTIFICATE, label);
      if (certs.length > 1) throw new Error(`PKCS#11: ${certs.length} certificates are labelled "${label}"`);
      return certs[0] ? this.attribute(session, certs[0], pkcs11js.CKA_VALUE) : undefined;
    });
  }

  /**
   * Stores `der` as a public X.509 certificate object labelled `label` with the CKA_ID of the public
   * key of that label, replacing any certificate of that label. Does not compare the keys: the caller does.
   */
  async writeCertificate(label: string, der: Buffer): Promise<void> {
    checkLabel(label);
    const parts = certificateParts(der);
    return this.run((session) => {
      const keys = this.byLabel(session, pkcs11js.CKO_PUBLIC_KEY, label);
      if (keys.length !== 1)
        throw new Error(`PKCS#11: ${keys.length} public keys labelled "${label}" on ${this.description}`);
      const id = this.attribute(session, keys[0]!, pkcs11js.CKA_ID);
      const old = this.byLabel(session, pkcs11js.CKO_CERTIFICATE, label);
      try {
        this.lib.C_CreateObject(session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
          { type: pkcs11js.CKA_CERTIFICATE_TYPE, value: pkcs11js.CKC_X_509 },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: false },
          { type: pkcs11js.CKA_LABEL, value: Buffer.from(label, 'utf8') },
          { type: pkcs11js.CKA_ID, value: id },
          { type: pkcs11js.CKA_SUBJECT, value: parts.subject },
          { type: pkcs11js.CKA_ISSUER, value: parts.issuer },
          { type: pkcs11js.CKA_SERIAL_NUMBER, value: parts.serial },
          { type: pkcs11js.CKA_VALUE, value: der },
        ]);
      } catch (e) {
        throw new Error(`PKCS#11: cannot store the certificate on ${this.description}: ${messageOf(e)}`);
      }
      for (const object of old) this.lib.C_DestroyObject(session, object);
    });
  }

  /** C_SetPIN: changes the user PIN (the old one is checked by the token). */
  async setUserPin(oldPin: string, newPin: string): Promise<void> {
    return this.run((session) => {
      try {
        this.lib.C_SetPIN(session, oldPin, newPin);
      } catch (e) {
        throw pinError(e, 'user', this.description, 'changing the user PIN');
      }
      // A key store of this process logged in with the old PIN: it is still logged in, now with the new one.
      const login = this.shared.logins.get(this.slotKey);
      if (login) login.pinHash = createHash('sha256').update(newPin, 'utf8').digest();
    });
  }

  /**
   * Resets the user PIN: SO login, C_InitPIN(newPin), logout. This is how a locked user PIN is opened
   * again. Refused while a key store of this process is logged in to the token.
   */
  async initUserPin(soPin: string, newPin: string): Promise<void> {
    return this.run((session) => {
      if (this.shared.logins.has(this.slotKey))
        throw new Error(
          `PKCS#11: a key store of this process is logged in to ${this.description}; close it before resetting the PIN`,
        );
      try {
        this.lib.C_Login(session, pkcs11js.CKU_SO, soPin);
      } catch (e) {
        throw pinError(e, 'so', this.description, 'the SO login');
      }
      try {
        this.lib.C_InitPIN(session, newPin);
      } catch (e) {
        throw pinError(e, 'user', this.description, 'setting the user PIN');
      } finally {
        try {
          this.lib.C_Logout(session);
        } catch {
          // already logged out
        }
      }
    });
  }

  /** Closes the session and releases the library. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.queue.then(() => {
      const session = this.session;
      if (!session) return;
      this.session = undefined;
      try {
        this.lib.C_CloseSession(session);
      } catch {
        // gone
      }
      releaseModule(this.shared);
    });
    return this.closing;
  }
}

function pinError(e: unknown, user: 'user' | 'so', token: string, during: string): Error {
  const who = user === 'so' ? 'SO PIN' : 'user PIN';
  switch (ckr(e)) {
    case pkcs11js.CKR_PIN_INCORRECT:
      return new Pkcs11PinError(`PKCS#11: wrong ${who} for ${token}`, 'incorrect', user);
    case pkcs11js.CKR_PIN_LOCKED:
      return new Pkcs11PinError(`PKCS#11: the ${who} of ${token} is locked`, 'locked', user);
    case pkcs11js.CKR_PIN_LEN_RANGE:
    case pkcs11js.CKR_PIN_INVALID:
      return new Pkcs11PinError(
        `PKCS#11: ${token} does not accept that ${who} (length or characters)`,
        'invalid',
        user,
      );
    case pkcs11js.CKR_USER_PIN_NOT_INITIALIZED:
      return new Pkcs11PinError(
        `PKCS#11: the user PIN of ${token} has not been initialised`,
        'not-initialised',
        user,
      );
    default:
      return new Error(`PKCS#11: ${during} on ${token} failed: ${messageOf(e)}`);
  }
}

/** The DER subject, issuer and serial INTEGER of a certificate, as X.509 certificate objects carry them. */
function certificateParts(der: Buffer): { subject: Buffer; issuer: Buffer; serial: Buffer } {
  try {
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) throw new Error('trailing data');
    const tbs = readChildren(der, outer)[0]!;
    const fields = readChildren(der, tbs);
    const at = fields[0]?.tag === 0xa0 ? 1 : 0;
    const [serial, , issuer, , subject] = fields.slice(at);
    if (!serial || !issuer || !subject || serial.tag !== 0x02) throw new Error('short');
    return { serial: slice(der, serial), issuer: slice(der, issuer), subject: slice(der, subject) };
  } catch {
    throw new Error('PKCS#11: not a DER X.509 certificate');
  }
}
