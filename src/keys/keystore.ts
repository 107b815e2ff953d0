import type { KeyAlgorithm, Signer } from '../core/signer.ts';

/**
 * Where the authority's private keys live. Two implementations: encrypted PKCS#8 files
 * (`SoftwareKeyStore`) and a PKCS#11 token or HSM (`Pkcs11KeyStore`). Keys are addressed by label.
 */
export interface KeyStore {
  readonly kind: 'software' | 'pkcs11';
  /** Creates a new key. Refuses (KeyExistsError) if a key with this label exists: keys are never overwritten. */
  generate(label: string, algorithm: KeyAlgorithm): Promise<Signer>;
  /** Opens an existing key; KeyNotFoundError if there is none. */
  open(label: string): Promise<Signer>;
  has(label: string): Promise<boolean>;
  close(): Promise<void>;
}

export class KeyExistsError extends Error {
  override name = 'KeyExistsError';
  constructor(label: string) {
    super(`a key labelled "${label}" already exists; refusing to overwrite it`);
  }
}

export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
  constructor(label: string) {
    super(`no key labelled "${label}"`);
  }
}
