// The counter's HTTP API through buildServer (app.inject): staff sessions, the register feed, the full
// issuance workflow with a software card in DATA/cards, loss reports with OCSP, PIN resets, statistics,
// and the refusals (400/401/403/404/409). SQLite, and PostgreSQL when JPKI_TEST_POSTGRES_URL is set.

import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit, verifyAuditChain } from '../../src/audit/audit-log.ts';
import { PinIncorrectError } from '../../src/card/card.ts';
import { SoftwareCard } from '../../src/card/software-card.ts';
import { jstDay } from '../../src/counter/workflow.ts';
import { buildServer } from '../../src/http/server.ts';
import { StaffService } from '../../src/staff/service.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import {
  CHIYODA,
  newResidentId,
  newSourceId,
  ocspCertStatus,
  ocspRequest,
  SHINJUKU,
  TARO,
} from '../register/helpers.ts';

const PASSWORD = 'correct horse battery';

describe.each(testStores())('counter HTTP API (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  /** Headers of the Chiyoda clerk (filled in once logged in). */
  const clerk: Record<string, string> = {};

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    writeFileSync(join(ta.dir, 'counter.json'), JSON.stringify({ feeYen: 300, keyAlgorithm: 'ecdsa-p256' }));
    const staff = new StaffService(ta.authority.store.db, { scrypt: { ln: 10, r: 8, p: 1 } });
    for (const [username, role, municipalityCode] of [
      ['clerk.chiyoda', 'clerk', CHIYODA],
      ['clerk.shinjuku', 'clerk', SHINJUKU],
      ['super.chiyoda', 'supervisor', CHIYODA],
      ['ops', 'operator', undefined],
    ] as const)
      ids[username] = (
        await staff.createStaff({ username, password: PASSWORD, role, municipalityCode }, 'cli:test')
      ).id;
    app = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken });
    for (const username of Object.keys(ids)) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/v1/staff/login',
        payload: { username, password: PASSWORD },
      });
      expect(r.statusCode).toBe(200);
      expect(r.json().principal.username).toBe(username);
      tokens[username] = r.json().token;
    }
    clerk.authorization = `Bearer ${tokens['clerk.chiyoda']}`;
  });
  afterAll(async () => {
    await app?.close();
    await ta?.close();
  });

  const as = (username: string) => ({ authorization: `Bearer ${tokens[username]}` });
  const post = (url: string, headers: Record<string, string>, payload?: object) =>
    app.inject({ method: 'POST', url, headers, ...(payload ? { payload } : {}) });
  const get = (url: string, headers: Record<string, string>) => app.inject({ method: 'GET', url, headers });

  async function registerResident(facts = TARO, who = 'super.chiyoda') {
    const residentId = newResidentId();
    const r = await post('/api/v1/register/events', as(who), {
      sourceEventId: newSourceId(),
      residentId,
      type: 'registered',
      effectiveDate: '2020-01-01',
      facts,
    });
    expect(r.statusCode, r.body).toBe(200);
    return residentId;
  }

  async function issueAll(residentId: string, headers = clerk) {
    const open = await post('/api/v1/counter/cases', headers, { residentId });
    expect(open.statusCode, open.body).toBe(201);
    const id = open.json().id as string;
    const steps: [string, object | undefined][] = [
      ['identity', { documents: [{ type: 'passport', last4: '9876' }] }],
      ['fee', { method: 'cash' }],
      ['keys', { signPin: 'SIGN1234', authPin: '4321' }],
      ['issue', undefined],
      ['card', undefined],
    ];
    let last: ReturnType<typeof open.json> = open.json();
    for (const [step, body] of steps) {
      const r = await post(`/api/v1/counter/cases/${id}/${step}`, headers, body);
      expect(r.statusCode, `${step}: ${r.body}`).toBe(200);
      last = r.json();
    }
    return last as { id: string; state: string; cardId: string; signSerial: string; authSerial: string };
  }

  it('register feed → clerk → case → identity → fee → keys → issue → card: completed, verifiable, audited', async () => {
    const residentId = await registerResident();
    const read = await get(`/api/v1/residents/${residentId}`, clerk);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({
      resident: { residentId, municipalityCode: CHIYODA },
      certificates: [],
    });
    const search = await get(
      `/api/v1/residents?name=${encodeURIComponent('山田 太郎')}&birth=1980-04-01`,
      clerk,
    );
    expect(search.statusCode).toBe(200);
    expect(search.json().residents.map((r: { residentId: string }) => r.residentId)).toContain(residentId);

    const done = await issueAll(residentId);
    expect(done.state).toBe('completed');
    const c = (await get(`/api/v1/counter/cases/${done.id}`, clerk)).json();
    expect(c).toMatchObject({
      state: 'completed',
      fee: { amountYen: 300, method: 'cash' },
      identity: { verifiedBy: ids['clerk.chiyoda'] },
    });
    const receipt = await get(`/api/v1/counter/cases/${done.id}/receipt`, clerk);
    expect(receipt.json()).toMatchObject({ amountYen: 300, receiptNumber: c.fee.receiptNumber });
    const text = await app.inject({
      method: 'GET',
      url: `/api/v1/counter/cases/${done.id}/receipt`,
      headers: { ...clerk, accept: 'text/plain' },
    });
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    expect(text.body).toContain(c.fee.receiptNumber);
    expect(text.body).toContain('300円');

    // The card file the counter wrote holds both certificates, for its keys, from the issuing CAs.
    const card = await SoftwareCard.open(join(ta.dir, 'cards', `${done.cardId}.json`));
    const sign = new X509Certificate((await card.certificate('sign'))!);
    const auth = new X509Certificate((await card.certificate('auth'))!);
    expect(sign.verify(new X509Certificate(ta.certPem('sign')).publicKey)).toBe(true);
    expect(auth.verify(new X509Certificate(ta.certPem('auth')).publicKey)).toBe(true);
    expect(sign.subjectAltName ?? '').not.toBe('');
    await (await card.signer('sign', 'SIGN1234')).sign(Buffer.from('hello'));
    await card.close();
    const certs = (await get(`/api/v1/residents/${residentId}`, clerk)).json().certificates;
    expect(certs.map((x: { status: string }) => x.status)).toEqual(['valid', 'valid']);

    expect((await verifyAuditChain(ta.authority.store.db)).ok).toBe(true);
    const actions = (await tailAudit(ta.authority.store.db, { limit: 1000 }))
      .filter((e) => e.subject === `resident:${residentId}`)
      .map((e) => e.action);
    expect(actions).toEqual([
      'register.event',
      'resident.read',
      'counter.case-opened',
      'counter.identity',
      'counter.fee',
      'counter.keys',
      'counter.issued',
      'counter.card',
      'resident.read',
    ]);
  });

  it('401 without a session, 403 for another municipality or role (audited), 404 unknown, 400 garbage, 409 out of order', async () => {
    const residentId = await registerResident();
    expect((await get(`/api/v1/residents/${residentId}`, {})).statusCode).toBe(401);
    expect(
      (await get(`/api/v1/residents/${residentId}`, { authorization: 'Bearer nonsense' })).statusCode,
    ).toBe(401);
    expect(
      (await get(`/api/v1/residents/${residentId}`, { authorization: `Bearer ${'A'.repeat(43)}` }))
        .statusCode,
    ).toBe(401);
    const other = await get(`/api/v1/residents/${residentId}`, as('clerk.shinjuku'));
    expect(other.statusCode).toBe(403);
    expect(other.json().error).toBe('ForbiddenError');
    expect((await get(`/api/v1/residents/${residentId}`, as('ops'))).statusCode).toBe(403);
    expect((await post('/api/v1/counter/cases', as('clerk.shinjuku'), { residentId })).statusCode).toBe(403);
    const denied = (await tailAudit(ta.authority.store.db, { limit: 3 })).map((e) => [e.action, e.actor]);
    expect(denied).toEqual([
      ['access.denied', `staff:${ids['clerk.shinjuku']}`],
      ['access.denied', `staff:${ids.ops}`],
      ['access.denied', `staff:${ids['clerk.shinjuku']}`],
    ]);
    // A clerk may not feed the register (resident.write is a supervisor's).
    expect(
      (
        await post('/api/v1/register/events', clerk, {
          sourceEventId: newSourceId(),
          residentId: newResidentId(),
          type: 'registered',
          effectiveDate: '2020-01-01',
          facts: TARO,
        })
      ).statusCode,
    ).toBe(403);

    const unknown = await get(`/api/v1/residents/${newResidentId()}`, clerk);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toBe('UnknownResidentError');
    expect((await post('/api/v1/counter/cases', clerk, { residentId: newResidentId() })).statusCode).toBe(
      404,
    );
    expect((await get(`/api/v1/counter/cases/C${'0'.repeat(20)}`, clerk)).statusCode).toBe(404);

    for (const body of [{}, { residentId: 'abc' }, { residentId, extra: 1 }, { residentId, type: 'wedding' }])
      expect((await post('/api/v1/counter/cases', clerk, body)).statusCode).toBe(400);
    const garbage = await app.inject({
      method: 'POST',
      url: '/api/v1/counter/cases',
      headers: { ...clerk, 'content-type': 'application/json' },
      payload: '{not json',
    });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json()).toHaveProperty('error');
    expect((await post('/api/v1/staff/login', {}, { username: 'x' })).statusCode).toBe(400);
    expect(
      (await post('/api/v1/staff/login', {}, { username: 'clerk.chiyoda', password: 'wrong password!' }))
        .statusCode,
    ).toBe(401);

    const open = await post('/api/v1/counter/cases', clerk, { residentId });
    const id = open.json().id;
    const outOfOrder = await post(`/api/v1/counter/cases/${id}/fee`, clerk, { method: 'cash' });
    expect(outOfOrder.statusCode).toBe(409);
    expect(outOfOrder.json().error).toBe('CaseStateError');
    for (const body of [
      { documents: [] },
      { documents: [{ type: 'passport', last4: '123456789' }] },
      { documents: [{ type: 'library-card' }] },
      { documents: [{ type: 'passport', number: 'TK1234567' }] },
    ])
      expect((await post(`/api/v1/counter/cases/${id}/identity`, clerk, body)).statusCode).toBe(400);
    expect((await get(`/api/v1/counter/cases/${id}`, clerk)).json().state).toBe('opened');
    expect((await get(`/api/v1/counter/cases/${id}/receipt`, clerk)).statusCode).toBe(409);
  });

  it('a second issuance case for the same resident → 409 AlreadyIssuedError, nothing written', async () => {
    const residentId = await registerResident();
    await issueAll(residentId);
    const count = async () =>
      (
        await ta.authority.store.db
          .selectFrom('certificates')
          .select('serial')
          .where('resident_ref', '=', residentId)
          .execute()
      ).length;
    expect(await count()).toBe(2);
    const again = await post('/api/v1/counter/cases', clerk, { residentId });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toBe('AlreadyIssuedError');
    expect(await count()).toBe(2);
    // Renewal outside the window is refused too.
    const renewal = await post('/api/v1/counter/cases', clerk, { residentId, type: 'renewal' });
    expect(renewal.statusCode).toBe(409);
    expect(renewal.json().error).toBe('RenewalWindowError');
  });

  it('loss report by phone revokes both; OCSP answers revoked', async () => {
    const residentId = await registerResident();
    const done = await issueAll(residentId);
    const r = await post(`/api/v1/residents/${residentId}/loss-report`, clerk, { channel: 'phone' });
    expect(r.statusCode).toBe(200);
    expect(r.json().revoked.sort()).toEqual([done.signSerial, done.authSerial].sort());
    const card = await SoftwareCard.open(join(ta.dir, 'cards', `${done.cardId}.json`));
    const pem = new X509Certificate((await card.certificate('sign'))!).toString();
    await card.close();
    const req = ocspRequest(ta.dir, ta.certPath('sign'), pem, `http-loss-${residentId}`);
    const ocsp = await app.inject({
      method: 'POST',
      url: '/ocsp',
      headers: { 'content-type': 'application/ocsp-request' },
      payload: req,
    });
    expect(ocspCertStatus(ocsp.rawPayload)).toEqual({ status: 'revoked', reason: 1 });
    expect(
      (await post(`/api/v1/residents/${residentId}/loss-report`, clerk, { channel: 'fax' })).statusCode,
    ).toBe(400);
  });

  it("the page needs: the fee before it is paid, why a certificate was revoked, the resident's card", async () => {
    expect((await get('/api/v1/counter/config', {})).statusCode).toBe(401);
    const config = await get('/api/v1/counter/config', clerk);
    expect(config.statusCode).toBe(200);
    expect(config.json()).toEqual({
      feeYen: 300,
      renewalWindowDays: 90,
      capacity: 5_000_000,
      keyAlgorithm: 'ecdsa-p256',
    });
    const residentId = await registerResident();
    expect((await get(`/api/v1/residents/${residentId}`, clerk)).json().cardId).toBeNull();
    const done = await issueAll(residentId);
    await post(`/api/v1/residents/${residentId}/loss-report`, clerk, { channel: 'counter' });
    const record = (await get(`/api/v1/residents/${residentId}`, clerk)).json();
    expect(record.cardId).toBe(done.cardId);
    expect(record.certificates).toHaveLength(2);
    for (const c of record.certificates) {
      expect(c).toMatchObject({ status: 'revoked', reason: 'keyCompromise' });
      expect(c.message.ja).toContain('紛失・盗難の届出により');
      expect(c.message.en).toContain('You can get a new one');
    }
  });

  it('PIN reset at the counter after the signature PIN locked', async () => {
    const residentId = await registerResident();
    const done = await issueAll(residentId);
    const path = join(ta.dir, 'cards', `${done.cardId}.json`);
    const card = await SoftwareCard.open(path);
    for (let i = 0; i < 5; i++)
      await expect(card.signer('sign', 'WRONG99')).rejects.toBeInstanceOf(PinIncorrectError);
    expect((await card.pinStatus('sign')).locked).toBe(true);
    await card.close();
    const open = await post('/api/v1/counter/cases', clerk, { residentId, type: 'pin-reset' });
    expect(open.statusCode).toBe(201);
    const id = open.json().id;
    const early = await post(`/api/v1/counter/cases/${id}/pin-reset`, clerk, {
      cardId: done.cardId,
      slot: 'sign',
      newPin: 'RESET123',
    });
    expect(early.statusCode).toBe(409);
    await post(`/api/v1/counter/cases/${id}/identity`, clerk, { documents: [{ type: 'my-number-card' }] });
    const bad = await post(`/api/v1/counter/cases/${id}/pin-reset`, clerk, {
      cardId: done.cardId,
      slot: 'sign',
      newPin: 'x',
    });
    expect(bad.statusCode).toBe(400);
    const ok = await post(`/api/v1/counter/cases/${id}/pin-reset`, clerk, {
      cardId: done.cardId,
      slot: 'sign',
      newPin: 'RESET123',
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().state).toBe('completed');
    const reopened = await SoftwareCard.open(path);
    expect((await reopened.pinStatus('sign')).locked).toBe(false);
    await (await reopened.signer('sign', 'RESET123')).sign(Buffer.from('x'));
    await reopened.close();
  });

  it('statistics as JSON and CSV match the issuances; clerks may not read them', async () => {
    const shinjuku = await registerResident(
      { ...TARO, municipalityCode: SHINJUKU, address: '東京都新宿区西新宿2丁目8番1号' },
      'clerk.shinjuku',
    ).catch(() => undefined);
    expect(shinjuku).toBeUndefined(); // a clerk cannot register residents (the helper's expect throws)
    const today = jstDay(Date.now());
    const rows = await ta.authority.store.db.selectFrom('counter_issuances').selectAll().execute();
    const ops = await get(`/api/v1/stats/issuance?from=${today}&to=${today}`, as('ops'));
    expect(ops.statusCode).toBe(200);
    const s = ops.json();
    expect(s.total.total).toBe(rows.length);
    expect(s.capacity).toBe(5_000_000);
    expect(s.cumulative).toBe(rows.length);
    expect(s.daily.find((r: { municipalityCode: string }) => r.municipalityCode === CHIYODA).total).toBe(
      rows.length,
    );
    const csv = await get(`/api/v1/stats/issuance?from=${today}&to=${today}&format=csv`, as('ops'));
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.body.split('\r\n')).toContain(
      `day,${today},total,${rows.filter((r) => r.kind === 'sign').length},${rows.filter((r) => r.kind === 'auth').length},${rows.length},0`,
    );
    const sup = await get('/api/v1/stats/issuance', as('super.chiyoda'));
    expect(sup.statusCode).toBe(200);
    expect(sup.json().municipalityCode).toBe(CHIYODA);
    expect(
      (await get(`/api/v1/stats/issuance?municipality=${SHINJUKU}`, as('super.chiyoda'))).statusCode,
    ).toBe(403);
    expect((await get('/api/v1/stats/issuance', clerk)).statusCode).toBe(403);
    expect((await get('/api/v1/stats/issuance?from=2024-13-99', as('ops'))).statusCode).toBe(400);
    expect((await get('/api/v1/stats/issuance?format=xml', as('ops'))).statusCode).toBe(400);
  });

  it('logout ends the session', async () => {
    const login = await post('/api/v1/staff/login', {}, { username: 'ops', password: PASSWORD });
    const headers = { authorization: `Bearer ${login.json().token}` };
    expect((await get('/api/v1/stats/issuance', headers)).statusCode).toBe(200);
    expect((await post('/api/v1/staff/logout', headers)).json()).toEqual({ loggedOut: true });
    expect((await get('/api/v1/stats/issuance', headers)).statusCode).toBe(401);
  });
});
