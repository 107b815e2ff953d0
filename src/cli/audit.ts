// jpki audit verify | tail

import { type Command, InvalidArgumentError, Option } from 'commander';
import { type AuditAnchor, auditHead, tailAudit, verifyAuditChain } from '../audit/audit-log.ts';
import { dataOption, withDataStore } from './staff.ts';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit log');

  audit
    .command('verify')
    .description('recompute the hash chain; exit 0 if intact, 1 with the first bad entry if not')
    .addOption(dataOption())
    .option('--from <seq>', 'first entry to check', positiveInt)
    .option('--to <seq>', 'last entry to check', positiveInt)
    .addOption(
      new Option('--anchor <seq:hash>', 'a head recorded earlier ("jpki audit verify" prints it); repeatable')
        .argParser(collectAnchor)
        .default([]),
    )
    .action(async (o: { data: string; from?: number; to?: number; anchor: AuditAnchor[] }) => {
      const r = await withDataStore(o.data, (store) =>
        verifyAuditChain(store.reader, { from: o.from, to: o.to, anchors: o.anchor }),
      );
      if (!r.ok)
        throw new Error(
          `audit log BROKEN at entry ${r.firstBadSeq} (${r.reason}): ${r.message}; ${r.checked} entries verified before it, head ${r.head.seq}:${r.head.hash}`,
        );
      const range =
        o.from !== undefined || o.to !== undefined
          ? ` (entries ${r.last ? `${o.from ?? 1}..${r.last.seq}` : 'none'})`
          : '';
      process.stdout.write(
        `audit log OK: ${r.checked} entries verified${range}, head ${r.head.seq}:${r.head.hash}\n`,
      );
    });

  audit
    .command('tail')
    .description('print the latest entries, oldest first')
    .addOption(dataOption())
    .addOption(new Option('-n, --lines <n>', 'how many entries').argParser(positiveInt).default(20))
    .option('--municipality <code>', 'only entries of this municipality')
    .option('--json', 'one JSON object per line')
    .action(async (o: { data: string; lines: number; municipality?: string; json?: boolean }) => {
      const entries = await withDataStore(o.data, (store) =>
        tailAudit(store.db, { limit: o.lines, municipalityCode: o.municipality }),
      );
      for (const e of entries) {
        if (o.json) {
          process.stdout.write(`${JSON.stringify(e)}\n`);
          continue;
        }
        const parts = [
          String(e.seq),
          new Date(e.at).toISOString(),
          e.actor,
          e.action,
          e.subject ?? '-',
          e.municipalityCode ?? '-',
          JSON.stringify(e.details),
          e.hash.slice(0, 16),
        ];
        process.stdout.write(`${parts.join('  ')}\n`);
      }
    });

  audit
    .command('head')
    .description('print the head of the chain (number of entries and last hash), for anchoring elsewhere')
    .addOption(dataOption())
    .action(async (o: { data: string }) => {
      const h = await withDataStore(o.data, (store) => auditHead(store.db));
      process.stdout.write(`${h.seq}:${h.hash}\n`);
    });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('a positive integer');
  return n;
}

function collectAnchor(v: string, previous: AuditAnchor[]): AuditAnchor[] {
  const m = /^([0-9]+):([0-9a-f]{64})$/.exec(v);
  if (!m || Number(m[1]) < 1) throw new InvalidArgumentError('SEQ:HASH (64 lowercase hex digits)');
  return [...previous, { seq: Number(m[1]), hash: m[2]! }];
}
