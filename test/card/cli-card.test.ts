// `jpki card …` as the counter and the resident run it: the real command in child processes, a real
// authority issuing the card's certificates, `jpki verify` checking what the card signed.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pkcs11Card } from '../../src/card/pkcs11-card.ts';
import { encodePem } from '../../src/core/pem.ts';
import { type CliResult, jpki, ok, oneLineFailure } from '../cli/jpki.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { openssl, tempDir } from '../helpers/openssl.ts';
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../helpers/softhsm.ts';
import { AUTH_PIN, SIGN_PIN, UNBLOCK } from './helpers.ts';

const FACTS = {
  name: '佐藤 次郎',
  dateOfBirth: '1992-07-07',
  sex: 'male',
  address: '福岡県福岡市博多区1-1',
} as const;

const tmp = tempDir('jpki-card-cli-');
const p = tmp.path;
const withPkcs11 = process.env.JPKI_TEST_PKCS11 === '1' || softHsmAvailable();
let ta: TestAuthority;
let tokens: SoftHsmToken[] = [];

const card = (...args: string[]) => jpki(['card', ...args]);
const onCard = (cmd: string, ...args: string[]) => card(cmd, '--file', p('card.json'), ...args);

/** Nothing secret in what the command printed. */
function noSecrets(r: CliResult): CliResult {
  for (const s of [SIGN_PIN, AUTH_PIN, UNBLOCK, 'NEWPIN77', '7777']) {
    expect(r.stdout).not.toContain(s);
    expect(r.stderr).not.toContain(s);
  }
  return r;
}

beforeAll(async () => {
  if (withPkcs11) {
    tokens = [
      await createSoftHsmToken({ label: 'clicard-sign', pin: SIGN_PIN, soPin: 'SO-PIN-S' }),
      await createSoftHsmToken({ label: 'clicard-auth', pin: AUTH_PIN, soPin: 'SO-PIN-A' }),
    ];
  }
  ta = await createTestAuthority();
  writeFileSync(p('sign-pin'), `${SIGN_PIN}\n`);
  writeFileSync(p('auth-pin'), `${AUTH_PIN}\n`);
  writeFileSync(p('unblock'), `${UNBLOCK}\n`);
  writeFileSync(p('new-pin'), 'NEWPIN77\n');
  writeFileSync(p('doc.txt'), '住所変更届 2026-04-01\n');
  writeFileSync(
    p('doc.xml'),
    '<?xml version="1.0" encoding="UTF-8"?>\n<届出 xmlns="urn:example:jpki">住所変更</届出>\n',
  );
  writeFileSync(p('root.pem'), ta.certPem('root'));
  writeFileSync(p('sign.pem'), ta.certPem('sign'));
});

afterAll(async () => {
  await ta?.close();
  for (const t of tokens) await t.cleanup();
  tmp.cleanup();
});

async function issueFromFile(kind: 'sign' | 'auth', csrFile: string, certFile: string): Promise<string> {
  const cert = await ta.authority.issue({
    kind,
    csr: readFileSync(p(csrFile), 'utf8'),
    facts: kind === 'sign' ? FACTS : undefined,
  });
  writeFileSync(p(certFile), cert.pem);
  return cert.serial;
}

