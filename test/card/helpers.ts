// Shared by the card tests: PINs that follow the card's rules, and a throwaway openssl CA that
// certifies a card's request (so a certificate for the card's key exists without an authority).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePem } from '../../src/core/pem.ts';
import { openssl } from '../helpers/openssl.ts';

export const SIGN_PIN = 'ABC123';
export const AUTH_PIN = '1234';
export const UNBLOCK = 'counter-unblock-secret';

function must(args: string[], cwd: string): string {
  const r = openssl(args, { cwd });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}

export interface TestCa {
  /** A DER certificate for the key in the PKCS#10 request (DER). */
  certify(csrDer: Buffer): Buffer;
  /** A DER self-signed certificate for a key that is not the card's. */
  unrelated(): Buffer;
}

export function opensslCa(dir: string): TestCa {
  must(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-subj',
      '/CN=Test CA',
      '-days',
      '2',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  let n = 0;
  return {
    certify(csrDer) {
      n++;
      writeFileSync(join(dir, `req${n}.pem`), encodePem('CERTIFICATE REQUEST', csrDer));
      must(
        [
          'x509',
          '-req',
          '-in',
          `req${n}.pem`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-set_serial',
          String(1000 + n),
          '-days',
          '2',
          '-outform',
          'DER',
          '-out',
          `cert${n}.der`,
        ],
        dir,
      );
      return readFileSync(join(dir, `cert${n}.der`));
    },
    unrelated() {
      n++;
      must(
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          `other${n}.key`,
          '-subj',
          '/CN=someone else',
          '-days',
          '2',
          '-outform',
          'DER',
          '-out',
          `other${n}.der`,
        ],
        dir,
      );
      return readFileSync(join(dir, `other${n}.der`));
    },
  };
}
