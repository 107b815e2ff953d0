// The applications API on each store: the catalogue, submission over HTTP (201, replay 200, 409,
// 413, 422 with per-field errors), and the agencies' side: each agency sees and acts on its own
// parts only, actions follow the allowed transitions with history, the evidence downloads.

import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { tempDir } from '../helpers/openssl.ts';
import { type Holder, holder, signApplication, VEHICLE_FORM } from './helpers.ts';

const tmp = tempDir('jpki-applications-http-');
afterAll(() => tmp.cleanup());

let seq = 0;
const key = () => `http-key-${Date.now()}-${++seq}`;

describe.each(testStores())('applications API (%s)', (backend) => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  let taro: Holder;
  const keys: Record<string, string> = {};

  const submit = (body: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/api/v1/applications', payload: body });
  const asAgency = (agency: string, method: 'GET' | 'POST', url: string, payload?: object) =>
    app.inject({ method, url, payload, headers: { authorization: `Bearer ${keys[agency]}` } });

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    app = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken });
    taro = await holder(ta.authority, tmp.dir);
    for (const agency of ['mlit-kanto', 'pref-13-police', 'pref-13', 'nta']) {
      const r = await app.inject({
        method: 'POST',
        url: `/api/v1/agencies/${agency}/keys`,
        headers: { authorization: `Bearer ${ta.operatorToken}` },
      });
      expect(r.statusCode, r.body).toBe(201);
      keys[agency] = r.json().apiKey;
    }
  });
  afterAll(async () => {
    await app?.close();
    await ta?.close();
  });

  it('lists the catalogue: national procedures and those a municipality’s residents can file', async () => {
    const r = await app.inject({ method: 'GET', url: '/api/v1/procedures?municipality=141003' });
    expect(r.statusCode).toBe(200);
    const ids = (r.json().procedures as { id: string }[]).map((p) => p.id);
    expect(ids).toContain('vehicle-one-stop');
    expect(ids).toContain('municipal-tax@muni-141003');
    expect(ids).toContain('prefectural-tax@pref-14');
    expect(ids).not.toContain('child-allowance@muni-131016');
    expect(ids).not.toContain('child-allowance@muni-141003'); // Yokohama does not offer it (data)
    const one = await app.inject({ method: 'GET', url: '/api/v1/procedures/vehicle-one-stop' });
    expect(one.json().form.required).toContain('vehicleIdentificationNumber');
    expect((await app.inject({ method: 'GET', url: '/api/v1/procedures/nope' })).statusCode).toBe(404);
  });

  it('submits, replays, refuses a reused key, a bad form and an oversized body', async () => {
    const signed = (await signApplication(ta.authority, taro, 'vehicle-one-stop', VEHICLE_FORM)).toString(
      'base64',
    );
    const body = {
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
    };
    const first = await submit(body);
    expect(first.statusCode, first.body).toBe(201);
    const again = await submit(body);
    expect(again.statusCode).toBe(200);
    expect(again.json().receipt).toEqual(first.json().receipt);
    expect(again.json().replayed).toBe(true);

    const conflict = await submit({ ...body, form: { ...VEHICLE_FORM, model: 'X' } });
    expect(conflict.statusCode).toBe(409);

    const bad = await submit({
      ...body,
      form: { ...VEHICLE_FORM, acquisitionDate: 'soon' },
      idempotencyKey: key(),
    });
    expect(bad.statusCode).toBe(422);
    expect(bad.json().fieldErrors).toEqual([
      {
        field: '/acquisitionDate',
        keyword: 'format',
        message: {
          ja: '取得日は YYYY-MM-DD 形式の日付で入力してください。',
          en: 'Acquisition date must be a date (YYYY-MM-DD).',
        },
      },
    ]);

    const tampered = Buffer.from(signed, 'base64');
    tampered[tampered.length - 10]! ^= 1;
    const refused = await submit({
      ...body,
      signedDocument: tampered.toString('base64'),
      idempotencyKey: key(),
    });
    expect(refused.statusCode).toBe(422);
    expect(refused.json().error).toBe('refused');
    expect(refused.json().report.indication).toBe('TOTAL_FAILED');
    expect(refused.json().summary.ja).toMatch(/署名は無効/);

    const huge = await submit({ ...body, signedDocument: 'A'.repeat(2_000_000), idempotencyKey: key() });
    expect(huge.statusCode).toBe(413);
  });

  it('routes the parts to their agencies; each agency sees and acts on its own part only, with history', async () => {
    const signed = (await signApplication(ta.authority, taro, 'vehicle-one-stop', VEHICLE_FORM)).toString(
      'base64',
    );
    const r = await submit({
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
    });
    const id = r.json().receipt.submissionId as string;

    const police = await asAgency('pref-13-police', 'GET', '/api/v1/agency/parts?status=received');
    expect(police.statusCode).toBe(200);
    const mine = (police.json().parts as { applicationId: string; partId: string }[]).filter(
      (p) => p.applicationId === id,
    );
    expect(mine.map((p) => p.partId)).toEqual(['parking-certificate']);

    // nta has no part of it: the case, the evidence and actions all answer 404.
    expect((await asAgency('nta', 'GET', `/api/v1/agency/applications/${id}`)).statusCode).toBe(404);
    expect((await asAgency('nta', 'GET', `/api/v1/agency/applications/${id}/evidence`)).statusCode).toBe(404);
    const ntaParts = (await asAgency('nta', 'GET', '/api/v1/agency/parts')).json().parts as {
      applicationId: string;
    }[];
    expect(ntaParts.some((p) => p.applicationId === id)).toBe(false);
    // The police cannot act on the transport bureau's part.
    const foreign = await asAgency(
      'pref-13-police',
      'POST',
      `/api/v1/agency/applications/${id}/parts/inspection-registration/actions`,
      { action: 'accept' },
    );
    expect(foreign.statusCode).toBe(404);

    // The police's view of the case has only its own part.
    const view = await asAgency('pref-13-police', 'GET', `/api/v1/agency/applications/${id}`);
    expect(view.json().parts.map((p: { agency: string }) => p.agency)).toEqual(['pref-13-police']);

    const act = (agency: string, part: string, action: string, note?: string) =>
      asAgency(agency, 'POST', `/api/v1/agency/applications/${id}/parts/${part}/actions`, { action, note });
    expect((await act('pref-13-police', 'parking-certificate', 'complete')).statusCode).toBe(409); // not accepted yet
    expect((await act('pref-13-police', 'parking-certificate', 'reject')).statusCode).toBe(400); // needs a note
    expect(
      (
        await act('pref-13-police', 'parking-certificate', 'request-correction', '図面を添付してください')
      ).json(),
    ).toEqual({
      status: 'correction-requested',
    });
    expect((await act('pref-13-police', 'parking-certificate', 'accept')).json()).toEqual({
      status: 'accepted',
    });
    expect((await act('pref-13-police', 'parking-certificate', 'complete')).json()).toEqual({
      status: 'completed',
    });
    expect((await act('mlit-kanto', 'inspection-registration', 'accept')).json()).toEqual({
      status: 'accepted',
    });

    // The resident's case: every part's status and the history.
    const c = (await app.inject({ method: 'GET', url: `/api/v1/applications/${id}` })).json();
    expect(c.parts.map((p: { status: string }) => p.status)).toEqual(['accepted', 'completed', 'received']);
    expect(
      c.history
        .filter((h: { partId: string }) => h.partId === 'parking-certificate')
        .map((h: { action: string; note: string | null }) => [h.action, h.note]),
    ).toEqual([
      ['receive', null],
      ['request-correction', '図面を添付してください'],
      ['accept', null],
      ['complete', null],
    ]);

    const evidence = await asAgency('pref-13', 'GET', `/api/v1/agency/applications/${id}/evidence`);
    expect(evidence.statusCode).toBe(200);
    expect(evidence.headers['content-type']).toBe('application/pkcs7-signature');
    expect(evidence.rawPayload.length).toBeGreaterThan(Buffer.from(signed, 'base64').length);
  });

  it('refuses agency calls without a valid key', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/agency/parts' })).statusCode).toBe(401);
    const forged = `${keys['nta']!.slice(0, -4)}AAAA`;
    const r = await app.inject({
      method: 'GET',
      url: '/api/v1/agency/parts',
      headers: { authorization: `Bearer ${forged}` },
    });
    expect(r.statusCode).toBe(401);
    const noOperator = await app.inject({ method: 'POST', url: '/api/v1/agencies/nta/keys' });
    expect(noOperator.statusCode).toBe(401);
  });
});
