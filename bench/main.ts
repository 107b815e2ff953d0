// `npm run bench [-- issuance|crl|ocsp]`: runs the benchmarks and writes bench/results/latest.json
// (a run of one benchmark writes bench/results/latest-<name>.json, so that it does not replace the
// figures of the whole run that BENCHMARKS.md quotes).
// Internal sub-commands (child processes started by the benchmarks themselves):
//   crl-child <dataDir> [databaseUrl]   times one generateCrl('sign') and reports its memory
//   crl-phases <dataDir> [url]          times the parts of generateCrl one after the other
//   ocsp-server <dataDir> [workers]     serves the authority on 127.0.0.1 (random port; workers > 1: node:cluster)

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { log, machineInfo } from './util.ts';

// Imported lazily: a child process loads only what it runs (its memory is measured).
const BENCHMARKS = {
  issuance: async () => (await import('./issuance.ts')).benchIssuance(),
  crl: async () => (await import('./crl.ts')).benchCrl(),
  ocsp: async () => (await import('./ocsp.ts')).benchOcsp(),
  verify: async () => (await import('./verify.ts')).benchVerify(),
  register: async () => (await import('./register.ts')).benchRegister(),
  scale: async () => (await import('./scale.ts')).benchScale(),
} as const;
type BenchName = keyof typeof BENCHMARKS;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'crl-child') return (await import('./crl.ts')).crlChild(rest[0]!, rest[1]);
  if (command === 'crl-phases') return (await import('./crl.ts')).crlPhasesChild(rest[0]!, rest[1]);
  if (command === 'ocsp-server')
    return (await import('./ocsp.ts')).ocspServerChild(rest[0]!, Number(rest[1] ?? 1));
  const names = Object.keys(BENCHMARKS) as BenchName[];
  if (command !== undefined && !names.includes(command as BenchName)) {
    process.stderr.write(`usage: npm run bench [-- ${names.join('|')}]\n`);
    process.exitCode = 2;
    return;
  }
  const selected = command ? [command as BenchName] : names;
  const machine = await machineInfo();
  log(
    `${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, ${machine.openssl}, ${machine.date}`,
  );
  const started = performance.now();
  const results: Record<string, unknown> = {};
  for (const name of selected) results[name] = await BENCHMARKS[name]();
  const out = {
    command: `npm run bench${command ? ` -- ${command}` : ''}`,
    machine,
    durationSeconds: Math.round((performance.now() - started) / 1000),
    results,
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const name = command ? `latest-${command}.json` : 'latest.json';
  const file = `${dir}${name}`;
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  // Lay it out as the repository's formatter does, so that `npm run lint` stays clean (best effort).
  spawnSync(
    fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url)),
    ['format', '--write', file],
    {
      stdio: 'ignore',
    },
  );
  log(`results written to bench/results/${name} (${out.durationSeconds} s)`);
}

await main(process.argv.slice(2));
