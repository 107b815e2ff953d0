import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrlPartitionError, checkPartitionCount, crlScopeId } from '../core/crl-partition.ts';
import type { CaId } from '../core/profiles.ts';
import type { KeyAlgorithm } from '../core/signer.ts';

export type KeyStoreConfig = { type: 'software' } | { type: 'pkcs11'; module: string; tokenLabel: string };

/** authority.json: written once by `jpki init`, read by everything else. */
export interface AuthorityConfig {
  version: 1;
  algorithm: KeyAlgorithm;
  /** Base of every URL written into certificates (CRL, OCSP, CA issuers). */
  baseUrl: string;
  keyStore: KeyStoreConfig;
  validity: {
    rootYears: number;
    caYears: number;
    ocspYears: number;
    tsaYears: number;
    signYears: number;
    authYears: number;
    /** Verifiers' TLS client certificates (the verifier CA itself lives caYears). */
    verifierYears: number;
  };
  /** The time-stamping authority (RFC 3161). */
  tsa: { policy: string; accuracySeconds: number };
  crl: {
    fullHours: number;
    deltaHours: number;
    /**
     * CRL partitions per issuing CA (sign, auth): a power of two, 1 to 4096. Each end-entity
     * certificate names its partition's CRL; fixed for the life of the CA, like baseUrl, since
     * issued certificates name the partition URLs. Missing in authorities created before
     * partitions: 1 (one CRL per CA, the URLs they always had). docs/operations.md.
     */
    partitions: number;
  };
  ocsp: {
    /** nextUpdate - thisUpdate of a response. */
    validityMinutes: number;
    /** A precomputed response is re-signed when older than this. */
    refreshMinutes: number;
    /** Cache-Control max-age on GET responses: the window in which an HTTP cache may repeat an answer. */
    httpMaxAgeSeconds: number;
  };
  /** Who may fetch OCSP, CRLs and POST /verify: anyone, or authorised verifiers only (docs/verifiers.md). Default 'public'. */
  revocationAccess?: 'public' | 'verifiers';
  createdAt: string;
}

export const DEFAULTS: Omit<AuthorityConfig, 'algorithm' | 'baseUrl' | 'keyStore' | 'createdAt'> = {
  version: 1,
  // The seed's 3 years for residents' certificates; CA lifetimes must outlast what they issue.
  validity: {
    rootYears: 20,
    caYears: 10,
    ocspYears: 2,
    tsaYears: 10,
    signYears: 3,
    authYears: 3,
    verifierYears: 2,
  },
  // A UUID-based OID (X.667, arc 2.25) minted for open-jpki's TSA policy: no registry needed.
  tsa: { policy: '2.25.185547443043787647213311059467548373179', accuracySeconds: 1 },
  // 64 partitions: at 260 M certificates (130 M per CA) with ~5% revoked and unexpired, a
  // partition lists ~100,000 entries (~4.5 MB), which builds and signs in well under 0.5 s.
  crl: { fullHours: 24, deltaHours: 1, partitions: 64 },
  // The real service refreshes OCSP every 15 minutes.
  ocsp: { validityMinutes: 30, refreshMinutes: 15, httpMaxAgeSeconds: 60 },
};

/** Layout of a data directory. */
export function dataPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'authority.json'),
    keys: join(dir, 'keys'),
    certs: join(dir, 'certs'),
    secrets: join(dir, 'secrets'),
    passphraseFile: join(dir, 'secrets', 'key-passphrase'),
    operatorTokenFile: join(dir, 'secrets', 'operator-token'),
    sqlite: join(dir, 'jpki.sqlite'),
    cert: (id: CaCertificateId) => join(dir, 'certs', `${id}.pem`),
  };
}

/**
 * The certificates an authority holds: three CAs, two delegated OCSP signers, the time-stamping
 * authority and the verifier CA (the last two optional: older authorities have none).
 */
export type CaCertificateId = CaId | 'sign-ocsp' | 'auth-ocsp' | 'tsa' | 'verifier';
export const CA_CERTIFICATE_IDS: readonly CaCertificateId[] = [
  'root',
  'sign',
  'auth',
  'sign-ocsp',
  'auth-ocsp',
  'tsa',
  'verifier',
];

/** Key labels, the same in a software key store and on a PKCS#11 token. */
export const keyLabel = (id: CaCertificateId): string => `jpki-${id}`;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function readConfig(dir: string): AuthorityConfig {
  const p = dataPaths(dir).config;
  if (!existsSync(p)) throw new ConfigError(`no authority in ${dir}: run "jpki init --data ${dir}" first`);
  let cfg: AuthorityConfig;
  try {
    cfg = JSON.parse(readFileSync(p, 'utf8')) as AuthorityConfig;
  } catch {
    throw new ConfigError(`${p} is not valid JSON`);
  }
  if (cfg.version !== 1) throw new ConfigError(`${p}: unsupported version ${String(cfg.version)}`);
  if (cfg.crl?.partitions !== undefined)
    try {
      checkPartitionCount(cfg.crl.partitions);
    } catch (e) {
      if (e instanceof CrlPartitionError) throw new ConfigError(`${p}: crl.partitions: ${e.message}`);
      throw e;
    }
  // Settings added after an authority was created take their defaults.
  return {
    ...DEFAULTS,
    ...cfg,
    validity: { ...DEFAULTS.validity, ...cfg.validity },
    // An authority.json without `partitions` predates them: one partition, as its certificates say.
    crl: { ...DEFAULTS.crl, ...cfg.crl, partitions: cfg.crl?.partitions ?? 1 },
    ocsp: { ...DEFAULTS.ocsp, ...cfg.ocsp },
    tsa: { ...DEFAULTS.tsa, ...cfg.tsa },
  };
}

/** Public URLs derived from the base URL. */
export function urls(baseUrl: string) {
  const b = baseUrl.replace(/\/+$/, '');
  return {
    ocsp: `${b}/ocsp`,
    crl: (ca: CaId | 'verifier') => `${b}/crl/${ca}.crl`,
    deltaCrl: (ca: CaId) => `${b}/crl/${ca}-delta.crl`,
    /** A partition's CRLs: `…/crl/sign-p17.crl` and `…/crl/sign-p17-delta.crl`. */
    partitionCrl: (ca: CaId, p: number) => `${b}/crl/${crlScopeId(ca, p)}.crl`,
    partitionDeltaCrl: (ca: CaId, p: number) => `${b}/crl/${crlScopeId(ca, p)}-delta.crl`,
    caCert: (ca: CaId | 'verifier') => `${b}/ca/${ca}.der`,
    cps: `${b}/cps`,
  };
}
