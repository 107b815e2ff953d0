// The audit log: append, verify, tamper detection, database-level refusal of edits, concurrency.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  AuditEntryError,
  appendAudit,
  auditHead,
  entryHash,
  GENESIS_HASH,
  tailAudit,
  verifyAuditChain,
} from '../../src/audit/audit-log.ts';
import { CanonicalJsonError, canonicalJson } from '../../src/audit/canonical-json.ts';
import { openDatabase } from '../../src/store/db.ts';
import { forEachStore, type TestStore } from '../helpers/db.ts';

const T0 = 1_750_000_000_000;

async function appendMany(db: TestStore['db'], n: number, start = 0): Promise<void> {
  for (let i = 0; i < n; i++)
    await appendAudit(db, {
      actor: `staff:${(i % 3) + 1}`,
      action: 'resident.read',
      subject: `resident:${start + i}`,
      municipalityCode: '131016',
      details: { n: start + i, nested: { b: [1, 'x'], a: null } },
      at: T0 + start + i,
    });
}

/** Lets a test change rows behind the triggers' back, as someone with the table owner's rights could. */
async function disableTriggers(store: TestStore, ...names: string[]): Promise<void> {
  for (const name of names) {
    if (store.backend === 'sqlite') await sql`drop trigger ${sql.id(name)}`.execute(store.db);
    else {
      const pgName =
        name === 'audit_log_no_update' || name === 'audit_log_no_delete'
          ? 'audit_log_no_update_delete'
          : name;
      if (name === 'audit_log_advance_head') continue; // on PostgreSQL part of audit_log_extend_chain
      await sql`alter table audit_log disable trigger ${sql.id(pgName)}`.execute(store.db);
    }
  }
}

describe('canonical JSON', () => {
  it('sorts keys, drops whitespace, and refuses what JSON cannot carry', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'é'], c: { z: 0, y: -1.5 } })).toBe(
      '{"a":[true,null,"é"],"b":1,"c":{"y":-1.5,"z":0}}',
    );
    // UTF-16 code unit order (RFC 8785): 'Z' < 'a' < 'é' < '日'
    expect(canonicalJson({ 日: 1, é: 2, a: 3, Z: 4 })).toBe('{"Z":4,"a":3,"é":2,"日":1}');
    for (const bad of [
      undefined,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1n,
      () => 1,
      new Date(0),
      { a: undefined },
    ])
      expect(() => canonicalJson(bad)).toThrow(CanonicalJsonError);
  });
});

