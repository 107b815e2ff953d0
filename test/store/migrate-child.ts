// One of several processes opening the same fresh SQLite file at once (test/store/migration-race.test.ts):
// loads the store module, prints "ready", waits for "go" on stdin, opens (and so migrates) the database
// and prints one JSON line: { ok, error? }.
//
//   node --import tsx test/store/migrate-child.ts FILE.sqlite

import { createInterface } from 'node:readline';
import { openDatabase } from '../../src/store/db.ts';

const path = process.argv[2]!;
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
for await (const line of lines) if (line.trim() === 'go') break;
lines.close();
process.stdin.destroy();
try {
  const store = await openDatabase({ sqlitePath: path });
  await store.close();
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (e) {
  process.stdout.write(
    `${JSON.stringify({ ok: false, error: (e as Error).message, stack: (e as Error).stack, code: (e as { code?: string }).code })}\n`,
  );
}
