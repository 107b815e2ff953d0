// The submission gateway end to end on each store: a real authority issues residents' signature
// certificates from the register's facts, residents sign applications (CMS, and XML for e-Tax),
// the gateway checks, time stamps, stores and answers with a signed receipt. Refusals store
// nothing; replays give the same receipt; the evidence file passes `jpki verify` offline.

import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applicationContent } from '../../src/applications/document.ts';
import {
  ApplicationError,
  ApplicationGateway,
  MAX_SIGNED_DOCUMENT_BYTES,
  verifyReceipt,
} from '../../src/applications/gateway.ts';
import type { ApplicationTables } from '../../src/applications/schema.ts';
import { tailAudit } from '../../src/audit/audit-log.ts';
import type { Authority } from '../../src/authority/authority.ts';
import { encodePem } from '../../src/core/pem.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { jpki } from '../cli/jpki.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import { tempDir } from '../helpers/openssl.ts';
import { HANAKO, type Holder, holder, signApplication, TAX_FORM, VEHICLE_FORM } from './helpers.ts';

const tmp = tempDir('jpki-applications-');
afterAll(() => tmp.cleanup());

let seq = 0;
const key = () => `test-key-${Date.now()}-${++seq}`;

/** The ApplicationError a promise rejects with. */
async function refusal(p: Promise<unknown>): Promise<ApplicationError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApplicationError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe.each(testStores())('submission gateway (%s)', (backend) => {
  let ta: TestAuthority;
  let authority: Authority;
  let gateway: ApplicationGateway;
  let taro: Holder;
  let hanako: Holder;
  const count = async () =>
    Number(
      (
        await authority.store.db
          .withTables<ApplicationTables>()
          .selectFrom('applications')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    authority = ta.authority;
    gateway = new ApplicationGateway(authority);
    taro = await holder(authority, tmp.dir);
    hanako = await holder(authority, tmp.dir, HANAKO);
  });
  afterAll(async () => {
    await ta?.close();
  });

  it('files a vehicle one-stop application: three parts to three agencies, evidence and a signed receipt', async () => {
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', VEHICLE_FORM);
    const r = await gateway.submit({
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
      residentRef: taro.residentId,
    });
    expect(r.replayed).toBe(false);
    expect(r.receipt.parts.map((p) => p.agency)).toEqual(['mlit-kanto', 'pref-13-police', 'pref-13']);
    expect(r.receipt.fee).toBe(4300);
    expect(r.receipt.signer.name).toBe('山田\u3000太郎');
    // The receipt is signed by the authority's TSA; a changed receipt no longer verifies.
    const tsa = authority.certificate('tsa');
    const signedAt = verifyReceipt(r.receipt, r.receiptSignature, tsa);
    expect(Math.abs(signedAt!.getTime() - Date.parse(r.receipt.receivedAt))).toBeLessThan(5000);
    expect(verifyReceipt({ ...r.receipt, fee: 0 }, r.receiptSignature, tsa)).toBeUndefined();

    const c = (await gateway.getApplication(r.receipt.submissionId))!;
    expect(c.parts.map((p) => [p.id, p.agency, p.fee, p.status])).toEqual([
      ['inspection-registration', 'mlit-kanto', 2100, 'received'],
      ['parking-certificate', 'pref-13-police', 2200, 'received'],
      ['vehicle-taxes', 'pref-13', 0, 'received'],
    ]);
    expect(c.history).toHaveLength(3);
    expect(c.form).toEqual(VEHICLE_FORM);
    expect(c.report.indication).toBe('TOTAL_PASSED');
    expect(c.revocationEvidence.ocsp).toHaveLength(1);
    expect(c.revocationEvidence.crls[0]?.ca).toBe('root');
    // Stamped at receipt: the stored signature is CAdES-T.
    const evidence = (await gateway.evidence(c.id))!;
    expect(evidence.data.length).toBeGreaterThan(signed.length);
    const audit = await tailAudit(authority.store.db, { limit: 5 });
    expect(audit.some((e) => e.action === 'application.submit' && e.subject === `application:${c.id}`)).toBe(
      true,
    );
  });

  it('files an income-tax return signed as XML (e-Tax)', async () => {
    const signed = await signApplication(authority, taro, 'income-tax-return', TAX_FORM, 'xml');
    const r = await gateway.submit({
      procedureId: 'income-tax-return',
      form: TAX_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
    });
    const evidence = (await gateway.evidence(r.receipt.submissionId))!;
    expect(evidence.format).toBe('xml');
    expect(evidence.data.toString('utf8')).toContain('SignatureTimeStamp');
  });

  it('answers a replay with the same receipt, and a reused key with other content with a conflict', async () => {
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', VEHICLE_FORM);
    const idempotencyKey = key();
    const input = {
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey,
    };
    const first = await gateway.submit(input);
    const before = await count();
    const again = await gateway.submit(input);
    expect(again.replayed).toBe(true);
    expect(again.receipt).toEqual(first.receipt);
    expect(again.receiptSignature.equals(first.receiptSignature)).toBe(true);
    expect(await count()).toBe(before);

    const other = { ...VEHICLE_FORM, model: 'DBA-NZE161' };
    const e = await refusal(
      gateway.submit({
        ...input,
        form: other,
        signedDocument: await signApplication(authority, taro, 'vehicle-one-stop', other),
      }),
    );
    expect(e.code).toBe('idempotency-conflict');
    expect(await count()).toBe(before);
  });

  it('two submissions racing with one key make one case and one receipt', async () => {
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', VEHICLE_FORM);
    const input = {
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
    };
    const before = await count();
    const [a, b, c] = await Promise.all([
      gateway.submit(input),
      gateway.submit(input),
      gateway.submit(input),
    ]);
    expect(await count()).toBe(before + 1);
    expect(b.receipt).toEqual(a.receipt);
    expect(c.receipt).toEqual(a.receipt);
    expect([a, b, c].filter((r) => !r.replayed)).toHaveLength(1);
  });

  it('refuses tampered, unsigned, mismatched, wrong-person, authentication-signed and revoked applications, storing nothing', async () => {
    const before = await count();
    const base = { procedureId: 'vehicle-one-stop', form: VEHICLE_FORM };
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', VEHICLE_FORM);

    // Tampered: one bit of the signature value.
    const tampered = Buffer.from(signed);
    tampered[tampered.length - 10]! ^= 1;
    let e = await refusal(gateway.submit({ ...base, signedDocument: tampered, idempotencyKey: key() }));
    expect(e.code).toBe('refused');
    expect(e.details.report?.indication).toBe('TOTAL_FAILED');
    expect(e.details.summary?.ja).toMatch(/無効/);

    // Unsigned: the form itself.
    e = await refusal(
      gateway.submit({
        ...base,
        signedDocument: applicationContent('vehicle-one-stop', VEHICLE_FORM),
        idempotencyKey: key(),
      }),
    );
    expect(e.code).toBe('refused');
    expect(e.details.report?.subIndication).toBe('FORMAT_FAILURE');

    // Signed, but not what was submitted (a different price).
    e = await refusal(
      gateway.submit({
        ...base,
        form: { ...VEHICLE_FORM, acquisitionPrice: 1 },
        signedDocument: signed,
        idempotencyKey: key(),
      }),
    );
    expect(e.details.summary?.en).toMatch(/not the application/);

    // Signed for another procedure: the procedure id is part of what is signed.
    const forSocial = await signApplication(authority, taro, 'social-insurance', VEHICLE_FORM);
    e = await refusal(gateway.submit({ ...base, signedDocument: forSocial, idempotencyKey: key() }));
    expect(e.details.summary?.en).toMatch(/not the application/);

    // Wrong person: Hanako's certificate, Taro logged in.
    const byHanako = await signApplication(authority, hanako, 'vehicle-one-stop', VEHICLE_FORM);
    e = await refusal(
      gateway.submit({
        ...base,
        signedDocument: byHanako,
        idempotencyKey: key(),
        residentRef: taro.residentId,
      }),
    );
    expect(e.details.summary?.ja).toMatch(/基本4情報/);

    // An authentication certificate cannot sign an application.
    const authHolder = await holder(authority, tmp.dir, { ...HANAKO, name: '鈴木 一郎', sex: 'M' }, 'auth');
    const byAuth = await signApplication(authority, authHolder, 'vehicle-one-stop', VEHICLE_FORM);
    e = await refusal(gateway.submit({ ...base, signedDocument: byAuth, idempotencyKey: key() }));
    expect(e.code).toBe('refused');

    // The wrong signature format for the procedure (e-Tax takes XML).
    e = await refusal(
      gateway.submit({
        procedureId: 'income-tax-return',
        form: TAX_FORM,
        signedDocument: await signApplication(authority, taro, 'income-tax-return', TAX_FORM),
        idempotencyKey: key(),
      }),
    );
    expect(e.details.summary?.en).toMatch(/XML/);

    // Revoked between signing and submission.
    const revoked = await holder(authority, tmp.dir, { ...HANAKO, name: '高橋 次郎', sex: 'M' });
    const byRevoked = await signApplication(authority, revoked, 'vehicle-one-stop', VEHICLE_FORM);
    await authority.revoke(revoked.cert.serial, 'keyCompromise');
    e = await refusal(gateway.submit({ ...base, signedDocument: byRevoked, idempotencyKey: key() }));
    expect(e.details.report?.subIndication).toBe('REVOKED');
    expect(e.details.report?.revocation.some((x) => x.status === 'revoked')).toBe(true);

    expect(await count()).toBe(before);
  });

  it('refuses a form that fails its schema with per-field errors in Japanese and English', async () => {
    const form = { ...VEHICLE_FORM, acquisitionPrice: '245万円', acquisitionDate: '2026-02-30' } as Record<
      string,
      unknown
    >;
    delete form.parkingAddress;
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', form);
    const e = await refusal(
      gateway.submit({
        procedureId: 'vehicle-one-stop',
        form,
        signedDocument: signed,
        idempotencyKey: key(),
      }),
    );
    expect(e.code).toBe('invalid-form');
    const byField = Object.fromEntries(e.details.fieldErrors!.map((f) => [f.field, f.message]));
    expect(byField['/parkingAddress']).toEqual({
      ja: '保管場所の位置を入力してください。',
      en: 'Parking-space address is required.',
    });
    expect(byField['/acquisitionPrice']?.ja).toBe('取得価額（円）は整数で入力してください。');
    expect(byField['/acquisitionDate']?.en).toBe('Acquisition date must be a date (YYYY-MM-DD).');
  });

  it('refuses an oversized signed document and an unknown procedure', async () => {
    const big = Buffer.alloc(MAX_SIGNED_DOCUMENT_BYTES + 1, 0x30);
    let e = await refusal(
      gateway.submit({
        procedureId: 'vehicle-one-stop',
        form: VEHICLE_FORM,
        signedDocument: big,
        idempotencyKey: key(),
      }),
    );
    expect(e.code).toBe('too-large');
    e = await refusal(
      gateway.submit({
        procedureId: 'no-such',
        form: {},
        signedDocument: Buffer.from('x'),
        idempotencyKey: key(),
      }),
    );
    expect(e.code).toBe('unknown-procedure');
  });

  it('exports evidence that `jpki verify` accepts offline with the root and the CRLs', async () => {
    const signed = await signApplication(authority, taro, 'vehicle-one-stop', VEHICLE_FORM);
    const r = await gateway.submit({
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed,
      idempotencyKey: key(),
    });
    const evidence = (await gateway.evidence(r.receipt.submissionId))!;
    await authority.generateCrl('root');
    await authority.generateCrl('sign');
    const file = tmp.path(`${backend}-evidence.p7s`);
    writeFileSync(file, evidence.data);
    writeFileSync(tmp.path('root.pem'), encodePem('CERTIFICATE', authority.certificate('root')));
    writeFileSync(tmp.path(`${backend}-root.crl`), (await authority.currentCrl('root', 'full'))!.der);
    writeFileSync(tmp.path(`${backend}-sign.crl`), (await authority.currentCrl('sign', 'full'))!.der);
    const out = await jpki([
      'verify',
      '--in',
      file,
      '--trust',
      tmp.path('root.pem'),
      '--crl',
      tmp.path(`${backend}-root.crl`),
      '--crl',
      tmp.path(`${backend}-sign.crl`),
      '--json',
    ]);
    expect(out.status, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as { indication: string; format: string; timestampTime?: string };
    expect(report.indication).toBe('TOTAL_PASSED');
    expect(report.format).toBe('CAdES-T');
    expect(report.timestampTime).toBe(r.receipt.timestampTime);
  });

  it('a signature without its time stamp would not survive a later revocation; the evidence does', async () => {
    const who = await holder(authority, tmp.dir, { ...HANAKO, name: '田中 三郎', sex: 'M' });
    const signed = await signDocument({
      format: 'cms',
      signer: who.signer,
      certificate: who.cert.der,
      chain: [authority.certificate('sign')],
      content: applicationContent('vehicle-one-stop', VEHICLE_FORM),
    });
    const r = await gateway.submit({
      procedureId: 'vehicle-one-stop',
      form: VEHICLE_FORM,
      signedDocument: signed.output,
      idempotencyKey: key(),
    });
    await new Promise((res) => setTimeout(res, 1100)); // revocation strictly after the time stamp's second
    await authority.revoke(who.cert.serial, 'keyCompromise');
    await authority.generateCrl('root');
    await authority.generateCrl('sign');
    const evidence = (await gateway.evidence(r.receipt.submissionId))!;
    const write = (name: string, data: Buffer) => {
      writeFileSync(tmp.path(`${backend}-${name}`), data);
      return tmp.path(`${backend}-${name}`);
    };
    const crls = [
      '--crl',
      write('root2.crl', (await authority.currentCrl('root', 'full'))!.der),
      '--crl',
      write('sign2.crl', (await authority.currentCrl('sign', 'full'))!.der),
    ];
    const trust = [
      '--trust',
      write('root2.pem', Buffer.from(encodePem('CERTIFICATE', authority.certificate('root')))),
    ];
    const stamped = await jpki([
      'verify',
      '--in',
      write('ltv.p7s', evidence.data),
      ...trust,
      ...crls,
      '--json',
    ]);
    expect(stamped.status, stamped.stderr).toBe(0);
    expect(JSON.parse(stamped.stdout).longTermValidation?.reason).toBe('revoked-after-timestamp');
    const bare = await jpki([
      'verify',
      '--in',
      write('bare.p7s', signed.output),
      ...trust,
      ...crls,
      '--json',
    ]);
    expect(bare.status).not.toBe(0);
  });
});
