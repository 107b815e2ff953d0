// jpki dev …: developer tools, NOT for a production authority. `dev populate` fills the store with
// synthetic certificates for the national-scale benchmark (src/store/populate.ts says what a
// synthetic row holds); it refuses a store that holds real certificates unless --force is given.

import { resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { Authority } from '../authority/authority.ts';
import { dataPaths } from '../authority/config.ts';
import { populate } from '../store/populate.ts';
import { dataOption } from './staff.ts';

export function registerDevCommands(program: Command): void {
  const dev = program
    .command('dev')
    .description('developer tools for benchmarks and tests (not for a production authority)');
  dev
    .command('populate')
    .description(
      'fill the store (SQLite file, or DATABASE_URL) with synthetic certificates of the sign and auth CAs, some revoked',
    )
    .addOption(dataOption())
    .option(
      '--count <n>',
      'synthetic certificates the store should hold (it is topped up to this)',
      '10000000',
    )
    .option('--revoked <fraction>', 'fraction of the added certificates to revoke', '0.05')
    .option('--batch <n>', 'rows per transaction')
    .option('--force', 'add synthetic rows to a store that holds real certificates')
    .action(async (o: { data: string; count: string; revoked: string; batch?: string; force?: boolean }) => {
      const count = wholeNumber('--count', o.count);
      const revokedFraction = Number(o.revoked);
      if (o.revoked.trim() === '' || !(revokedFraction >= 0 && revokedFraction <= 1))
        throw new Error(`--revoked: a fraction between 0 and 1, not ${o.revoked}`);
      const dir = resolve(o.data);
      const authority = await Authority.open(dir);
      const databaseUrl = process.env.DATABASE_URL;
      const bar = new SingleBar({
        format:
          'populate [{bar}] {percentage}% | {value}/{total} certificates, {revoked} revoked | {rate}/s | ETA {eta_formatted}',
        stream: process.stderr,
      });
      let started = false;
      let t0 = 0;
      let first = 0;
      try {
        const r = await populate(
          databaseUrl ? { databaseUrl } : { sqlitePath: dataPaths(dir).sqlite },
          authority,
          {
            count,
            revokedFraction,
            force: !!o.force,
            ...(o.batch ? { batchSize: wholeNumber('--batch', o.batch) } : {}),
            onProgress: (p) => {
              if (!started) {
                started = true;
                t0 = performance.now();
                first = p.certificates;
                bar.start(p.target, p.certificates, { revoked: p.revoked, rate: 0 });
                return;
              }
              const rate = Math.round((p.certificates - first) / ((performance.now() - t0) / 1000));
              bar.update(p.certificates, { revoked: p.revoked, rate });
            },
          },
        );
        bar.stop();
        const added = r.after.certificates - r.before.certificates;
        process.stdout.write(
          `${added === 0 ? 'nothing to add' : `added ${added} certificates (${r.after.revoked - r.before.revoked} revoked)`}; the store holds ${r.after.certificates} synthetic certificates, ${r.after.revoked} revoked (${r.seconds.toFixed(1)} s${r.indexSeconds !== undefined ? `, of which ${r.indexSeconds.toFixed(1)} s rebuilding keys` : ''})\n`,
        );
      } finally {
        bar.stop();
        await authority.close();
      }
    });
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text.replace(/_/g, ''));
  if (!/^[\d_]+$/.test(text) || !Number.isSafeInteger(n))
    throw new Error(`${flag}: a whole number, not ${text}`);
  return n;
}
