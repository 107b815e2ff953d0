// The agencies' side of the gateway: an agency authenticates with its API key, lists its parts of
// applications and acts on them (accept, ask for correction, reject, complete). Every query is
// scoped by the agency id of the key, so an agency never reads or changes another agency's part;
// a part of another agency answers exactly like a part that does not exist.
//
// API keys: `jpka_<key id>_<secret>`, the same scheme as the verifiers' keys (only SHA-256 of the
// secret is stored, compared in constant time; src/verifiers/credentials.ts).

import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { appendAudit } from '../audit/audit-log.ts';
import type { Authority } from '../authority/authority.ts';
import type { Database } from '../store/schema.ts';
import { secretMatches, sha256Hex } from '../verifiers/credentials.ts';
import { type Catalogue, defaultCatalogue } from './catalogue.ts';
import { ApplicationError, type PartStatus } from './gateway.ts';
import type { ApplicationTables } from './schema.ts';

const AGENCY_KEY = /^jpka_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export type PartAction = 'accept' | 'request-correction' | 'reject' | 'complete';
export const PART_ACTIONS: readonly PartAction[] = ['accept', 'request-correction', 'reject', 'complete'];

/** What each action leads to, and from which states it may be taken. */
const TRANSITIONS: Record<PartAction, { to: PartStatus; from: PartStatus[] }> = {
  accept: { to: 'accepted', from: ['received', 'correction-requested'] },
  'request-correction': { to: 'correction-requested', from: ['received', 'accepted'] },
  reject: { to: 'rejected', from: ['received', 'accepted', 'correction-requested'] },
  complete: { to: 'completed', from: ['accepted'] },
};

export interface AgencyPart {
  applicationId: string;
  partId: string;
  procedureId: string;
  status: PartStatus;
  fee: number;
  receivedAt: string;
  updatedAt: string;
  form: unknown;
  signer: { serial: string; subject: string };
}

type Db = Kysely<Database & ApplicationTables>;

export class AgencyDesk {
  readonly #db: Db;
  readonly catalogue: Catalogue;

  constructor(
    private readonly authority: Authority,
    opts: { catalogue?: Catalogue; now?: () => Date } = {},
  ) {
    this.#db = authority.store.db.withTables<ApplicationTables>();
    this.catalogue = opts.catalogue ?? defaultCatalogue();
    this.now = opts.now ?? (() => new Date());
  }
  private readonly now: () => Date;

  /** A new API key for an agency of the catalogue; the key is returned once and never stored. */
  async createApiKey(agencyId: string): Promise<{ keyId: string; apiKey: string }> {
    if (!this.catalogue.agencies.has(agencyId))
      throw new ApplicationError('not-found', `no agency ${agencyId} in the catalogue`);
    const keyId = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    await this.#db
      .insertInto('agency_api_keys')
      .values({
        key_id: keyId,
        agency_id: agencyId,
        secret_sha256: sha256Hex(secret),
        created_at: this.now().getTime(),
        revoked_at: null,
      })
      .execute();
    await appendAudit(this.authority.store.db, {
      actor: 'system',
      action: 'agency.key.create',
      subject: `agency:${agencyId}`,
      details: { keyId },
    });
    return { keyId, apiKey: `jpka_${keyId}_${secret}` };
  }

  /** The agency a presented key belongs to; undefined for anything else. */
  async authenticate(presented: string): Promise<string | undefined> {
    const m = AGENCY_KEY.exec(presented);
    if (!m) return undefined;
    const row = await this.#db
      .selectFrom('agency_api_keys')
      .select(['agency_id', 'secret_sha256', 'revoked_at'])
      .where('key_id', '=', m[1]!)
      .executeTakeFirst();
    if (!row || row.revoked_at !== null || !secretMatches(m[2]!, row.secret_sha256)) return undefined;
    return row.agency_id;
  }

