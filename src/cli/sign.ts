import { readFileSync, writeFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import {
  addTimeStamp,
  detectFormat,
  type KeySource,
  openSigningKey,
  readCertificates,
  type SignatureFormat,
  signDocument,
} from '../signing/sign-document.ts';

interface SignOptions {
  format: SignatureFormat;
  key?: string;
  cert: string;
  in: string;
  out: string;
  detached?: boolean;
  timestamp?: string;
  c14n: 'exclusive' | 'inclusive';
  pkcs11Module?: string;
  token?: string;
  pinFile?: string;
  keyLabel?: string;
}

export function registerSignCommands(program: Command): void {
  program
    .command('sign')
    .description(
      'sign a document: CMS/CAdES (attached or detached) or enveloped XML-DSig with XAdES, as e-Tax uses',
    )
    .addOption(new Option('--format <format>', 'signature format').choices(['cms', 'xml']).default('cms'))
    .option('--key <file>', 'private key (PEM); passphrase from JPKI_SIGN_KEY_PASSPHRASE if encrypted')
    .requiredOption('--cert <file>', "signer's certificate (PEM), optionally followed by its CA chain")
    .requiredOption('--in <file>', 'document to sign')
    .requiredOption('--out <file>', 'where to write the signature (.p7s) or the signed XML')
    .option('--detached', 'CMS: leave the content out of the signature file')
    .option('--timestamp <url>', 'RFC 3161 time-stamp authority URL (CAdES-T / XAdES-T)')
    .addOption(
      new Option('--c14n <kind>', 'XML canonicalisation')
        .choices(['exclusive', 'inclusive'])
        .default('exclusive'),
    )
    .option('--pkcs11-module <lib>', 'sign on a PKCS#11 token or IC card (instead of --key)')
    .option('--token <label>', 'token label (with --pkcs11-module)')
    .option('--pin-file <file>', 'file holding the PIN (or JPKI_PKCS11_PIN)')
    .option('--key-label <label>', 'key on the token (default: its only private key)')
    .action(async (o: SignOptions) => {
      const source = await keySource(o);
      const { certificate, chain } = readCertificates(o.cert);
      const content = readFileSync(o.in);
      const key = await openSigningKey(source);
      try {
        const res = await signDocument({
          format: o.format,
          signer: key.signer,
          certificate,
          chain,
          content,
          detached: o.detached,
          canonicalization: o.c14n,
          timestampUrl: o.timestamp,
        });
        writeFileSync(o.out, res.output);
        if (res.timestampMissing)
          process.stderr.write(
            `warning: signed WITHOUT a time stamp (${res.timestampMissing}); add it later with: jpki timestamp --in ${o.out} --url ${o.timestamp}\n`,
          );
        else process.stderr.write(`signed ${o.in} -> ${o.out}${o.timestamp ? ' (time-stamped)' : ''}\n`);
      } finally {
        await key.close();
      }
    });

  program
    .command('timestamp')
    .description('add a signature time stamp to an existing CMS or XML signature (CAdES-T / XAdES-T)')
    .requiredOption('--in <file>', 'signature file (.p7s or signed XML)')
    .option('--out <file>', 'where to write the result (default: replace --in)')
    .requiredOption('--url <url>', 'RFC 3161 time-stamp authority URL')
    .action(async (o: { in: string; out?: string; url: string }) => {
      const signed = readFileSync(o.in);
      const out = await addTimeStamp(detectFormat(signed), signed, o.url);
      writeFileSync(o.out ?? o.in, out);
      process.stderr.write(`time stamp added to ${o.out ?? o.in}\n`);
    });
}

async function keySource(o: SignOptions): Promise<KeySource> {
  if (o.key && o.pkcs11Module) throw new Error('give either --key or --pkcs11-module, not both');
  if (o.key) return { type: 'file', keyPath: o.key, passphrase: process.env.JPKI_SIGN_KEY_PASSPHRASE };
  if (!o.pkcs11Module) throw new Error('give --key FILE or --pkcs11-module LIB --token LABEL --pin-file F');
  if (!o.token) throw new Error('--pkcs11-module needs --token');
  const { resolvePkcs11Pin } = await import('../keys/pkcs11.ts');
  const pin = o.pinFile
    ? readFileSync(o.pinFile, 'utf8').replace(/\r?\n$/, '')
    : resolvePkcs11Pin(process.env);
  if (!pin) throw new Error('no PIN: give --pin-file or set JPKI_PKCS11_PIN');
  return { type: 'pkcs11', module: o.pkcs11Module, tokenLabel: o.token, pin, keyLabel: o.keyLabel };
}
