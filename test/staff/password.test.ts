import { describe, expect, it } from 'vitest';
import {
  checkPasswordPolicy,
  hashParams,
  hashPassword,
  needsRehash,
  PasswordPolicyError,
  verifyPassword,
} from '../../src/staff/password.ts';

describe('password policy', () => {
  it('accepts 12+ characters that do not contain the username', () => {
    expect(() => checkPasswordPolicy('correct horse battery', 'tanaka')).not.toThrow();
    expect(() => checkPasswordPolicy('窓口の合言葉は十二文字以上です', 'tanaka')).not.toThrow();
  });

  it.each([
    ['too short', 'short-pw-11', 'tanaka', /at least 12/],
    ['11 full-width characters', 'ａｂｃｄｅｆｇｈｉｊｋ', 'tanaka', /at least 12/],
    ['too long', 'x1'.repeat(129), 'tanaka', /at most 256/],
    ['contains the username', 'my-TANAKA-password', 'tanaka', /username/],
    ['contains the full-width username', 'my-ｔａｎａｋａ-password', 'tanaka', /username/],
    ['control characters', 'line one\nline two', 'tanaka', /control/],
    ['one repeated character', 'aaaaaaaaaaaaaaa', 'tanaka', /repeat/],
  ])('refuses %s', (_what, pw, user, message) => {
    expect(() => checkPasswordPolicy(pw, user)).toThrow(PasswordPolicyError);
    expect(() => checkPasswordPolicy(pw, user)).toThrow(message);
  });
});

describe('scrypt hashing', () => {
  it('stores N=2^15, r=8, p=1 and a 16-byte salt with the hash; never the password', async () => {
    const pw = 'correct horse battery';
    const [a, b] = await Promise.all([hashPassword(pw), hashPassword(pw)]);
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toContain(pw);
    expect(a).not.toBe(b); // different salts
    expect(a.split('$')[3]).not.toBe(b.split('$')[3]);
    expect(hashParams(a)).toEqual({ ln: 15, r: 8, p: 1 });
    expect(await verifyPassword(pw, a)).toBe(true);
    expect(await verifyPassword(pw, b)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    // compared after NFKC: full-width input matches
    expect(await verifyPassword('ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ', a)).toBe(true);
  });

  it('verifies hashes made with other parameters and says when to rehash', async () => {
    const weak = await hashPassword('correct horse battery', { ln: 12, r: 8, p: 1 });
    expect(await verifyPassword('correct horse battery', weak)).toBe(true);
    expect(needsRehash(weak)).toBe(true);
    expect(needsRehash(await hashPassword('x'.repeat(5)))).toBe(false);
    expect(needsRehash('garbage')).toBe(true);
  });

  it('refuses malformed or hostile hash strings without deriving anything', async () => {
    for (const stored of [
      '',
      'plaintext',
      '$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '$scrypt$ln=15,r=99,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      '$argon2id$v=19$m=65536,t=3,p=4$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ])
      expect(await verifyPassword('anything at all', stored)).toBe(false);
    await expect(hashPassword('x', { ln: 25, r: 8, p: 1 })).rejects.toThrow(RangeError);
  });
});
