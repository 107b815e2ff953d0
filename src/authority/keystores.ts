import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { KeyStore } from '../keys/keystore.ts';
import { resolvePassphrase, SoftwareKeyStore } from '../keys/software.ts';
import { ConfigError, dataPaths, type KeyStoreConfig } from './config.ts';

/**
 * Opens the key store an authority is configured with. Software keys need a passphrase from
 * JPKI_KEY_PASSPHRASE or JPKI_KEY_PASSPHRASE_FILE; for a development authority created without
 * either, `jpki init` leaves a generated passphrase in DATA/secrets (and says so).
 */
export async function openKeyStore(
  dir: string,
  cfg: KeyStoreConfig,
  env: NodeJS.ProcessEnv,
): Promise<KeyStore> {
  const paths = dataPaths(dir);
  if (cfg.type === 'software') {
    const pass = resolvePassphrase(env, paths.passphraseFile);
    if (!pass)
      throw new ConfigError('no key passphrase: set JPKI_KEY_PASSPHRASE or JPKI_KEY_PASSPHRASE_FILE');
    return new SoftwareKeyStore(paths.keys, pass);
  }
  const { Pkcs11KeyStore, resolvePkcs11Pin } = await import('../keys/pkcs11.ts');
  const pin = resolvePkcs11Pin(env);
  if (!pin) throw new ConfigError('no PKCS#11 PIN: set JPKI_PKCS11_PIN or JPKI_PKCS11_PIN_FILE');
  return new Pkcs11KeyStore({ module: cfg.module, tokenLabel: cfg.tokenLabel, pin });
}

/** For `init` without a passphrase in the environment: generate one into DATA/secrets (mode 0600). */
export function createDevelopmentPassphrase(dir: string): string {
  const paths = dataPaths(dir);
  mkdirSync(paths.secrets, { recursive: true, mode: 0o700 });
  const pass = randomBytes(24).toString('base64url');
  writeFileSync(paths.passphraseFile, `${pass}\n`, { mode: 0o600, flag: 'wx' });
  return pass;
}
