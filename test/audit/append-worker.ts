// Appends entries to the audit log from a separate process (audit-log.test.ts runs two at once).
//   node --import tsx append-worker.ts '<OpenDatabaseOptions JSON>' <who> <count>
import { appendAudit } from '../../src/audit/audit-log.ts';
import { openDatabase } from '../../src/store/db.ts';

const [options, who, count] = process.argv.slice(2);
const store = await openDatabase(JSON.parse(options!));
try {
  const n = Number(count);
  // Several in flight at once within the process too.
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      appendAudit(store.db, { actor: `staff:${who}`, action: 'audit.test', subject: `n:${i}` }),
    ),
  );
} finally {
  await store.close();
}