forEachStore((current) => {
  it('appends entries with gap-free seqs and a hash chain that verifies', async () => {
    const { db } = current();
    expect(await auditHead(db)).toEqual({ seq: 0, hash: GENESIS_HASH });
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true, checked: 0 });
    const first = await appendAudit(db, { actor: 'system', action: 'audit.test', at: T0 });
    expect(first).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, subject: null, details: {} });
    expect(first.hash).toBe(entryHash(first));
    await appendMany(db, 9);
    const head = await auditHead(db);
    expect(head.seq).toBe(10);
    const v = await verifyAuditChain(db);
    expect(v).toEqual({ ok: true, checked: 10, head, last: head });
    expect(await verifyAuditChain(db, { from: 4, to: 7 })).toMatchObject({ ok: true, checked: 4 });
    expect(
      await verifyAuditChain(db, {
        anchors: [{ seq: 5, hash: (await tailAudit(db, { limit: 6 }))[0]!.hash }],
      }),
    ).toMatchObject({ ok: true });

    const tail = await tailAudit(db, { limit: 3 });
    expect(tail.map((e) => e.seq)).toEqual([8, 9, 10]);
    expect(tail[0]).toMatchObject({
      actor: 'staff:1',
      action: 'resident.read',
      subject: 'resident:6',
      municipalityCode: '131016',
      details: { n: 6, nested: { a: null, b: [1, 'x'] } },
    });
    // The stored details are the canonical text.
    const row = await db
      .selectFrom('audit_log')
      .select('details')
      .where('seq', '=', 8)
      .executeTakeFirstOrThrow();
    expect(row.details).toBe('{"n":6,"nested":{"a":null,"b":[1,"x"]}}');
  });

  it('refuses secrets, personal data and malformed entries, logging nothing', async () => {
    const { db } = current();
    const bad: AuditEntry[] = [
      { actor: 'system', action: 'card.pin-reset', details: { newPin: '1234' } },
      { actor: 'system', action: 'staff.create', details: { password: 'x' } },
      { actor: 'system', action: 'staff.login', details: { session_token: 'x' } },
      { actor: 'system', action: 'resident.read', details: { who: { name: '山田 太郎' } } },
      { actor: 'system', action: 'resident.read', details: { date_of_birth: '1980-01-01' } },
      { actor: 'system', action: 'resident.read', details: { list: [{ Address: 'x' }] } },
      { actor: 'Staff 1', action: 'resident.read' },
      { actor: 'system', action: 'read' },
      { actor: 'system', action: 'resident.read', municipalityCode: '13101' },
      { actor: 'system', action: 'resident.read', subject: 'a\nb' },
      { actor: 'system', action: 'resident.read', details: { big: 'x'.repeat(5000) } },
      { actor: 'system', action: 'resident.read', details: { when: new Date() } as never },
    ];
    for (const entry of bad) await expect(appendAudit(db, entry)).rejects.toThrow(AuditEntryError);
    expect((await auditHead(db)).seq).toBe(0);
  });

  it('commits and rolls back with the caller’s transaction', async () => {
    const { db } = current();
    await expect(
      db.transaction().execute(async (trx) => {
        await appendAudit(trx, { actor: 'system', action: 'audit.test', subject: 'rolled-back' });
        await appendAudit(trx, { actor: 'system', action: 'audit.test', subject: 'rolled-back' });
        throw new Error('the action failed');
      }),
    ).rejects.toThrow('the action failed');
    expect(await auditHead(db)).toEqual({ seq: 0, hash: GENESIS_HASH });
    expect(await db.selectFrom('audit_log').selectAll().execute()).toEqual([]);
    await db.transaction().execute(async (trx) => {
      await appendAudit(trx, { actor: 'system', action: 'audit.test', subject: 'kept' });
    });
    const entries = await tailAudit(db);
    expect(entries.map((e) => [e.seq, e.subject])).toEqual([[1, 'kept']]);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true, checked: 1 });
  });

  it('refuses UPDATE, DELETE and out-of-chain INSERT through ordinary SQL', async () => {
    const store = current();
    const { db } = store;
    await appendMany(db, 3);
    await expect(
      db.updateTable('audit_log').set({ actor: 'staff:9' }).where('seq', '=', 2).execute(),
    ).rejects.toThrow(/append-only/);
    await expect(db.deleteFrom('audit_log').where('seq', '=', 3).execute()).rejects.toThrow(/append-only/);
    if (store.backend === 'postgres')
      await expect(sql`truncate audit_log`.execute(db)).rejects.toThrow(/append-only/);
    const last = (await tailAudit(db, { limit: 1 }))[0]!;
    const forged = { ...last, seq: 5, prevHash: last.hash, hash: '' };
    forged.hash = entryHash(forged);
    const row = (r: typeof forged) => ({
      seq: r.seq,
      at: r.at,
      actor: r.actor,
      action: r.action,
      subject: r.subject,
      municipality_code: r.municipalityCode,
      details: canonicalJson(r.details),
      prev_hash: r.prevHash,
      hash: r.hash,
    });
    // seq 5 skips 4; seq 4 with a wrong prev_hash does not extend the head either
    await expect(db.insertInto('audit_log').values(row(forged)).execute()).rejects.toThrow(/extend the head/);
    const wrongLink = { ...forged, seq: 4, prevHash: GENESIS_HASH };
    await expect(db.insertInto('audit_log').values(row(wrongLink)).execute()).rejects.toThrow(
      /extend the head/,
    );
    // the head only moves forward one entry at a time, and cannot go away
    await expect(db.updateTable('audit_head').set({ seq: 1 }).execute()).rejects.toThrow(/forward/);
    await expect(db.updateTable('audit_head').set({ hash: GENESIS_HASH }).execute()).rejects.toThrow(
      /forward/,
    );
    await expect(db.deleteFrom('audit_head').execute()).rejects.toThrow(/cannot be deleted|append-only/);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true, checked: 3 });
  });

  it('finds an edited entry (trigger bypassed by the table owner)', async () => {
    const store = current();
    await appendMany(store.db, 8);
    await disableTriggers(store, 'audit_log_no_update');
    await store.db.updateTable('audit_log').set({ subject: 'resident:999' }).where('seq', '=', 5).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      checked: 4,
      firstBadSeq: 5,
      reason: 'hash-mismatch',
    });
    // A range before the edit still verifies; one that covers it does not.
    expect(await verifyAuditChain(store.db, { to: 4 })).toMatchObject({ ok: true, checked: 4 });
    expect(await verifyAuditChain(store.db, { from: 5 })).toMatchObject({ ok: false, firstBadSeq: 5 });
  });

  it('finds an edit whose hash was recomputed (the next link breaks), and a non-canonical details edit', async () => {
    const store = current();
    await appendMany(store.db, 6);
    await disableTriggers(store, 'audit_log_no_update');
    const e = (await tailAudit(store.db, { limit: 10 }))[2]!; // seq 3
    const edited = { ...e, actor: 'staff:42' };
    edited.hash = entryHash(edited);
    await store.db
      .updateTable('audit_log')
      .set({ actor: edited.actor, hash: edited.hash })
      .where('seq', '=', 3)
      .execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      firstBadSeq: 4,
      reason: 'broken-link',
    });
    await store.db.updateTable('audit_log').set({ details: '{ "n": 0 }' }).where('seq', '=', 1).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      firstBadSeq: 1,
      reason: 'malformed',
    });
  });

  it('finds a deleted entry (a gap), a deleted first entry and a truncated tail', async () => {
    const store = current();
    await appendMany(store.db, 6);
    await disableTriggers(store, 'audit_log_no_delete');
    await store.db.deleteFrom('audit_log').where('seq', '=', 6).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      checked: 5,
      firstBadSeq: 6,
      reason: 'truncated',
    });
    await store.db.deleteFrom('audit_log').where('seq', '=', 3).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      checked: 2,
      firstBadSeq: 3,
      reason: 'gap',
    });
    expect(await verifyAuditChain(store.db, { from: 4 })).toMatchObject({
      ok: false,
      firstBadSeq: 3,
      reason: 'gap',
    });
    await store.db.deleteFrom('audit_log').where('seq', '=', 1).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      checked: 0,
      firstBadSeq: 1,
      reason: 'gap',
    });
  });

  it('finds reordered entries (two entries swapped their seqs)', async () => {
    const store = current();
    await appendMany(store.db, 6);
    await disableTriggers(store, 'audit_log_no_update');
    await store.db.updateTable('audit_log').set({ seq: 100 }).where('seq', '=', 3).execute();
    await store.db.updateTable('audit_log').set({ seq: 3 }).where('seq', '=', 4).execute();
    await store.db.updateTable('audit_log').set({ seq: 4 }).where('seq', '=', 100).execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      firstBadSeq: 3,
      reason: 'broken-link',
    });
  });

  it('finds a tail added outside the chain, and a rewritten tail through an anchor', async () => {
    const store = current();
    await appendMany(store.db, 5);
    const anchor = await auditHead(store.db); // recorded elsewhere, e.g. printed by `jpki audit verify`
    await disableTriggers(store, 'audit_log_extend_chain', 'audit_log_advance_head');
    // Correctly hashed and linked, but the head was not advanced: added behind the chain's back.
    const last = (await tailAudit(store.db, { limit: 1 }))[0]!;
    const extra = { ...last, seq: 6, subject: 'resident:forged', prevHash: last.hash };
    extra.hash = entryHash(extra);
    await store.db
      .insertInto('audit_log')
      .values({
        seq: 6,
        at: extra.at,
        actor: extra.actor,
        action: extra.action,
        subject: extra.subject,
        municipality_code: extra.municipalityCode,
        details: canonicalJson(extra.details),
        prev_hash: extra.prevHash,
        hash: extra.hash,
      })
      .execute();
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      checked: 6,
      firstBadSeq: 6,
      reason: 'beyond-head',
    });

    // Rewriting entries 4 and 5 with valid hashes passes the chain check, but not the anchor.
    await disableTriggers(store, 'audit_log_no_update', 'audit_log_no_delete');
    await store.db.deleteFrom('audit_log').where('seq', '=', 6).execute();
    const rows = await tailAudit(store.db, { limit: 10 });
    let prev = rows[2]!.hash;
    for (const r of rows.slice(3)) {
      const forged = { ...r, actor: 'staff:77', prevHash: prev };
      forged.hash = entryHash(forged);
      await store.db
        .updateTable('audit_log')
        .set({ actor: forged.actor, prev_hash: forged.prevHash, hash: forged.hash })
        .where('seq', '=', r.seq)
        .execute();
      prev = forged.hash;
    }
    // The recorded head still says entry 5's original hash.
    expect(await verifyAuditChain(store.db)).toMatchObject({
      ok: false,
      firstBadSeq: 5,
      reason: 'head-mismatch',
    });
    expect(await verifyAuditChain(store.db, { to: 5, anchors: [anchor] })).toMatchObject({
      ok: false,
      firstBadSeq: 5,
      reason: 'anchor-mismatch',
    });
  });

  it('keeps one chain under 100 concurrent appends', async () => {
    const store = current();
    // On PostgreSQL from two store instances (two pools: as two processes would); SQLite serialises
    // a process's transactions on its one connection (two processes: see the test below).
    const other = store.backend === 'postgres' ? await openDatabase(store.options) : store;
    try {
      const appendFrom = (db: TestStore['db'], who: string) =>
        Array.from({ length: 50 }, (_, i) =>
          db.transaction().execute(async (trx) => {
            await sql`select 1`.execute(trx);
            return appendAudit(trx, { actor: `staff:${who}`, action: 'audit.test', subject: `n:${i}` });
          }),
        );
      const records = await Promise.all([...appendFrom(store.db, '1'), ...appendFrom(other.db, '2')]);
      expect(records.map((r) => r.seq).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      const seqs = (await store.db.selectFrom('audit_log').select('seq').orderBy('seq').execute()).map(
        (r) => r.seq,
      );
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, checked: 100, head: { seq: 100 } });
    } finally {
      if (other !== store) await other.close();
    }
  });

  it('keeps one chain when two processes append at once', async () => {
    const store = current();
    const worker = resolve(import.meta.dirname, 'append-worker.ts');
    const run = (who: string) =>
      new Promise<void>((done, fail) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', worker, JSON.stringify(store.options), who, '40'],
          {
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        let err = '';
        child.stderr.on('data', (b: Buffer) => {
          err += b.toString();
        });
        child.on('error', fail);
        child.on('close', (code) =>
          code === 0 ? done() : fail(new Error(`worker ${who} exited ${code}: ${err}`)),
        );
      });
    await Promise.all([run('1'), run('2')]);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, checked: 80, head: { seq: 80 } });
  });

  it('verifies a consistent snapshot while others append', async () => {
    const store = current();
    await appendMany(store.db, 20);
    const appending = (async () => {
      for (let i = 0; i < 20; i++) await appendAudit(store.db, { actor: 'system', action: 'audit.test' });
    })();
    const v = await verifyAuditChain(store.reader, { chunkSize: 2 });
    await appending;
    expect(v.ok).toBe(true);
    expect(v.checked).toBe(v.head.seq);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true, checked: 40 });
  });
});
