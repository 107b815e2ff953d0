// A second process running an outbox processor (test/register/outbox.test.ts): opens the authority in
// argv[2] (PostgreSQL when argv[3] is a URL), prints "ready", waits for "go" on stdin, drains the outbox
// (printing "started" after its first row) and prints the outcomes as one JSON line.
//
//   node --import tsx test/register/outbox-child.ts DATA_DIR [DATABASE_URL]

import { createInterface } from 'node:readline';
import { Authority } from '../../src/authority/authority.ts';
import { type OutboxOutcome, OutboxProcessor } from '../../src/register/outbox.ts';

const [dir, databaseUrl] = process.argv.slice(2);
const authority = await Authority.open(dir!, { databaseUrl: databaseUrl || undefined });
try {
  const outcomes: OutboxOutcome[] = [];
  const processor = new OutboxProcessor(authority, {
    id: 'child',
    onProcessed: (o) => {
      // "started" once the first row is done, so that the parent drains alongside the rest.
      if (outcomes.push(o) === 1) process.stdout.write('started\n');
    },
  });
  const lines = createInterface({ input: process.stdin });
  process.stdout.write('ready\n');
  for await (const line of lines) if (line.trim() === 'go') break;
  lines.close();
  process.stdin.destroy();
  await processor.drain();
  process.stdout.write(`${JSON.stringify({ outcomes, stats: processor.stats })}\n`);
} finally {
  await authority.close();
}