describe('jpki card (software card)', () => {
  // Every spawn costs about half a second of CPU, so independent commands run side by side.
  it('create: the card file (0600) and its id; never the PINs; bad PINs refused', async () => {
    const [created, bad] = await Promise.all([
      onCard(
        'create',
        '--sign-pin-file',
        p('sign-pin'),
        '--auth-pin-file',
        p('auth-pin'),
        '--unblock-file',
        p('unblock'),
      ),
      card(
        'create',
        '--file',
        p('bad.json'),
        '--sign-pin',
        'short',
        '--auth-pin',
        '1234',
        '--unblock',
        UNBLOCK,
      ),
    ]);
    noSecrets(ok(created));
    expect(created.stdout).toMatch(/^created software card SC[0-9A-F]{16} in .*card\.json\n$/);
    expect(statSync(p('card.json')).mode & 0o777).toBe(0o600);
    oneLineFailure(bad, /the signature PIN must be 6 to 16 characters of A-Z and 0-9/);
  });

  it('keygen (PIN from a file, and from JPKI_CARD_PIN) → requests openssl accepts → issue → write-cert → show', async () => {
    const [k1, k2] = await Promise.all([
      onCard('keygen', '--slot', 'sign', '--pin-file', p('sign-pin'), '--out', p('sign.csr')),
      jpki(
        [
          'card',
          'keygen',
          '--file',
          p('card.json'),
          '--slot',
          'auth',
          '--algorithm',
          'ecdsa-p256',
          '--out',
          p('auth.csr'),
        ],
        { JPKI_CARD_PIN: AUTH_PIN },
      ),
    ]);
    noSecrets(ok(k1));
    ok(k2);
    expect(k1.stderr).toMatch(/generated a key \(rsa-2048\) in the sign slot of card SC/);
    for (const f of ['sign.csr', 'auth.csr']) {
      const r = openssl(['req', '-in', f, '-verify', '-noout'], { cwd: tmp.dir });
      expect(r.output).toMatch(/verify OK/);
    }
    const serial = await issueFromFile('sign', 'sign.csr', 'sign-cert.pem');
    await issueFromFile('auth', 'auth.csr', 'auth-cert.pem');

    const [w1, w2, wrong, replace] = await Promise.all([
      onCard('write-cert', '--slot', 'sign', '--cert', p('sign-cert.pem')),
      onCard('write-cert', '--slot', 'auth', '--cert', p('auth-cert.pem')),
      // the sign slot's certificate does not fit the auth key (checked against the key on the card)
      card('write-cert', '--file', p('card.json'), '--slot', 'auth', '--cert', p('sign-cert.pem')),
      onCard('keygen', '--slot', 'sign', '--pin-file', p('sign-pin'), '--out', p('x.csr')),
    ]);
    ok(w1);
    ok(w2);
    oneLineFailure(wrong, /is for another key than the one in the auth slot/);
    oneLineFailure(replace, /already holds a key; give --replace/);

    await ta.authority.generateCrl('root');
    await ta.authority.generateCrl('sign');
    writeFileSync(p('root.crl'), (await ta.authority.currentCrl('root', 'full'))!.der);
    writeFileSync(p('sign.crl'), encodePem('X509 CRL', (await ta.authority.currentCrl('sign', 'full'))!.der));
    const cms = await onCard(
      'sign',
      '--pin-file',
      p('sign-pin'),
      '--in',
      p('doc.txt'),
      '--out',
      p('doc.p7s'),
      '--chain',
      p('sign.pem'),
    );
    // sign (CMS) on the card → jpki verify: TOTAL_PASSED with the authority's CRLs
    noSecrets(ok(cms));
    expect(cms.stderr).toMatch(/signed .*doc\.txt -> .*doc\.p7s with the sign key of card SC/);
    const trust = [
      '--trust',
      p('root.pem'),
      '--untrusted',
      p('sign.pem'),
      '--crl',
      p('root.crl'),
      '--crl',
      p('sign.crl'),
    ];
    // (show runs beside verify, not beside the signing commands: a PIN check in progress shows as a spent try)
    const [v1, show] = await Promise.all([jpki(['verify', '--in', p('doc.p7s'), ...trust]), onCard('show')]);
    expect(v1.stdout.split('\n')[0], v1.stdout + v1.stderr).toBe('TOTAL_PASSED (CAdES-BES)');
    expect(v1.stdout).toContain('name 佐藤　次郎');
    noSecrets(ok(show));
    const lines = show.stdout.split('\n');
    expect(lines[0]).toMatch(/^card SC[0-9A-F]{16} \(software card /);
    expect(show.stdout).toContain('sign (署名用, signature):\n  key: rsa-2048\n  certificate: ');
    expect(show.stdout).toContain('auth (利用者証明用, user authentication):\n  key: ecdsa-p256\n');
    expect(show.stdout.toLowerCase()).toContain(`serial ${serial.replace(/^0+/, '')}`);
    expect(show.stdout).toMatch(/valid \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ to \d{4}-/);
    expect(show.stdout).toContain('issuer C=JP, O=JPKI, OU=JPKI for digital signature');
    expect(show.stdout).toContain('PIN: 5 tries left of 5');
    expect(show.stdout).toContain('PIN: 3 tries left of 3');
  });

  it('change-pin, and a lock-out: four processes guessing the auth PIN at once get 3 tries between them, each told how many are left; reset at the counter', async () => {
    const csr = (pin: string) => onCard('csr', '--slot', 'auth', '--pin', pin, '--out', p('auth2.csr'));
    const [changed, ...guesses] = await Promise.all([
      onCard('change-pin', '--slot', 'sign', '--old-file', p('sign-pin'), '--new-file', p('new-pin')),
      csr('0000'),
      csr('0000'),
      csr('0000'),
      csr('0000'),
    ]);
    expect(noSecrets(ok(changed)).stderr).toMatch(/signature PIN of card SC\w+ changed/);
    const messages = guesses.map((r) => oneLineFailure(r, /PIN/)).sort();
    expect(messages).toEqual([
      'jpki: authentication PIN incorrect: 1 try left before the card locks',
      'jpki: authentication PIN incorrect: 2 tries left before the card locks',
      'jpki: authentication PIN incorrect: no tries left; the PIN is now locked and must be reset at the municipal counter',
      'jpki: the authentication PIN is locked (no tries left); it must be reset at the municipal counter',
    ]);

    const [locked, show, badUnblock] = await Promise.all([
      csr(AUTH_PIN),
      onCard('show'),
      onCard('reset-pin', '--slot', 'auth', '--unblock', 'not-the-secret', '--new', '7777'),
    ]);
    oneLineFailure(
      locked,
      /the authentication PIN is locked \(no tries left\); it must be reset at the municipal counter/,
    );
    expect(ok(show).stdout).toContain(
      'PIN: LOCKED (0 of 3 tries left): it must be reset at the municipal counter',
    );
    oneLineFailure(badUnblock, /unblock secret incorrect \(9 tries left\); the PIN was not reset/);

    const reset = noSecrets(
      ok(await onCard('reset-pin', '--slot', 'auth', '--unblock-file', p('unblock'), '--new', '7777')),
    );
    expect(reset.stderr).toMatch(/authentication PIN of card SC\w+ reset: 3 tries available/);
    const [after, newSignPin] = await Promise.all([
      csr('7777'),
      onCard(
        'sign',
        '--pin-file',
        p('new-pin'),
        '--format',
        'xml',
        '--in',
        p('doc.xml'),
        '--out',
        p('signed.xml'),
      ),
    ]);
    ok(after);
    ok(newSignPin);
    expect(readFileSync(p('signed.xml'), 'utf8')).toMatch(/<ds:Signature[\s\S]*SignedProperties/);
  });
});

describe.skipIf(!withPkcs11)('jpki card (PKCS#11 card on SoftHSM2)', () => {
  it('show through --pkcs11-module --card: key, certificate, and what the token says about PIN tries', async () => {
    // the key is made in this process (the same IcCard code as keygen); the child opens the tokens afresh
    const c = await Pkcs11Card.open({ module: tokens[0]!.module, name: 'clicard' });
    try {
      await c.generateKey('auth', 'ecdsa-p256', AUTH_PIN);
      await expect(c.signer('sign', 'WRONG1')).rejects.toThrow(/PIN incorrect/);
    } finally {
      await c.close();
    }
    const show = ok(await card('show', '--pkcs11-module', tokens[0]!.module, '--card', 'clicard'));
    expect(show.stdout).toContain('card clicard (PKCS#11)');
    expect(show.stdout).toContain(
      'auth (利用者証明用, user authentication):\n  key: ecdsa-p256\n  certificate: none\n',
    );
    expect(show.stdout).toContain('PIN: the token does not report a count; the card allows 3');
    // SoftHSM raises CKF_USER_PIN_COUNT_LOW after a wrong PIN
    expect(show.stdout).toContain(
      'PIN: the token does not report a count (it reports few tries left); the card allows 5',
    );
  });
});
