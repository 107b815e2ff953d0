// Staff passwords: the policy, and scrypt hashing in PHC string form.
//
//   $scrypt$ln=15,r=8,p=1$<salt>$<hash>        (salt 16 bytes, hash 32 bytes, base64 without padding)
//
// The parameters are stored with each hash, so they can be raised later: a hash made with weaker
// parameters still verifies, and `needsRehash` tells the login to store a new one.

import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8, p = 1: 32 MiB and some 50–100 ms per hash. */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ ln: 15, r: 8, p: 1 });
export const SALT_BYTES = 16;
export const HASH_BYTES = 32;
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

// Bounds on what a stored hash may ask for, so that a damaged or hostile row cannot make a login
// allocate gigabytes.
const LIMITS = { ln: [10, 20], r: [1, 32], p: [1, 16] } as const;

export class PasswordPolicyError extends Error {
  override name = 'PasswordPolicyError';
}

/**
 * Passwords are compared after NFKC normalisation, so that full-width characters typed through a
 * Japanese input method match their ASCII forms.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/**
 * Throws PasswordPolicyError unless the password is acceptable for this username: 12 to 256
 * characters, no control characters, not a single repeated character, not containing the username.
 */
export function checkPasswordPolicy(password: string, username: string): void {
  if (typeof password !== 'string') throw new PasswordPolicyError('the password must be a string');
  const pw = normalizePassword(password);
  const length = [...pw].length;
  if (length < MIN_PASSWORD_LENGTH)
    throw new PasswordPolicyError(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  if (length > MAX_PASSWORD_LENGTH)
    throw new PasswordPolicyError(`the password must have at most ${MAX_PASSWORD_LENGTH} characters`);
  if (/\p{Cc}/u.test(pw)) throw new PasswordPolicyError('the password must not contain control characters');
  if (new Set(pw).size === 1)
    throw new PasswordPolicyError('the password must not repeat a single character');
  const user = username.normalize('NFKC').toLowerCase();
  if (user.length > 0 && pw.toLowerCase().includes(user))
    throw new PasswordPolicyError('the password must not contain the username');
}

/** Hashes a password (after NFKC normalisation) with a fresh 16-byte salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(normalizePassword(password), salt, params, HASH_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

/**
 * Whether the password matches the stored hash (constant-time comparison). A malformed hash string
 * does not match anything.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const hash = await derive(normalizePassword(password), parsed.salt, parsed.params, parsed.hash.length);
  return timingSafeEqual(hash, parsed.hash);
}

/** Whether a stored hash was made with weaker parameters than `params` (or cannot be read). */
export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT): boolean {
  const parsed = parseHash(stored);
  if (!parsed) return true;
  const q = parsed.params;
  return q.ln < params.ln || q.r < params.r || q.p < params.p || parsed.salt.length < SALT_BYTES;
}

/** The parameters of a stored hash, or undefined if it is not a readable scrypt PHC string. */
export function hashParams(stored: string): ScryptParams | undefined {
  return parseHash(stored)?.params;
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{16,})$/;

function parseHash(stored: string): ParsedHash | undefined {
  const m = PHC.exec(stored);
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (!paramsInRange(params)) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
  return { params, salt, hash };
}

function paramsInRange(q: ScryptParams): boolean {
  return (
    Number.isInteger(q.ln) &&
    Number.isInteger(q.r) &&
    Number.isInteger(q.p) &&
    q.ln >= LIMITS.ln[0] &&
    q.ln <= LIMITS.ln[1] &&
    q.r >= LIMITS.r[0] &&
    q.r <= LIMITS.r[1] &&
    q.p >= LIMITS.p[0] &&
    q.p <= LIMITS.p[1]
  );
}

function checkParams(q: ScryptParams): void {
  if (!paramsInRange(q)) throw new RangeError(`scrypt parameters out of range: ${JSON.stringify(q)}`);
}

function derive(password: string, salt: Buffer, q: ScryptParams, length: number): Promise<Buffer> {
  const N = 2 ** q.ln;
  const options: ScryptOptions = { N, r: q.r, p: q.p, maxmem: 256 * N * q.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function b64(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}
