// Several processes opening one fresh SQLite file at the same moment (`jpki serve` and `jpki staff add`
// started together on a new data directory, say) must all succeed, and the schema must be migrated once.
// Kysely's migration lock does nothing on SQLite, so db.ts takes SQLite's write lock for the migration.

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import SQLite from 'better-sqlite3';
import { afterAll, expect, it } from 'vitest';
import { migrations } from '../../src/store/migrations.ts';
import { tempDir } from '../helpers/openssl.ts';

const CHILD = resolve(import.meta.dirname, 'migrate-child.ts');
const tmp = tempDir('jpki-migrate-');
afterAll(() => tmp.cleanup());

interface Child {
  ready: Promise<void>;
  go: () => void;
  result: Promise<{ ok: boolean; error?: string }>;
}

function startChild(path: string): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path], {
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await iterator.next();
    if (r.done) throw new Error(`child exited early: ${stderr}`);
    return r.value;
  };
  const ready = next().then((l) => expect(l).toBe('ready'));
  return {
    ready: ready.then(() => undefined),
    go: () => child.stdin.end('go\n'),
    result: ready.then(next).then((l) => JSON.parse(l)),
  };
}

const PROCESSES = 6;

it.each([1, 2, 3])(
  `${PROCESSES} processes open the same fresh SQLite file at once: all succeed, migrated once (round %i)`,
  async (round) => {
    const path = tmp.path(`race-${round}/jpki.sqlite`);
    const children = Array.from({ length: PROCESSES }, () => startChild(path));
    // Every child has loaded its modules before any of them opens the file.
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const results = await Promise.all(children.map((c) => c.result));
    expect(results).toEqual(Array.from({ length: PROCESSES }, () => ({ ok: true })));

    const db = new SQLite(path, { readonly: true });
    try {
      const applied = db.prepare('select name from kysely_migration order by name').pluck().all();
      expect(applied).toEqual(Object.keys(migrations('sqlite')).sort());
      // The one-row tables a migration fills hold one row, not one per process.
      expect(db.prepare('select count(*) from audit_head').pluck().get()).toBe(1);
      expect(db.prepare('pragma journal_mode').pluck().get()).toBe('wal');
    } finally {
      db.close();
    }
  },
);
