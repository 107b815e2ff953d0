// `jpki card …`: the resident's IC card. A software card is a JSON file (--file); a PKCS#11 card is
// two tokens `<name>-sign` / `<name>-auth` behind a module (--pkcs11-module LIB --card NAME).
//
// PINs are never printed. They come from a file (--pin-file, preferred: not in the shell history or
// the process list), the command line (--pin) or the environment (JPKI_CARD_PIN), in that order.

import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import {
  CARD_SLOTS,
  CardError,
  type CardSlot,
  type IcCard,
  PIN_RULES,
  type PinStatus,
  SLOT_TITLES,
  triesText,
} from '../card/card.ts';
import { SoftwareCard } from '../card/software-card.ts';
import { decodePemAll, derFromPemOrDer, encodePem } from '../core/pem.ts';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../core/signer.ts';
import { type SignatureFormat, signDocument } from '../signing/sign-document.ts';

interface CardOptions {
  file?: string;
  pkcs11Module?: string;
  card?: string;
}

interface SecretOptions {
  value?: string;
  file?: string;
  /** Environment variable to fall back on. */
  env?: string;
  /** For messages: "--pin", "--new" … */
  flag: string;
}

const slotOption = () =>
  new Option('--slot <slot>', 'sign (署名用) or auth (利用者証明用)')
    .choices(CARD_SLOTS)
    .makeOptionMandatory();

function addCardOptions(cmd: Command): Command {
  return cmd
    .option('--file <card.json>', 'software card file')
    .option('--pkcs11-module <lib>', 'PKCS#11 module of a card or token (instead of --file)')
    .option('--card <name>', 'PKCS#11 card name: its slots are the tokens <name>-sign and <name>-auth');
}

function addPinOptions(cmd: Command): Command {
  return cmd
    .option('--pin-file <file>', 'file holding the PIN (preferred)')
    .option('--pin <pin>', 'the PIN (visible to other users of this machine: prefer --pin-file)');
}

