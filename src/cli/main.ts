import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { Authority } from '../authority/authority.ts';
import { CA_CERTIFICATE_IDS, type CaCertificateId, dataPaths, keyLabel } from '../authority/config.ts';
import { revocationReasons } from '../authority/reasons.ts';
import { parseSex } from '../core/basic-facts.ts';
import type { CrlIssuerId } from '../core/profiles.ts';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../core/signer.ts';
import { registerAuditCommands } from './audit.ts';
import { registerCardCommands } from './card.ts';
import { registerDevCommands } from './dev.ts';
import { registerRegisterCommands } from './register.ts';
import { registerSignCommands } from './sign.ts';
import { registerStaffCommands } from './staff.ts';
import { registerVerifierCommands } from './verifier.ts';
import { registerValidateCommand, registerVerifyCommand } from './verify.ts';

const debug = process.argv.includes('--debug');

const program = new Command()
  .name('jpki')
  .description('open-jpki: the public certification service for individuals')
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError()
  .exitOverride();

const dataOption = () =>
  new Option('--data <dir>', 'authority data directory').env('JPKI_DATA').default('./data');

async function withAuthority<T>(dir: string, fn: (a: Authority) => Promise<T>): Promise<T> {
  const authority = await Authority.open(resolve(dir));
  try {
    return await fn(authority);
  } finally {
    await authority.close();
  }
}

program
  .command('init')
  .description('create a new authority: root CA, signature and authentication issuing CAs, OCSP signers')
  .addOption(dataOption())
  .addOption(new Option('--algorithm <alg>', 'key algorithm').choices(KEY_ALGORITHMS).default('rsa-2048'))
  .option(
    '--base-url <url>',
    'base URL written into certificates (CRL, OCSP, CA issuers)',
    'http://127.0.0.1:8080',
  )
  .option('--pkcs11-module <lib>', 'keep the CA keys on a PKCS#11 token through this module')
  .option('--token <label>', 'PKCS#11 token label (with --pkcs11-module)')
  .addOption(
    new Option(
      '--revocation-access <who>',
      'who may fetch OCSP, CRLs and POST /verify: authorised verifiers only (the law), or anyone (tests, demos)',
    )
      .choices(['verifiers', 'public'])
      .default('verifiers'),
  )
  .action(
    async (o: {
      data: string;
      algorithm: KeyAlgorithm;
      baseUrl: string;
      pkcs11Module?: string;
      token?: string;
      revocationAccess: 'verifiers' | 'public';
    }) => {
      if (o.pkcs11Module && !o.token) throw new Error('--pkcs11-module needs --token');
      checkUrl(o.baseUrl);
      const res = await Authority.init({
        dataDir: resolve(o.data),
        algorithm: o.algorithm,
        baseUrl: o.baseUrl,
        revocationAccess: o.revocationAccess,
        keyStore: o.pkcs11Module
          ? { type: 'pkcs11', module: o.pkcs11Module, tokenLabel: o.token! }
          : { type: 'software' },
      });
      process.stdout.write(`authority created in ${resolve(o.data)} (${res.config.algorithm})\n`);
      if (o.revocationAccess === 'verifiers')
        process.stderr.write(
          `OCSP, CRLs and /verify answer authorised verifiers only: register one with "jpki verifier add" and give it a key with "jpki verifier key"\n`,
        );
      if (res.generatedPassphraseFile)
        process.stderr.write(
          `note: no JPKI_KEY_PASSPHRASE given; keys are encrypted with a generated passphrase in ${res.generatedPassphraseFile}. Keep it elsewhere in production.\n`,
        );
    },
  );

const ca = program.command('ca').description('CA certificates');
ca.command('show')
  .description('print a CA certificate as PEM')
  .addOption(dataOption())
  .addOption(new Option('--ca <id>', 'which certificate').choices(CA_CERTIFICATE_IDS).makeOptionMandatory())
  .action(async (o: { data: string; ca: CaCertificateId }) => {
    const path = dataPaths(resolve(o.data)).cert(o.ca);
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch {
      throw new Error(`no authority in ${resolve(o.data)} (missing ${path}); run "jpki init" first`);
    }
    process.stdout.write(pem);
  });

