// Migration 0003: staff accounts and sessions (src/staff/) and the hash-chained audit log (src/audit/).
//
// The audit log is append-only at the database level, not only in the code:
//   - UPDATE and DELETE on audit_log raise (and TRUNCATE on PostgreSQL, which skips row triggers);
//   - an INSERT must extend the chain: its seq is the head's seq + 1 and its prev_hash the head's hash,
//     and the insert advances audit_head (one row) in the same statement;
//   - audit_head cannot be deleted and only moves forward one entry at a time.
// Whoever can disable triggers (the table owner, a superuser) can still rewrite history; that is what
// the hash chain and external anchors of the head hash are for (see verifyAuditChain). In production run
// the service as a role that does not own these tables.

import { type Migration, sql } from 'kysely';
import { type AnyDb, columnTypes, type Dialect } from '../migrations.ts';

const ZERO_HASH = '0'.repeat(64);

export function migration0003(dialect: Dialect): Migration {
  const t = columnTypes(dialect);
  const pg = dialect === 'postgres';
  const sixDigits = (column: string) =>
    pg
      ? sql`${sql.ref(column)} ~ '^[0-9]{6}$'`
      : sql`${sql.ref(column)} glob '[0-9][0-9][0-9][0-9][0-9][0-9]'`;
  const hex64 = (column: string) =>
    pg
      ? sql`${sql.ref(column)} ~ '^[0-9a-f]{64}$'`
      : sql`length(${sql.ref(column)}) = 64 and ${sql.ref(column)} not glob '*[^0-9a-f]*'`;

  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('staff')
        .addColumn('id', t.int64, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('username', 'text', (c) => c.notNull().check(sql`username = lower(username)`))
        .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('clerk', 'supervisor', 'operator')`))
        .addColumn('municipality_code', 'text', (c) => c.check(sixDigits('municipality_code')))
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('failed_logins', t.int32, (c) => c.notNull().defaultTo(0).check(sql`failed_logins >= 0`))
        .addColumn('locked_until', t.int64)
        .addColumn('disabled_at', t.int64)
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('updated_at', t.int64, (c) => c.notNull())
        .addUniqueConstraint('staff_username_key', ['username'])
        // Municipal staff belong to exactly one municipality; operators to none.
        .addCheckConstraint(
          'staff_scope_check',
          sql`(role = 'operator' and municipality_code is null) or (role <> 'operator' and municipality_code is not null)`,
        )
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('staff_municipality_code_idx')
        .on('staff')
        .column('municipality_code')
        .execute();

      await db.schema
        .createTable('staff_sessions')
        .addColumn('token_hash', 'text', (c) => c.primaryKey().check(hex64('token_hash')))
        .addColumn('staff_id', t.int64, (c) => c.notNull().references('staff.id'))
        .addColumn('created_at', t.int64, (c) => c.notNull())
        .addColumn('last_seen_at', t.int64, (c) => c.notNull())
        .addColumn('expires_at', t.int64, (c) => c.notNull())
        .addColumn('revoked_at', t.int64)
        .modifyEnd(t.tableEnd)
        .execute();
      await db.schema
        .createIndex('staff_sessions_staff_id_idx')
        .on('staff_sessions')
        .column('staff_id')
        .execute();
      await db.schema
        .createIndex('staff_sessions_expires_at_idx')
        .on('staff_sessions')
        .column('expires_at')
        .execute();

      await db.schema
        .createTable('audit_log')
        // SQLite: INTEGER PRIMARY KEY is the rowid; the value always comes from audit_head, never generated.
        .addColumn('seq', t.int64, (c) => c.primaryKey().check(sql`seq >= 1`))
        .addColumn('at', t.int64, (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('municipality_code', 'text', (c) => c.check(sixDigits('municipality_code')))
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull().check(hex64('prev_hash')))
        .addColumn('hash', 'text', (c) => c.notNull().check(hex64('hash')))
        .modifyEnd(t.tableEnd)
        .execute();
      // Supervisors read their municipality's entries, newest first.
      await db.schema
        .createIndex('audit_log_municipality_seq_idx')
        .on('audit_log')
        .columns(['municipality_code', 'seq'])
        .where(sql.ref('municipality_code'), 'is not', null)
        .execute();

      await db.schema
        .createTable('audit_head')
        .addColumn('id', t.int32, (c) => c.primaryKey().check(sql`id = 1`))
        .addColumn('seq', t.int64, (c) => c.notNull().check(sql`seq >= 0`))
        .addColumn('hash', 'text', (c) => c.notNull().check(hex64('hash')))
        .modifyEnd(t.tableEnd)
        .execute();
      await db.insertInto('audit_head').values({ id: 1, seq: 0, hash: ZERO_HASH }).execute();

      for (const statement of pg ? postgresTriggers() : sqliteTriggers()) await statement.execute(db);
    },

    async down(db: AnyDb) {
      if (pg) {
        await sql`drop table audit_log`.execute(db);
        await sql`drop table audit_head`.execute(db);
        await sql`drop function audit_log_append_only()`.execute(db);
        await sql`drop function audit_log_extend_chain()`.execute(db);
        await sql`drop function audit_head_forward_only()`.execute(db);
      } else {
        await db.schema.dropTable('audit_log').execute();
        await db.schema.dropTable('audit_head').execute();
      }
      await db.schema.dropTable('staff_sessions').execute();
      await db.schema.dropTable('staff').execute();
    },
  };
}

function sqliteTriggers() {
  return [
    sql`create trigger audit_log_no_update before update on audit_log
        begin select raise(abort, 'audit log is append-only'); end`,
    sql`create trigger audit_log_no_delete before delete on audit_log
        begin select raise(abort, 'audit log is append-only'); end`,
    sql`create trigger audit_log_extend_chain before insert on audit_log
        when new.seq is not (select seq + 1 from audit_head where id = 1)
          or new.prev_hash is not (select hash from audit_head where id = 1)
        begin select raise(abort, 'audit log: the entry does not extend the head of the chain'); end`,
    sql`create trigger audit_log_advance_head after insert on audit_log
        begin update audit_head set seq = new.seq, hash = new.hash where id = 1; end`,
    sql`create trigger audit_head_no_delete before delete on audit_head
        begin select raise(abort, 'audit head cannot be deleted'); end`,
    sql`create trigger audit_head_forward_only before update on audit_head
        when new.id is not old.id
          or not (new.seq = old.seq + 1 or (new.seq = old.seq and new.hash = old.hash))
        begin select raise(abort, 'audit head only moves forward, one entry at a time'); end`,
  ];
}

function postgresTriggers() {
  return [
    sql`create function audit_log_append_only() returns trigger language plpgsql as $$
        begin
          raise exception 'audit log is append-only' using errcode = 'insufficient_privilege';
        end $$`,
    sql`create trigger audit_log_no_update_delete before update or delete on audit_log
        for each row execute function audit_log_append_only()`,
    sql`create trigger audit_log_no_truncate before truncate on audit_log
        for each statement execute function audit_log_append_only()`,
    sql`create trigger audit_head_no_delete before delete on audit_head
        for each row execute function audit_log_append_only()`,
    sql`create trigger audit_head_no_truncate before truncate on audit_head
        for each statement execute function audit_log_append_only()`,
    sql`create function audit_log_extend_chain() returns trigger language plpgsql as $$
        declare
          head_seq bigint;
          head_hash text;
        begin
          select seq, hash into head_seq, head_hash from audit_head where id = 1 for update;
          if new.seq is distinct from head_seq + 1 or new.prev_hash is distinct from head_hash then
            raise exception 'audit log: the entry does not extend the head of the chain'
              using errcode = 'integrity_constraint_violation';
          end if;
          update audit_head set seq = new.seq, hash = new.hash where id = 1;
          return new;
        end $$`,
    sql`create trigger audit_log_extend_chain before insert on audit_log
        for each row execute function audit_log_extend_chain()`,
    sql`create function audit_head_forward_only() returns trigger language plpgsql as $$
        begin
          if new.id is distinct from old.id
             or not (new.seq = old.seq + 1 or (new.seq = old.seq and new.hash = old.hash)) then
            raise exception 'audit head only moves forward, one entry at a time'
              using errcode = 'integrity_constraint_violation';
          end if;
          return new;
        end $$`,
    sql`create trigger audit_head_forward_only before update on audit_head
        for each row execute function audit_head_forward_only()`,
  ];
}