/** The secret from its file (trailing newline removed), the option, or the environment. */
function secret(o: SecretOptions): string {
  if (o.file !== undefined && o.value !== undefined)
    throw new Error(`give either ${o.flag} or ${o.flag}-file, not both`);
  if (o.file !== undefined) {
    try {
      return readFileSync(o.file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new Error(`cannot read ${o.flag}-file ${o.file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  if (o.value !== undefined) return o.value;
  const fromEnv = o.env ? process.env[o.env] : undefined;
  if (fromEnv) return fromEnv;
  throw new Error(
    `no ${o.flag.replace(/^--/, '')}: give ${o.flag}-file FILE${o.env ? ` or set ${o.env}` : ''}`,
  );
}

const pinOf = (o: { pin?: string; pinFile?: string }) =>
  secret({ value: o.pin, file: o.pinFile, env: 'JPKI_CARD_PIN', flag: '--pin' });

async function openCard(o: CardOptions): Promise<IcCard> {
  if (o.file && o.pkcs11Module) throw new Error('give either --file or --pkcs11-module, not both');
  if (o.file) return SoftwareCard.open(o.file);
  if (!o.pkcs11Module) throw new Error('give --file CARD.json, or --pkcs11-module LIB --card NAME');
  if (!o.card) throw new Error('--pkcs11-module needs --card NAME');
  const { Pkcs11Card } = await import('../card/pkcs11-card.ts');
  return Pkcs11Card.open({ module: o.pkcs11Module, name: o.card });
}

async function withCard<T>(o: CardOptions, fn: (card: IcCard) => Promise<T>): Promise<T> {
  const card = await openCard(o);
  try {
    return await fn(card);
  } finally {
    await card.close();
  }
}

function readCertificateFile(path: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return derFromPemOrDer(data, 'CERTIFICATE');
}

function describePin(status: PinStatus): string {
  if (status.locked)
    return `LOCKED (0 of ${status.maxTries} tries left): it must be reset at the municipal counter`;
  if (status.triesLeft !== undefined)
    return `${triesText(status.triesLeft)} left of ${status.maxTries}${status.finalTry ? ' (final try)' : ''}`;
  return `the token does not report a count${status.countLow ? ' (it reports few tries left)' : ''}; the card allows ${status.maxTries}`;
}

function describeCertificate(der: Buffer): string[] {
  try {
    const c = new X509Certificate(der);
    const iso = (s: string) => new Date(s).toISOString().replace('.000Z', 'Z');
    return [
      `certificate: ${c.subject.split('\n').join(', ')}`,
      `  serial ${c.serialNumber}, valid ${iso(c.validFrom)} to ${iso(c.validTo)}`,
      `  issuer ${c.issuer.split('\n').join(', ')}`,
    ];
  } catch {
    return ['certificate: (unreadable)'];
  }
}

export function registerCardCommands(program: Command): void {
  const card = program
    .command('card')
    .description(
      "the resident's IC card: two key slots (sign: PIN 6-16 of A-Z/0-9, 5 tries; auth: 4-digit PIN, 3 tries)",
    );

  card
    .command('create')
    .description('create a software card file (development and tests: no hardware protection)')
    .requiredOption('--file <card.json>', 'the card file to create (refused if it exists)')
    .option('--sign-pin-file <file>', 'file holding the signature PIN (6-16 of A-Z and 0-9)')
    .option('--sign-pin <pin>', 'the signature PIN (prefer --sign-pin-file)')
    .option('--auth-pin-file <file>', 'file holding the authentication PIN (4 digits)')
    .option('--auth-pin <pin>', 'the authentication PIN (prefer --auth-pin-file)')
    .option('--unblock-file <file>', "file holding the counter's unblock secret (8-256 characters)")
    .option('--unblock <secret>', "the counter's unblock secret (prefer --unblock-file)")
    .option('--id <serial>', 'card serial (default: random)')
    .action(
      async (o: {
        file: string;
        signPin?: string;
        signPinFile?: string;
        authPin?: string;
        authPinFile?: string;
        unblock?: string;
        unblockFile?: string;
        id?: string;
      }) => {
        const c = await SoftwareCard.create(o.file, {
          signPin: secret({ value: o.signPin, file: o.signPinFile, flag: '--sign-pin' }),
          authPin: secret({ value: o.authPin, file: o.authPinFile, flag: '--auth-pin' }),
          unblock: secret({ value: o.unblock, file: o.unblockFile, flag: '--unblock' }),
          id: o.id,
        });
        await c.close();
        process.stdout.write(`created software card ${c.id} in ${o.file}\n`);
      },
    );

  addCardOptions(card.command('show'))
    .description('the card id and, for each slot, key, certificate and PIN tries left (no PIN needed)')
    .action(async (o: CardOptions) => {
      await withCard(o, async (c) => {
        const lines = [`card ${c.id} (${c.kind === 'software' ? `software card ${o.file}` : 'PKCS#11'})`];
        for (const slot of CARD_SLOTS) {
          const [key, cert, pin] = await Promise.all([
            c.keyInfo(slot),
            c.certificate(slot),
            c.pinStatus(slot),
          ]);
          lines.push(`${SLOT_TITLES[slot]}:`);
          lines.push(`  key: ${key ? key.algorithm : 'none'}`);
          for (const l of cert ? describeCertificate(cert) : ['certificate: none']) lines.push(`  ${l}`);
          lines.push(`  PIN: ${describePin(pin)}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  addPinOptions(addCardOptions(card.command('keygen')))
    .description('generate a key pair on the card and write a request (PKCS#10) signed on the card')
    .addOption(slotOption())
    .addOption(new Option('--algorithm <alg>', 'key algorithm').choices(KEY_ALGORITHMS).default('rsa-2048'))
    .requiredOption('--out <req.pem>', 'where to write the certificate request (PEM)')
    .option('--replace', 'replace the key (and certificate) the slot already holds')
    .action(
      async (
        o: CardOptions & {
          slot: CardSlot;
          algorithm: KeyAlgorithm;
          pin?: string;
          pinFile?: string;
          out: string;
          replace?: boolean;
        },
      ) => {
        const pin = pinOf(o);
        await withCard(o, async (c) => {
          if (!o.replace && (await c.keyInfo(o.slot)))
            throw new CardError(
              `the ${o.slot} slot of card ${c.id} already holds a key; give --replace to replace it (its certificate goes too)`,
            );
          await c.generateKey(o.slot, o.algorithm, pin);
          // One PIN check for the key, one for the request: the same sequence as at a real counter.
          const csr = await c.createCsr(o.slot, pin);
          writeFileSync(o.out, encodePem('CERTIFICATE REQUEST', csr));
          process.stderr.write(
            `generated a key (${o.algorithm}) in the ${o.slot} slot of card ${c.id}; request written to ${o.out}\n`,
          );
        });
      },
    );

  addPinOptions(addCardOptions(card.command('csr')))
    .description("write a new certificate request for the slot's existing key (signed on the card)")
    .addOption(slotOption())
    .requiredOption('--out <req.pem>', 'where to write the certificate request (PEM)')
    .action(async (o: CardOptions & { slot: CardSlot; pin?: string; pinFile?: string; out: string }) => {
      const pin = pinOf(o);
      await withCard(o, async (c) => {
        writeFileSync(o.out, encodePem('CERTIFICATE REQUEST', await c.createCsr(o.slot, pin)));
        process.stderr.write(`request for the ${o.slot} key of card ${c.id} written to ${o.out}\n`);
      });
    });

  addCardOptions(card.command('write-cert'))
    .description("store the issued certificate on the card (it must be for the slot's key)")
    .addOption(slotOption())
    .requiredOption('--cert <cert.pem>', 'the certificate, PEM or DER (the first one of a PEM file)')
    .action(async (o: CardOptions & { slot: CardSlot; cert: string }) => {
      const der = readCertificateFile(o.cert);
      await withCard(o, async (c) => {
        await c.writeCertificate(o.slot, der);
        process.stderr.write(`certificate written to the ${o.slot} slot of card ${c.id}\n`);
      });
    });

  addCardOptions(card.command('export-cert'))
    .description("print the slot's certificate as PEM (no PIN needed)")
    .addOption(slotOption())
    .option('--out <file>', 'write it here instead of stdout')
    .action(async (o: CardOptions & { slot: CardSlot; out?: string }) => {
      await withCard(o, async (c) => {
        const der = await c.certificate(o.slot);
        if (!der) throw new CardError(`the ${o.slot} slot of card ${c.id} holds no certificate`);
        const pem = encodePem('CERTIFICATE', der);
        if (o.out) writeFileSync(o.out, pem);
        else process.stdout.write(pem);
      });
    });

  addPinOptions(addCardOptions(card.command('sign')))
    .description('sign a document with the key on the card: CMS/CAdES or enveloped XML-DSig/XAdES')
    .addOption(new Option('--slot <slot>', 'which key').choices(CARD_SLOTS).default('sign'))
    .requiredOption('--in <file>', 'document to sign')
    .requiredOption('--out <file>', 'where to write the signature (.p7s) or the signed XML')
    .addOption(new Option('--format <format>', 'signature format').choices(['cms', 'xml']).default('cms'))
    .option('--detached', 'CMS: leave the content out of the signature file')
    .option('--timestamp <url>', 'RFC 3161 time-stamp authority URL (CAdES-T / XAdES-T)')
    .option('--chain <file>', 'CA certificates (PEM) to include in the signature')
    .addOption(
      new Option('--c14n <kind>', 'XML canonicalisation')
        .choices(['exclusive', 'inclusive'])
        .default('exclusive'),
    )
    .action(
      async (
        o: CardOptions & {
          slot: CardSlot;
          pin?: string;
          pinFile?: string;
          in: string;
          out: string;
          format: SignatureFormat;
          detached?: boolean;
          timestamp?: string;
          chain?: string;
          c14n: 'exclusive' | 'inclusive';
        },
      ) => {
        const pin = pinOf(o);
        const content = readFileSync(o.in);
        const chain = o.chain ? readChain(o.chain) : [];
        await withCard(o, async (c) => {
          const certificate = await c.certificate(o.slot);
          if (!certificate)
            throw new CardError(
              `the ${o.slot} slot of card ${c.id} holds no certificate; write one with "jpki card write-cert"`,
            );
          const signer = await c.signer(o.slot, pin);
          const res = await signDocument({
            format: o.format,
            signer,
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
          else
            process.stderr.write(
              `signed ${o.in} -> ${o.out} with the ${o.slot} key of card ${c.id}${o.timestamp ? ' (time-stamped)' : ''}\n`,
            );
        });
      },
    );

  addCardOptions(card.command('change-pin'))
    .description('change a PIN (the old one is checked and a wrong one costs a try)')
    .addOption(slotOption())
    .option('--old-file <file>', 'file holding the current PIN (preferred)')
    .option('--old <pin>', 'the current PIN')
    .option('--new-file <file>', 'file holding the new PIN (preferred)')
    .option('--new <pin>', 'the new PIN')
    .action(
      async (
        o: CardOptions & { slot: CardSlot; old?: string; oldFile?: string; new?: string; newFile?: string },
      ) => {
        const oldPin = secret({ value: o.old, file: o.oldFile, env: 'JPKI_CARD_PIN', flag: '--old' });
        const newPin = secret({ value: o.new, file: o.newFile, flag: '--new' });
        await withCard(o, async (c) => {
          await c.changePin(o.slot, oldPin, newPin);
          process.stderr.write(`${PIN_RULES[o.slot].name} PIN of card ${c.id} changed\n`);
        });
      },
    );

  addCardOptions(card.command('reset-pin'))
    .description(
      "at the municipal counter: set a new PIN and unlock the slot with the counter's unblock credential",
    )
    .addOption(slotOption())
    .option('--unblock-file <file>', 'file holding the unblock secret (PKCS#11: the SO PIN)')
    .option('--unblock <secret>', 'the unblock secret (PKCS#11: the SO PIN)')
    .option('--new-file <file>', 'file holding the new PIN (preferred)')
    .option('--new <pin>', 'the new PIN')
    .action(
      async (
        o: CardOptions & {
          slot: CardSlot;
          unblock?: string;
          unblockFile?: string;
          new?: string;
          newFile?: string;
        },
      ) => {
        const unblock = secret({ value: o.unblock, file: o.unblockFile, flag: '--unblock' });
        const newPin = secret({ value: o.new, file: o.newFile, flag: '--new' });
        await withCard(o, async (c) => {
          await c.resetPin(o.slot, unblock, newPin);
          process.stderr.write(
            `${PIN_RULES[o.slot].name} PIN of card ${c.id} reset: ${triesText(PIN_RULES[o.slot].maxTries)} available\n`,
          );
        });
      },
    );
}

function readChain(path: string): Buffer[] {
  const out = decodePemAll(readFileSync(path, 'utf8'), 'CERTIFICATE');
  if (out.length === 0) throw new Error(`${path} holds no CERTIFICATE PEM block`);
  return out;
}
