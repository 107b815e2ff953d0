// A small PKI made with the openssl CLI for the CMS and time-stamp tests: a root, an intermediate,
// signer certificates (RSA and EC, keyUsage digitalSignature + nonRepudiation) and a TSA
// certificate (extendedKeyUsage timeStamping, critical).

import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  authorityKeyIdentifier,
  basicConstraints,
  keyUsage,
  signCertificate,
  subjectKeyIdentifier,
} from '../../src/core/certificate.ts';
import { certificateInfo } from '../../src/core/cms/signed-data.ts';
import { encodeName, type NameAttribute } from '../../src/core/name.ts';
import { decodePem, encodePem } from '../../src/core/pem.ts';
import { newSerial } from '../../src/core/serial.ts';
import { keyIdentifier } from '../../src/core/spki.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { openssl } from '../helpers/openssl.ts';

export interface Identity {
  certPath: string;
  keyPath: string;
  der: Buffer;
  signer: SoftwareSigner;
}

export interface Pki {
  dir: string;
  path: (name: string) => string;
  root: Identity;
  inter: Identity;
  rsa: Identity;
  ec: Identity;
  /** Certificate with critical EKU timeStamping, issued by the intermediate (RSA key). */
  tsa: Identity;
  /** PEM file with the intermediate: for -certfile / -untrusted. */
  chainPath: string;
  /** Issues a certificate from the intermediate for any public key, with our DER writer. */
  issue: (spki: Buffer, cn: string, extensions?: Buffer[]) => Promise<Buffer>;
}

const EXTENSIONS = `
[ca]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[tsa]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
extendedKeyUsage=critical,timeStamping
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
`;

function must(args: string[], cwd: string): string {
  const r = openssl(args, { cwd });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.output}`);
  return r.stdout;
}

function identity(dir: string, name: string): Identity {
  const certPath = `${dir}/${name}.pem`;
  const keyPath = `${dir}/${name}.key`;
  const key = createPrivateKey(readFileSync(keyPath));
  return {
    certPath,
    keyPath,
    der: decodePem(readFileSync(certPath, 'utf8'), ['CERTIFICATE']),
    signer: SoftwareSigner.fromKeyObject(key),
  };
}

export function makePki(dir: string): Pki {
  writeFileSync(`${dir}/ext.cnf`, EXTENSIONS);
  must(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-subj',
      '/C=JP/O=Test/CN=Test Root',
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  const issue = (name: string, key: string[], subj: string, issuer: string, ext: string) => {
    must(
      ['req', '-new', ...key, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj],
      dir,
    );
    must(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${issuer}.pem`,
        '-CAkey',
        `${issuer}.key`,
        '-CAcreateserial',
        '-CAserial',
        `${issuer}.srl`,
        '-out',
        `${name}.pem`,
        '-days',
        '30',
        '-sha256',
        '-extfile',
        'ext.cnf',
        '-extensions',
        ext,
      ],
      dir,
    );
  };
  const rsa = ['-newkey', 'rsa:2048'];
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  issue('inter', rsa, '/C=JP/O=Test/CN=Test Intermediate', 'root', 'ca');
  issue('rsa', rsa, '/C=JP/CN=RSA Signer', 'inter', 'leaf');
  issue('ec', ec, '/C=JP/CN=EC Signer', 'inter', 'leaf');
  issue('tsa', rsa, '/C=JP/O=Test/CN=Test TSA', 'inter', 'tsa');
  const pki = {
    dir,
    path: (n: string) => `${dir}/${n}`,
    root: identity(dir, 'root'),
    inter: identity(dir, 'inter'),
    rsa: identity(dir, 'rsa'),
    ec: identity(dir, 'ec'),
    tsa: identity(dir, 'tsa'),
    chainPath: `${dir}/inter.pem`,
  };
  const inter = certificateInfo(pki.inter.der);
  return {
    ...pki,
    issue: (spki, cn, extensions) => {
      const now = Date.now();
      const attrs: NameAttribute[] = [
        ['C', 'JP'],
        ['CN', cn],
      ];
      return signCertificate(pki.inter.signer, {
        serial: newSerial(),
        issuer: inter.subject,
        subject: encodeName(attrs),
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 86_400_000),
        spki,
        extensions: extensions ?? [
          basicConstraints(false),
          keyUsage(['digitalSignature', 'nonRepudiation']),
          subjectKeyIdentifier(keyIdentifier(spki)),
          authorityKeyIdentifier(keyIdentifier(inter.spki)),
        ],
      });
    },
  };
}

/** Writes a DER certificate as PEM. */
export function writeCertPem(path: string, der: Buffer): void {
  writeFileSync(path, encodePem('CERTIFICATE', der));
}