ca.command('add-verifier-ca')
  .description(
    "add the verifier CA (authorised verifiers' TLS client certificates) to an authority created without one",
  )
  .addOption(dataOption())
  .action(async (o: { data: string }) => {
    const dir = resolve(o.data);
    await Authority.addVerifierCa(dir);
    process.stdout.write(
      `verifier CA added: ${dataPaths(dir).cert('verifier')} (key ${keyLabel('verifier')}); no other key or certificate was touched\n`,
    );
  });

program
  .command('issue')
  .description('issue a certificate from a PKCS#10 request and print it as PEM')
  .addOption(dataOption())
  .addOption(
    new Option('--kind <kind>', 'sign (signature) or auth (user authentication)')
      .choices(['sign', 'auth'])
      .makeOptionMandatory(),
  )
  .requiredOption('--csr <file>', 'PKCS#10 request, PEM or DER')
  .option('--name <name>', 'family and given name (signature certificate)')
  .option('--birth <date>', 'date of birth YYYY-MM-DD (signature certificate)')
  .option('--sex <sex>', 'M, F or U (signature certificate)')
  .option('--address <address>', 'address from the prefecture on (signature certificate)')
  .option('--counter <id>', 'issuing counter id, part of the subject CN')
  .option('--out <file>', 'write the PEM here instead of stdout')
  .action(
    async (o: {
      data: string;
      kind: 'sign' | 'auth';
      csr: string;
      name?: string;
      birth?: string;
      sex?: string;
      address?: string;
      counter?: string;
      out?: string;
    }) => {
      const facts = [o.name, o.birth, o.sex, o.address];
      if (o.kind === 'sign' && facts.some((f) => f === undefined))
        throw new Error('a signature certificate needs --name, --birth, --sex and --address');
      if (o.kind === 'auth' && facts.some((f) => f !== undefined))
        throw new Error(
          'an authentication certificate carries no personal data: drop --name/--birth/--sex/--address',
        );
      const csr = readInput(o.csr);
      const cert = await withAuthority(o.data, (a) =>
        a.issue({
          kind: o.kind,
          csr: csr.subarray(0, 64).toString('latin1').includes('-----BEGIN') ? csr.toString('utf8') : csr,
          counterId: o.counter,
          facts:
            o.kind === 'sign'
              ? { name: o.name!, dateOfBirth: o.birth!, sex: parseSex(o.sex!), address: o.address! }
              : undefined,
        }),
      );
      if (o.out) writeFileSync(o.out, cert.pem);
      else process.stdout.write(cert.pem);
      process.stderr.write(`issued ${o.kind} certificate serial ${cert.serial}\n`);
    },
  );

program
  .command('revoke')
  .description('revoke a certificate')
  .addOption(dataOption())
  .requiredOption('--serial <hex>', 'serial number in hex')
  .addOption(
    new Option('--reason <reason>', 'RFC 5280 reason').choices(revocationReasons()).default('unspecified'),
  )
  .option('--time <iso>', 'revocation time (default now)')
  .action(async (o: { data: string; serial: string; reason: string; time?: string }) => {
    const at = o.time ? new Date(o.time) : undefined;
    if (at && Number.isNaN(at.getTime())) throw new Error(`--time: not a date: ${o.time}`);
    const r = await withAuthority(o.data, (a) => a.revoke(o.serial, o.reason as never, at));
    process.stdout.write(
      r.created
        ? `revoked ${r.revocation.serial} (${o.reason}) at ${new Date(r.revocation.revoked_at).toISOString()}\n`
        : `already revoked ${r.revocation.serial} at ${new Date(r.revocation.revoked_at).toISOString()}; the first record is kept\n`,
    );
  });

