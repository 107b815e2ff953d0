// A small PKI made with the openssl CLI for the XML signature tests: a root, and leaves whose keys
// are loaded into SoftwareSigner as a card's key would be used through the Signer interface.
import { spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodePem } from '../../src/core/pem.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { openssl } from '../helpers/openssl.ts';

export interface Leaf {
  keyPath: string;
  certPath: string;
  /** DER */
  cert: Buffer;
  signer: SoftwareSigner;
}

export interface TestPki {
  dir: string;
  rootPem: string;
  rsa: Leaf;
  ec: Leaf;
  /** RSA-1024: refused by the verifier. Loaded for xmlsec1 only (SoftwareSigner will not take it). */
  weak: Omit<Leaf, 'signer'>;
  /** A second, unrelated RSA leaf (an attacker's key under the same root). */
  other: Leaf;
}

function run(args: string[], cwd: string): void {
  const r = openssl(args, { cwd });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.output}`);
}

export function makePki(dir: string): TestPki {
  writeFileSync(
    join(dir, 'leaf.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n',
  );
  run(
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
      '-utf8',
      '-subj',
      '/C=JP/O=Open JPKI Test\\, Inc./CN=テスト署名用ルートCA',
      '-days',
      '3650',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  const leaf = (name: string, key: string[], serial: string, withSigner = true): Leaf => {
    run(
      [
        'req',
        '-new',
        ...key,
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-utf8',
        '-subj',
        `/C=JP/CN=山田 太郎 ${name}`,
      ],
      dir,
    );
    run(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'root.pem',
        '-CAkey',
        'root.key',
        '-set_serial',
        serial,
        '-days',
        '365',
        '-sha256',
        '-extfile',
        'leaf.ext',
        '-out',
        `${name}.pem`,
      ],
      dir,
    );
    const keyPath = join(dir, `${name}.key`);
    const certPath = join(dir, `${name}.pem`);
    const cert = decodePem(readFileSync(certPath, 'utf8'), ['CERTIFICATE']);
    return {
      keyPath,
      certPath,
      cert,
      signer: withSigner
        ? SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(keyPath, 'utf8')))
        : (undefined as unknown as SoftwareSigner),
    };
  };
  return {
    dir,
    rootPem: join(dir, 'root.pem'),
    rsa: leaf('leaf-rsa', ['-newkey', 'rsa:2048'], '0x0123456789abcdef0123'),
    ec: leaf('leaf-ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '0x00c0ffee'),
    weak: leaf('leaf-weak', ['-newkey', 'rsa:1024'], '4242', false),
    other: leaf('leaf-other', ['-newkey', 'rsa:2048'], '77'),
  };
}

export interface XmlsecResult {
  ok: boolean;
  output: string;
}

/** Runs xmlsec1 (Debian's xmlsec1 1.2.x). */
export function xmlsec1(args: string[], cwd?: string): XmlsecResult {
  const r = spawnSync('xmlsec1', args, { cwd, encoding: 'utf8', timeout: 30_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
    throw new Error('xmlsec1 is not installed (Debian: apt-get install xmlsec1)');
  return { ok: r.status === 0, output: `${r.stdout}\n${r.stderr}` };
}

/** The xmlsec1 command line that verifies our signatures (whole document + XAdES SignedProperties). */
export function xmlsecVerifyArgs(rootPem: string, file: string): string[] {
  return [
    '--verify',
    '--trusted-pem',
    rootPem,
    '--enabled-reference-uris',
    'empty,same-doc',
    '--id-attr:Id',
    'http://uri.etsi.org/01903/v1.3.2#:SignedProperties',
    file,
  ];
}

/** A document from test/xml/fixtures. */
export function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
}
