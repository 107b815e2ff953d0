import {
  createPrivateKey,
  createPublicKey,
  createSign,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import { constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyAlgorithm, Signer } from '../core/signer.ts';
import { KeyExistsError, KeyNotFoundError, type KeyStore } from './keystore.ts';

const LABEL = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Signing chunks (a CRL), the event loop gets a turn after this many bytes. */
const YIELD_AFTER_BYTES = 4 << 20;

/** Signs in-process with a node:crypto KeyObject. Also used for keys that are not the authority's (tests, cards). */
export class SoftwareSigner implements Signer {
  readonly publicKeySpki: Buffer;
  constructor(
    private readonly key: KeyObject,
    readonly algorithm: KeyAlgorithm,
  ) {
    this.publicKeySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  }

  static generate(algorithm: KeyAlgorithm): SoftwareSigner {
    const { privateKey } =
      algorithm === 'rsa-2048'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return new SoftwareSigner(privateKey, algorithm);
  }

  static fromKeyObject(key: KeyObject): SoftwareSigner {
    return new SoftwareSigner(key, algorithmOf(key));
  }

  /** Synchronous signing, for hot paths that must not yield. */
  signSync(data: Buffer | readonly Buffer[]): Buffer {
    if (Buffer.isBuffer(data)) return sign('sha256', data, this.key);
    // Chunks (a large CRL) are hashed one by one, never concatenated.
    const s = createSign('sha256');
    for (const chunk of data) s.update(chunk);
    return s.sign(this.key);
  }

  async sign(data: Buffer | readonly Buffer[]): Promise<Buffer> {
    if (Buffer.isBuffer(data) || data.length < 2) return this.signSync(data);
    // A large input in chunks (a CRL of tens of megabytes): hashed a chunk at a time, with a turn
    // of the event loop after every few, so that a server signing it keeps answering.
    const s = createSign('sha256');
    let sinceYield = 0;
    for (const chunk of data) {
      s.update(chunk);
      sinceYield += chunk.length;
      if (sinceYield >= YIELD_AFTER_BYTES) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return s.sign(this.key);
  }

  /**
   * Signs on the libuv thread pool instead of the calling thread, so that other work (or other
   * signatures) can use the other cores meanwhile. The hand-over costs ~25 µs, so it only pays when
   * there is something to overlap with; `sign` stays on the calling thread. Chunks are signed on the
   * calling thread (node:crypto has no streaming signature off the thread).
   */
  signOffThread(data: Buffer | readonly Buffer[]): Promise<Buffer> {
    if (!Buffer.isBuffer(data)) return this.sign(data);
    return new Promise((resolve, reject) =>
      sign('sha256', data, this.key, (err, signature) => (err ? reject(err) : resolve(signature))),
    );
  }

  /** PEM of the private key; only for keys that are meant to leave (test fixtures, software cards). */
  exportPkcs8Pem(passphrase?: string): string {
    return this.key.export(
      passphrase
        ? { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }
        : { type: 'pkcs8', format: 'pem' },
    ) as string;
  }
}

export function algorithmOf(key: KeyObject): KeyAlgorithm {
  if (key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048) return 'rsa-2048';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'ecdsa-p256';
  throw new Error(
    `unsupported key: ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.modulusLength ?? key.asymmetricKeyDetails?.namedCurve ?? ''}`,
  );
}

/**
 * Keys as PKCS#8 files encrypted with AES-256-CBC under a passphrase (PBES2), one file per label,
 * created with O_EXCL so an existing key is never overwritten.
 */
export class SoftwareKeyStore implements KeyStore {
  readonly kind = 'software';
  constructor(
    private readonly dir: string,
    private readonly passphrase: string,
  ) {
    if (passphrase.length < 8) throw new Error('the key passphrase must be at least 8 characters');
  }

  private path(label: string): string {
    if (!LABEL.test(label)) throw new Error(`invalid key label "${label}"`);
    return join(this.dir, `${label}.key.pem`);
  }

  async has(label: string): Promise<boolean> {
    return existsSync(this.path(label));
  }

  async generate(label: string, algorithm: KeyAlgorithm): Promise<Signer> {
    const path = this.path(label);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const signer = SoftwareSigner.generate(algorithm);
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyExistsError(label);
      throw e;
    }
    try {
      await fh.writeFile(signer.exportPkcs8Pem(this.passphrase));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return signer;
  }

  async open(label: string): Promise<Signer> {
    let pem: string;
    try {
      pem = await readFile(this.path(label), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyNotFoundError(label);
      throw e;
    }
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem', passphrase: this.passphrase });
    } catch {
      throw new Error(`cannot decrypt key "${label}": wrong passphrase or damaged file`);
    }
    return SoftwareSigner.fromKeyObject(key);
  }

  async close(): Promise<void> {}
}

/**
 * The passphrase protecting software keys: JPKI_KEY_PASSPHRASE, or the contents of the file named by
 * JPKI_KEY_PASSPHRASE_FILE (trailing newline removed), or `fallbackFile` if given and present.
 */
export function resolvePassphrase(env: NodeJS.ProcessEnv, fallbackFile?: string): string | undefined {
  if (env.JPKI_KEY_PASSPHRASE) return env.JPKI_KEY_PASSPHRASE;
  const file =
    env.JPKI_KEY_PASSPHRASE_FILE ?? (fallbackFile && existsSync(fallbackFile) ? fallbackFile : undefined);
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  return undefined;
}