program
  .command('crl')
  .description('build, sign and store a new CRL, and write it as DER')
  .addOption(dataOption())
  .addOption(
    new Option('--ca <id>', 'issuing CA').choices(['sign', 'auth', 'root', 'verifier']).makeOptionMandatory(),
  )
  .option('--delta', 'a delta CRL against the latest full CRL')
  .option(
    '--partition <n>',
    "the CRL of one partition of the CA's certificates (sign, auth), 0 to partitions - 1",
  )
  .requiredOption('--out <file>', 'where to write the DER CRL')
  .action(async (o: { data: string; ca: CrlIssuerId; delta?: boolean; partition?: string; out: string }) => {
    if (o.partition !== undefined && !/^\d{1,4}$/.test(o.partition))
      throw new Error(`--partition: not a partition number: ${o.partition}`);
    const partition = o.partition === undefined ? undefined : Number(o.partition);
    await withAuthority(o.data, async (a) => {
      const res = await a.generateCrl(o.ca, {
        delta: !!o.delta,
        ...(partition !== undefined ? { partition } : {}),
      });
      const crl = await a.currentCrl(o.ca, res.kind, partition);
      writeFileSync(o.out, crl!.der);
      process.stderr.write(
        `${res.kind} CRL #${res.number} of ${res.scope === o.ca ? o.ca : `${o.ca} partition ${partition} (${res.scope})`} with ${res.entries} entries, next update ${res.nextUpdate.toISOString()}\n`,
      );
    });
  });

program
  .command('serve')
  .description('serve OCSP, CRLs, CA certificates and the operator API over HTTP')
  .addOption(dataOption())
  .addOption(new Option('--port <port>', 'TCP port').env('PORT').default('8080'))
  .addOption(new Option('--host <host>', 'address to bind').env('HOST').default('127.0.0.1'))
  .option('--init', 'create the authority first if the data directory has none')
  .option(
    '--tls-cert <file>',
    'serve HTTPS with this PEM certificate (chain); verifiers may then use client certificates',
  )
  .option('--tls-key <file>', 'the PEM private key of --tls-cert')
  .option(
    '--client-ca <file>',
    "PEM CA of verifiers' client certificates (default: the authority's verifier CA)",
  )
  .addOption(
    new Option('--role <role>', 'all: the whole authority; ocsp: an OCSP responder only (docs/ocsp.md)')
      .choices(['all', 'ocsp'])
      .default('all'),
  )
  .action(
    async (o: {
      data: string;
      port: string;
      host: string;
      init?: boolean;
      role: 'all' | 'ocsp';
      tlsCert?: string;
      tlsKey?: string;
      clientCa?: string;
    }) => {
      if (!o.tlsCert !== !o.tlsKey) throw new Error('--tls-cert and --tls-key go together');
      if (o.clientCa && !o.tlsCert) throw new Error('--client-ca needs --tls-cert and --tls-key');
      const { serve } = await import('../http/serve.ts');
      await serve({
        dataDir: resolve(o.data),
        port: Number(o.port),
        host: o.host,
        init: !!o.init,
        role: o.role,
        ...(o.tlsCert && o.tlsKey
          ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, clientCaFile: o.clientCa } }
          : {}),
      });
    },
  );

program
  .command('ocsp')
  .description('OCSP responses (docs/ocsp.md)')
  .command('presign')
  .description('sign the OCSP responses that are missing or due for refresh, in batches, and store them')
  .addOption(dataOption())
  .option('--batch <n>', 'certificates per batch', '1000')
  .option('--concurrency <n>', 'signatures in flight at once', '8')
  .action(async (o: { data: string; batch: string; concurrency: string }) => {
    const batchSize = positiveInteger(o.batch, '--batch');
    const concurrency = positiveInteger(o.concurrency, '--concurrency');
    const { presignWithProgress } = await import('./ocsp.ts');
    await withAuthority(o.data, (a) => presignWithProgress(a, { batchSize, concurrency }));
  });

registerSignCommands(program);
registerStaffCommands(program);
registerAuditCommands(program);
registerCardCommands(program);
registerRegisterCommands(program);
registerValidateCommand(program);
registerVerifyCommand(program);
registerVerifierCommands(program);
registerDevCommands(program);

function readInput(path: string): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function positiveInteger(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw new Error(`${what}: not a positive whole number: ${text}`);
  return n;
}

function checkUrl(u: string) {
  try {
    const url = new URL(u);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
  } catch {
    throw new Error(`--base-url: not an http(s) URL: ${u}`);
  }
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    const err = e as Error;
    process.stderr.write(`jpki: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}
