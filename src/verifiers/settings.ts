// Settings of the verifier service: DATA/verifiers.json, every field optional (defaults below).
//
//   {
//     "tariff": { "monthlyBaseFeeYen": 0, "ocspYen": 2, "crlYen": 20, "verificationYen": 20 },
//     "rateLimit": { "requestsPerSecond": 1000, "burst": 2000 },
//     "metering": { "flushIntervalMs": 5000, "flushCount": 10000 },
//     "credentialCacheMs": 5000,
//     "clientCa": "certs/verifier-ca.pem"
//   }
//
// Whether the revocation endpoints need a verifier at all is `revocationAccess` in authority.json.

import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export interface Tariff {
  /** Charged for every month the contract overlaps. */
  monthlyBaseFeeYen: number;
  ocspYen: number;
  crlYen: number;
  verificationYen: number;
}

export interface VerifierSettings {
  tariff: Tariff;
  /** Token bucket per verifier on the revocation endpoints; requestsPerSecond 0 turns it off. */
  rateLimit: { requestsPerSecond: number; burst: number };
  /** Counts are written when this much time has passed or this many are pending, whichever comes first. */
  metering: { flushIntervalMs: number; flushCount: number };
  /**
   * How long a credential's lookup is reused. A suspension or revocation made through this process
   * takes effect at once; made by another process, within this time.
   */
  credentialCacheMs: number;
  /** PEM file of the CA that issues verifiers' client certificates (relative to the data directory). */
  clientCa?: string;
}

// Placeholders until the authority sets its own: today a check costs 20 yen for a signature
// certificate and 2 yen for an authentication certificate (MISSION.md).
export const DEFAULT_SETTINGS: VerifierSettings = {
  tariff: { monthlyBaseFeeYen: 0, ocspYen: 2, crlYen: 20, verificationYen: 20 },
  rateLimit: { requestsPerSecond: 1000, burst: 2000 },
  metering: { flushIntervalMs: 5000, flushCount: 10_000 },
  credentialCacheMs: 5000,
};

export class VerifierSettingsError extends Error {
  override name = 'VerifierSettingsError';
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? Partial<T[K]> : T[K] };
export type VerifierSettingsInput = DeepPartial<VerifierSettings>;

/** Defaults, then DATA/verifiers.json (if any), then `overrides`; checked. */
export function loadVerifierSettings(
  dataDir: string,
  overrides: VerifierSettingsInput = {},
): VerifierSettings {
  const path = join(dataDir, 'verifiers.json');
  let file: VerifierSettingsInput = {};
  if (existsSync(path)) {
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as VerifierSettingsInput;
    } catch {
      throw new VerifierSettingsError(`${path} is not valid JSON`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file))
      throw new VerifierSettingsError(`${path} must hold a JSON object`);
  }
  const merged = mergeSettings(mergeSettings(DEFAULT_SETTINGS, file), overrides);
  checkSettings(merged, existsSync(path) ? path : 'verifier settings');
  if (merged.clientCa && !isAbsolute(merged.clientCa)) merged.clientCa = join(dataDir, merged.clientCa);
  return merged;
}

export function mergeSettings(base: VerifierSettings, over: VerifierSettingsInput): VerifierSettings {
  return {
    tariff: { ...base.tariff, ...over.tariff },
    rateLimit: { ...base.rateLimit, ...over.rateLimit },
    metering: { ...base.metering, ...over.metering },
    credentialCacheMs: over.credentialCacheMs ?? base.credentialCacheMs,
    clientCa: over.clientCa ?? base.clientCa,
  };
}

function checkSettings(s: VerifierSettings, where: string): void {
  const wholeAtLeast = (v: unknown, min: number, name: string) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      throw new VerifierSettingsError(`${where}: ${name} must be a whole number of at least ${min}`);
  };
  for (const k of ['monthlyBaseFeeYen', 'ocspYen', 'crlYen', 'verificationYen'] as const)
    wholeAtLeast(s.tariff[k], 0, `tariff.${k}`);
  wholeAtLeast(s.rateLimit.requestsPerSecond, 0, 'rateLimit.requestsPerSecond');
  wholeAtLeast(s.rateLimit.burst, 1, 'rateLimit.burst');
  wholeAtLeast(s.metering.flushIntervalMs, 10, 'metering.flushIntervalMs');
  wholeAtLeast(s.metering.flushCount, 1, 'metering.flushCount');
  wholeAtLeast(s.credentialCacheMs, 0, 'credentialCacheMs');
  if (s.clientCa !== undefined && (typeof s.clientCa !== 'string' || s.clientCa === ''))
    throw new VerifierSettingsError(`${where}: clientCa must be the path of a PEM file`);
}