  /** The agency's parts, most recently changed first (optionally one status, or changed after a time: polling). */
  async listParts(
    agencyId: string,
    opts: { status?: PartStatus; since?: Date; limit?: number } = {},
  ): Promise<AgencyPart[]> {
    let q = this.#db
      .selectFrom('application_parts as p')
      .innerJoin('applications as a', 'a.id', 'p.application_id')
      .select([
        'p.application_id',
        'p.part_id',
        'p.status',
        'p.fee',
        'p.updated_at',
        'a.procedure_id',
        'a.received_at',
        'a.form_json',
        'a.signer_serial',
        'a.signer_subject',
      ])
      .where('p.agency_id', '=', agencyId);
    if (opts.status) q = q.where('p.status', '=', opts.status);
    if (opts.since) q = q.where('p.updated_at', '>', opts.since.getTime());
    const rows = await q
      .orderBy('p.updated_at', 'desc')
      .orderBy('p.application_id')
      .limit(Math.min(opts.limit ?? 100, 1000))
      .execute();
    return rows.map((r) => ({
      applicationId: r.application_id,
      partId: r.part_id,
      procedureId: r.procedure_id,
      status: r.status as PartStatus,
      fee: Number(r.fee),
      receivedAt: new Date(Number(r.received_at)).toISOString(),
      updatedAt: new Date(Number(r.updated_at)).toISOString(),
      form: JSON.parse(r.form_json),
      signer: { serial: r.signer_serial, subject: r.signer_subject },
    }));
  }

  /**
   * Acts on one of the agency's parts. The status changes only from the state the action allows
   * (checked in the UPDATE itself, so two clerks acting at once cannot both win); the event and the
   * audit entry commit with it.
   */
  async act(
    agencyId: string,
    applicationId: string,
    partId: string,
    action: PartAction,
    note?: string,
  ): Promise<{ status: PartStatus }> {
    const t = TRANSITIONS[action];
    if (!t) throw new ApplicationError('bad-request', `unknown action ${action}`);
    if (note !== undefined && (typeof note !== 'string' || note.length > 2000))
      throw new ApplicationError('bad-request', 'the note must be text of at most 2000 characters');
    if ((action === 'request-correction' || action === 'reject') && !note?.trim())
      throw new ApplicationError('bad-request', `${action} needs a note for the resident`);
    const at = this.now().getTime();
    return this.authority.store.db.transaction().execute(async (trx) => {
      const db = trx.withTables<ApplicationTables>();
      const current = await db
        .selectFrom('application_parts')
        .select('status')
        .where('application_id', '=', applicationId)
        .where('part_id', '=', partId)
        .where('agency_id', '=', agencyId)
        .executeTakeFirst();
      if (!current) throw new ApplicationError('not-found', 'no such part for this agency');
      const updated = await db
        .updateTable('application_parts')
        .set({ status: t.to, updated_at: at })
        .where('application_id', '=', applicationId)
        .where('part_id', '=', partId)
        .where('agency_id', '=', agencyId)
        .where('status', 'in', t.from)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1)
        throw new ApplicationError(
          'invalid-transition',
          `a part that is ${current.status} cannot be: ${action}`,
        );
      await db
        .insertInto('application_part_events')
        .values({
          application_id: applicationId,
          part_id: partId,
          at,
          actor: `agency:${agencyId}`,
          action,
          status: t.to,
          note: note ?? null,
        })
        .execute();
      await appendAudit(trx, {
        actor: `agency:${agencyId}`,
        action: `application.part.${action}`,
        subject: `application:${applicationId}`,
        municipalityCode: this.catalogue.agencies.get(agencyId)?.municipalityCode ?? null,
        at,
        details: { part: partId, from: current.status, to: t.to },
      });
      return { status: t.to };
    });
  }

  /** Whether the agency has a part of the application (and so may read its case and evidence). */
  async hasPart(agencyId: string, applicationId: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('application_parts')
      .select('part_id')
      .where('application_id', '=', applicationId)
      .where('agency_id', '=', agencyId)
      .executeTakeFirst();
    return row !== undefined;
  }
}
