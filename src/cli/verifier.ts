// jpki verifier add | list | key | kinds | suspend | reinstate | end | cert
//
// The registry of authorised verifiers (docs/verifiers.md) from the command line, acting directly on the
// authority's database as whoever runs them (audited as 'cli:<os user>', like `jpki staff`). `key`
// prints the API key once: it is not stored and cannot be shown again.

import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { Authority } from '../authority/authority.ts';
import { jstDayStart } from '../verifiers/calendar.ts';
import { issueVerifierCertificate } from '../verifiers/certificates.ts';
import {
  VERIFIER_CATEGORIES,
  VERIFIER_KINDS,
  type Verifier,
  type VerifierCategory,
  type VerifierKind,
  VerifierRegistry,
} from '../verifiers/registry.ts';
import { cliActor, dataOption, withDataStore } from './staff.ts';

const withRegistry = <T>(dir: string, fn: (r: VerifierRegistry) => Promise<T>): Promise<T> =>
  withDataStore(dir, (store) => fn(new VerifierRegistry(store.db, { credentialCacheMs: 0 })));

function verifierId(text: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new Error(`--verifier: not a verifier id: ${text}`);
  return Number(text);
}

function kindsOf(text: string): VerifierKind[] {
  const kinds = text.split(',').map((k) => k.trim());
  for (const k of kinds)
    if (!VERIFIER_KINDS.includes(k as VerifierKind))
      throw new Error(`--kinds: one or both of ${VERIFIER_KINDS.join(',')}, not "${text}"`);
  return kinds as VerifierKind[];
}

const describe = (v: Verifier) =>
  `verifier ${v.id} "${v.name}" (${v.category}; ${v.kinds.join('+')}; ${v.status}; contract ${v.contractFrom} to ${v.contractTo})`;

export function registerVerifierCommands(program: Command): void {
  const verifier = program
    .command('verifier')
    .description('authorised verifiers: the registry, their API keys and client certificates');

  verifier
    .command('add')
    .description('register an authorised verifier (active at once)')
    .addOption(dataOption())
    .requiredOption('--name <name>', 'the organisation')
    .addOption(
      new Option('--category <category>', 'category').choices(VERIFIER_CATEGORIES).makeOptionMandatory(),
    )
    .option(
      '--kinds <kinds>',
      'revocation information of sign (signature), auth (user-authentication) certificates, or sign,auth',
      'sign,auth',
    )
    .requiredOption('--from <day>', 'first day of the contract, YYYY-MM-DD (Japan)')
    .requiredOption('--to <day>', 'last day of the contract, YYYY-MM-DD (Japan)')
    .action(
      async (o: {
        data: string;
        name: string;
        category: VerifierCategory;
        kinds: string;
        from: string;
        to: string;
      }) => {
        const kinds = kindsOf(o.kinds);
        const v = await withRegistry(o.data, (r) =>
          r.register(
            { name: o.name, category: o.category, kinds, contractFrom: o.from, contractTo: o.to },
            cliActor(),
          ),
        );
        process.stdout.write(`${describe(v)} registered\n`);
        process.stderr.write(`next: jpki verifier key --verifier ${v.id}  (an API key for it)\n`);
      },
    );

  verifier
    .command('list')
    .description('list the registered verifiers')
    .addOption(dataOption())
    .action(async (o: { data: string }) => {
      const list = await withRegistry(o.data, (r) => r.list());
      process.stdout.write(list.map((v) => `${describe(v)}\n`).join('') || 'no verifiers registered\n');
    });

  verifier
    .command('key')
    .description('issue an API key for a verifier and print it once (it is not stored)')
    .addOption(dataOption())
    .requiredOption('--verifier <id>', 'verifier id')
    .option('--label <label>', 'what the key is for')
    .option('--expires <day>', 'last day it works, YYYY-MM-DD (Japan); default: the end of the contract')
    .action(async (o: { data: string; verifier: string; label?: string; expires?: string }) => {
      const id = verifierId(o.verifier);
      let expiresAt: number | undefined;
      if (o.expires !== undefined) {
        if (!/^\d{4}-\d{2}-\d{2}$/.test(o.expires)) throw new Error(`--expires: not a day: ${o.expires}`);
        expiresAt = jstDayStart(o.expires) + 86_400_000;
      }
      const k = await withRegistry(o.data, (r) =>
        r.issueApiKey(id, { label: o.label, ...(expiresAt ? { expiresAt } : {}) }, cliActor()),
      );
      process.stdout.write(`${k.apiKey}\n`);
      process.stderr.write(
        `key ${k.keyId} for verifier ${id}, valid until ${new Date(k.validUntil).toISOString()}; shown once, keep it now.\n` +
          `use: Authorization: Bearer <key>  (openssl ocsp … -header Authorization="Bearer <key>"; curl -H "Authorization: Bearer <key>")\n`,
      );
    });

  verifier
    .command('kinds')
    .description("change which certificates' revocation information a verifier may receive")
    .addOption(dataOption())
    .requiredOption('--verifier <id>', 'verifier id')
    .requiredOption('--kinds <kinds>', 'sign, auth or sign,auth')
    .action(async (o: { data: string; verifier: string; kinds: string }) => {
      const v = await withRegistry(o.data, (r) =>
        r.changeKinds(verifierId(o.verifier), kindsOf(o.kinds), cliActor()),
      );
      process.stdout.write(`${describe(v)}\n`);
    });

  verifier
    .command('cert')
    .description(
      "issue a TLS client certificate for a verifier from its PKCS#10 request (the authority's verifier CA) and register it",
    )
    .addOption(dataOption())
    .requiredOption('--verifier <id>', 'verifier id')
    .requiredOption('--csr <file>', 'PKCS#10 request, PEM or DER')
    .option('--out <file>', 'write the PEM here instead of stdout')
    .action(async (o: { data: string; verifier: string; csr: string; out?: string }) => {
      const id = verifierId(o.verifier);
      let csr: Buffer;
      try {
        csr = readFileSync(o.csr);
      } catch (e) {
        throw new Error(`cannot read ${o.csr}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const authority = await Authority.open(resolve(o.data));
      try {
        const registry = new VerifierRegistry(authority.store.db, { credentialCacheMs: 0 });
        const { issued, registered } = await issueVerifierCertificate(
          authority,
          registry,
          id,
          csr.subarray(0, 64).toString('latin1').includes('-----BEGIN') ? csr.toString('utf8') : csr,
          cliActor(),
        );
        if (o.out) writeFileSync(o.out, issued.pem);
        else process.stdout.write(issued.pem);
        process.stderr.write(
          `issued verifier certificate serial ${issued.serial} (${issued.subject}) until ${issued.notAfter.toISOString()}, registered to verifier ${id} as ${registered.fingerprintSha256}\n`,
        );
      } finally {
        await authority.close();
      }
    });

  for (const [name, what] of [
    ['suspend', 'suspend a verifier (its requests get 403 until reinstated)'],
    ['reinstate', 'reinstate a suspended verifier'],
    ['end', 'end a verifier for good'],
  ] as const)
    verifier
      .command(name)
      .description(what)
      .addOption(dataOption())
      .requiredOption('--verifier <id>', 'verifier id')
      .option('--reason <text>', 'why (required to suspend or end)')
      .action(async (o: { data: string; verifier: string; reason?: string }) => {
        const id = verifierId(o.verifier);
        const v = await withRegistry(o.data, (r) =>
          name === 'reinstate'
            ? r.reinstate(id, o.reason, cliActor())
            : r[name](id, o.reason ?? '', cliActor()),
        );
        process.stdout.write(`${describe(v)}\n`);
      });
}
