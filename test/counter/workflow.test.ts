// The counter workflow as a service: real authority (SQLite, and PostgreSQL when JPKI_TEST_POSTGRES_URL is
// set), real software cards in a temporary directory, real staff accounts and the real audit log.

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit, verifyAuditChain } from '../../src/audit/audit-log.ts';
import type { Authority, IssueOptions, IssueRequest } from '../../src/authority/authority.ts';
import { PinIncorrectError, PinLockedError } from '../../src/card/card.ts';
import { SoftwareCard } from '../../src/card/software-card.ts';
import { decodeBasicFactsSan } from '../../src/core/basic-facts.ts';
import { OID } from '../../src/core/oids.ts';
import { issuanceStats, issuanceStatsCsv } from '../../src/counter/stats.ts';
import {
  AlreadyIssuedError,
  CardMismatchError,
  CaseStateError,
  CounterInputError,
  CounterWorkflow,
  jstDay,
  RenewalWindowError,
} from '../../src/counter/workflow.ts';
import { UnknownResidentError } from '../../src/register/errors.ts';
import { recordEvent } from '../../src/register/register.ts';
import { ForbiddenError, type Principal } from '../../src/staff/roles.ts';
import { StaffService } from '../../src/staff/service.ts';
import type { Store } from '../../src/store/db.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';
import {
  CHIYODA,
  newResidentId,
  ocspCertStatus,
  ocspRequest,
  registration,
  SHINJUKU,
  TARO,
} from '../register/helpers.ts';

/** The four basic facts in a certificate's subjectAltName, or null. */
function factsOf(der: Buffer) {
  const parsed = AsnConvert.parse(der, Certificate);
  const san = parsed.tbsCertificate.extensions?.find((e) => e.extnID === OID.subjectAltName);
  return san ? decodeBasicFactsSan(new Uint8Array(san.extnValue.buffer)) : null;
}

const SIGN_PIN = 'ABC123';
const AUTH_PIN = '1234';
const UNBLOCK = 'counter-unblock-secret-for-tests';
const KDF = { N: 1 << 12, r: 8, p: 1 };

describe.each(testStores())('counter workflow (%s)', (backend) => {
  let ta: TestAuthority;
  let authority: Authority;
  let store: Store;
  let wf: CounterWorkflow;
  let cardsDir: string;
  let clerk: Principal;
  let clerk2: Principal;
  let supervisor: Principal;
  let operator: Principal;
  let cardNo = 0;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    authority = ta.authority;
    store = authority.store;
    wf = new CounterWorkflow({
      authority,
      config: { keyAlgorithm: 'ecdsa-p256' },
      unblockSecret: () => UNBLOCK,
    });
    cardsDir = mkdtempSync(join(tmpdir(), 'jpki-counter-cards-'));
    const staff = new StaffService(store.db, { scrypt: { ln: 10, r: 8, p: 1 } });
    const add = async (
      username: string,
      role: 'clerk' | 'supervisor' | 'operator',
      municipalityCode?: string,
    ) => {
      const s = await staff.createStaff(
        { username, password: 'correct horse battery', role, municipalityCode },
        'cli:test',
      );
      return { staffId: s.id, username: s.username, role: s.role, municipalityCode: s.municipalityCode };
    };
    clerk = await add('clerk.chiyoda', 'clerk', CHIYODA);
    clerk2 = await add('clerk.shinjuku', 'clerk', SHINJUKU);
    supervisor = await add('super.chiyoda', 'supervisor', CHIYODA);
    operator = await add('ops', 'operator');
  });
  afterAll(async () => {
    await ta?.close();
    rmSync(cardsDir, { recursive: true, force: true });
  });

  async function newResident(facts = TARO) {
    const residentId = newResidentId();
    await recordEvent(store, registration(residentId, '2020-01-01', facts));
    return residentId;
  }

  function newCard() {
    const id = `T${backend}${++cardNo}`;
    return SoftwareCard.create(join(cardsDir, `${id}.json`), {
      id,
      signPin: SIGN_PIN,
      authPin: AUTH_PIN,
      unblock: UNBLOCK,
      kdf: KDF,
    });
  }

  async function certCount(residentId: string) {
    const rows = await store.db
      .selectFrom('certificates')
      .select('serial')
      .where('resident_ref', '=', residentId)
      .execute();
    return rows.length;
  }

  /** A full issuance; returns the case and the (open) card. */
  async function issueAll(
    residentId: string,
    who = clerk,
    card?: SoftwareCard,
    type: 'issuance' | 'renewal' = 'issuance',
  ) {
    const c = await wf.openCase(who, { residentId, type });
    await wf.verifyIdentity(who, c.id, { documents: [{ type: 'passport', last4: '1234' }] });
    await wf.payFee(who, c.id, { method: 'cash' });
    const theCard = card ?? (await newCard());
    await wf.generateKeys(who, c.id, theCard, { sign: SIGN_PIN, auth: AUTH_PIN });
    await wf.issue(who, c.id);
    const done = await wf.writeToCard(who, c.id, theCard);
    return { c: done, card: theCard };
  }

  it('issues both certificates through every step, writes them to the card, audits each step', async () => {
    const residentId = await newResident();
    const c = await wf.openCase(clerk, { residentId });
    expect(c).toMatchObject({
      state: 'opened',
      type: 'issuance',
      municipalityCode: CHIYODA,
      openedBy: clerk.staffId,
    });
    const v = await wf.verifyIdentity(clerk, c.id, {
      documents: [{ type: 'driving-licence', last4: '0042' }, { type: 'resident-card-photo' }],
    });
    expect(v.state).toBe('identity-verified');
    expect(v.identity).toMatchObject({
      verifiedBy: clerk.staffId,
      documents: [
        { type: 'driving-licence', last4: '0042' },
        { type: 'resident-card-photo', last4: null },
      ],
    });
    const f = await wf.payFee(clerk, c.id, { method: 'cash' });
    const year = jstDay(Date.now()).slice(0, 4);
    expect(f.fee?.amountYen).toBe(500);
    expect(f.fee?.receiptNumber).toMatch(new RegExp(`^${CHIYODA}-${year}-\\d{6}$`));
    const receipt = await wf.receipt(clerk, c.id);
    expect(receipt).toMatchObject({ amountYen: 500, receiptNumber: f.fee?.receiptNumber, residentId });

    const card = await newCard();
    const k = await wf.generateKeys(clerk, c.id, card, { sign: SIGN_PIN, auth: AUTH_PIN });
    expect(k).toMatchObject({ state: 'keys-generated', cardId: card.id });
    const i = await wf.issue(clerk, c.id);
    expect(i.state).toBe('issued');
    expect(i.signSerial).toBeTruthy();
    expect(i.authSerial).toBeTruthy();
    const done = await wf.writeToCard(clerk, c.id, card);
    expect(done.state).toBe('completed');
    expect(done.completedAt).toBeGreaterThan(0);

    // On the card, for the card's keys, signed by the issuing CAs, carrying the resident's facts.
    const signDer = await card.certificate('sign');
    const authDer = await card.certificate('auth');
    const sign = new X509Certificate(signDer!);
    const auth = new X509Certificate(authDer!);
    expect(sign.verify(new X509Certificate(ta.certPem('sign')).publicKey)).toBe(true);
    expect(auth.verify(new X509Certificate(ta.certPem('auth')).publicKey)).toBe(true);
    expect(sign.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(i.signSerial!.replace(/^0+/, ''));
    expect(factsOf(signDer!)).toMatchObject({
      name: '山田\u3000太郎',
      dateOfBirth: TARO.dateOfBirth,
      sex: 'male',
      address: TARO.address,
    });
    expect(factsOf(authDer!)).toBeNull();
    const signKey = await card.keyInfo('sign');
    expect(sign.publicKey.export({ type: 'spki', format: 'der' }).equals(signKey!.publicKeySpki)).toBe(true);
    // The card signs with the certified key.
    const signer = await card.signer('sign', SIGN_PIN);
    expect(await signer.sign(Buffer.from('x'))).toBeInstanceOf(Buffer);
    await card.close();

    const verification = await verifyAuditChain(store.db);
    expect(verification.ok).toBe(true);
    const steps = (await tailAudit(store.db, { limit: 1000 }))
      .filter((e) => e.details.case === c.id)
      .map((e) => e.action);
    expect(steps).toEqual([
      'counter.case-opened',
      'counter.identity',
      'counter.fee',
      'counter.keys',
      'counter.issued',
      'counter.card',
    ]);
    // No full document number, no PIN anywhere in the log.
    const text = JSON.stringify(await tailAudit(store.db, { limit: 1000 }));
    expect(text).not.toContain(SIGN_PIN);
    expect(text).not.toContain(TARO.name);
  });

  it('receipt numbers are sequential per municipality', async () => {
    const a = await wf.openCase(clerk, { residentId: await newResident() });
    const b = await wf.openCase(clerk, { residentId: await newResident() });
    for (const c of [a, b]) await wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'my-number-card' }] });
    const ra = (await wf.payFee(clerk, a.id, { method: 'cash' })).fee!.receiptNumber;
    const rb = (await wf.payFee(clerk, b.id, { method: 'exempt' })).fee!;
    expect(Number(rb.receiptNumber.slice(-6))).toBe(Number(ra.slice(-6)) + 1);
    expect(rb.amountYen).toBe(0);
  });

  it('refuses a clerk of another municipality and an operator, and audits the attempt', async () => {
    const residentId = await newResident();
    await expect(wf.openCase(clerk2, { residentId })).rejects.toBeInstanceOf(ForbiddenError);
    await expect(wf.readResident(clerk2, residentId)).rejects.toBeInstanceOf(ForbiddenError);
    await expect(wf.readResident(operator, residentId)).rejects.toBeInstanceOf(ForbiddenError);
    await expect(wf.reportLoss(clerk2, residentId, { channel: 'phone' })).rejects.toBeInstanceOf(
      ForbiddenError,
    );
    const c = await wf.openCase(clerk, { residentId });
    await expect(
      wf.verifyIdentity(clerk2, c.id, { documents: [{ type: 'passport' }] }),
    ).rejects.toBeInstanceOf(ForbiddenError);
    expect((await wf.getCase(clerk, c.id)).state).toBe('opened');
    const denied = (await tailAudit(store.db, { limit: 1000 })).filter(
      (e) => e.action === 'access.denied' && e.subject === `resident:${residentId}`,
    );
    expect(denied.map((e) => [e.actor, e.details.attempted])).toEqual([
      [`staff:${clerk2.staffId}`, 'certificate.issue'],
      [`staff:${clerk2.staffId}`, 'resident.read'],
      [`staff:${operator.staffId}`, 'resident.read'],
      [`staff:${clerk2.staffId}`, 'certificate.revoke'],
      [`staff:${clerk2.staffId}`, 'certificate.issue'],
    ]);
    // The clerk of the resident's municipality and its supervisor may read; the read is audited.
    expect((await wf.readResident(supervisor, residentId)).residentId).toBe(residentId);
    const reads = (await tailAudit(store.db, { limit: 5 })).filter((e) => e.action === 'resident.read');
    expect(reads.at(-1)).toMatchObject({
      actor: `staff:${supervisor.staffId}`,
      subject: `resident:${residentId}`,
    });
  });

  it('unknown residents, bad input and steps out of order are refused, with nothing written', async () => {
    await expect(wf.openCase(clerk, { residentId: newResidentId() })).rejects.toBeInstanceOf(
      UnknownResidentError,
    );
    await expect(wf.openCase(clerk, { residentId: 'x' })).rejects.toBeInstanceOf(CounterInputError);
    const residentId = await newResident();
    const c = await wf.openCase(clerk, { residentId });
    await expect(wf.payFee(clerk, c.id, { method: 'cash' })).rejects.toBeInstanceOf(CaseStateError);
    await expect(wf.issue(clerk, c.id)).rejects.toBeInstanceOf(CaseStateError);
    await expect(
      wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'passport', last4: 'AB123456' }] }),
    ).rejects.toBeInstanceOf(CounterInputError);
    await expect(
      wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'library-card' }] }),
    ).rejects.toBeInstanceOf(CounterInputError);
    await expect(wf.verifyIdentity(clerk, c.id, { documents: [] })).rejects.toBeInstanceOf(CounterInputError);
    const after = await wf.getCase(clerk, c.id);
    expect(after.state).toBe('opened');
    expect(after.identity).toBeNull();
    await wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'passport' }] });
    await expect(
      wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'passport' }] }),
    ).rejects.toBeInstanceOf(CaseStateError);
    await wf.payFee(clerk, c.id, { method: 'cash' });
    // A wrong PIN format on the card: the step fails, the case stays at fee-paid with the error recorded.
    const card = await newCard();
    await expect(wf.generateKeys(clerk, c.id, card, { sign: 'abc', auth: AUTH_PIN })).rejects.toThrow(
      /signature/,
    );
    const failed = await wf.getCase(clerk, c.id);
    expect(failed.state).toBe('fee-paid');
    expect(failed.lastError?.message).toMatch(/signature PIN/);
    const last = (await tailAudit(store.db, { limit: 1 }))[0]!;
    expect(last).toMatchObject({ action: 'counter.step-failed', details: { case: c.id, step: 'keys' } });
    await card.close();
    expect(await certCount(residentId)).toBe(0);
  });

  it('a second issuance for the same resident: refused at opening, and a racing case loses at issuance', async () => {
    const residentId = await newResident();
    // Two cases opened before either issued (two counters at once).
    const a = await wf.openCase(clerk, { residentId });
    const b = await wf.openCase(supervisor, { residentId });
    for (const [c, who] of [
      [a, clerk],
      [b, supervisor],
    ] as const) {
      await wf.verifyIdentity(who, c.id, { documents: [{ type: 'passport' }] });
      await wf.payFee(who, c.id, { method: 'cash' });
    }
    const cardA = await newCard();
    const cardB = await newCard();
    await wf.generateKeys(clerk, a.id, cardA, { sign: SIGN_PIN, auth: AUTH_PIN });
    await wf.generateKeys(supervisor, b.id, cardB, { sign: SIGN_PIN, auth: AUTH_PIN });
    const results = await Promise.allSettled([wf.issue(clerk, a.id), wf.issue(supervisor, b.id)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(AlreadyIssuedError);
    expect(await certCount(residentId)).toBe(2);
    const states = [(await wf.getCase(clerk, a.id)).state, (await wf.getCase(clerk, b.id)).state].sort();
    expect(states).toEqual(['issued', 'keys-generated']);
    await cardA.close();
    await cardB.close();
    // Now a third case is refused at once, before any fee.
    await expect(wf.openCase(clerk, { residentId })).rejects.toBeInstanceOf(AlreadyIssuedError);
    expect(await certCount(residentId)).toBe(2);
  });

  it('partial issuance: the signature certificate stays valid, a retry issues the missing one', async () => {
    const residentId = await newResident();
    const c = await wf.openCase(clerk, { residentId });
    await wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'passport' }] });
    await wf.payFee(clerk, c.id, { method: 'cashless' });
    const card = await newCard();
    await wf.generateKeys(clerk, c.id, card, { sign: SIGN_PIN, auth: AUTH_PIN });
    const original = authority.issue;
    authority.issue = async (req: IssueRequest, opts?: IssueOptions) => {
      if (req.kind === 'auth') throw new Error('the authentication CA is unavailable');
      return original.call(authority, req, opts);
    };
    try {
      await expect(wf.issue(clerk, c.id)).rejects.toThrow(/unavailable/);
    } finally {
      authority.issue = original;
    }
    const partial = await wf.getCase(clerk, c.id);
    expect(partial.state).toBe('partially-issued');
    expect(partial.signSerial).toBeTruthy();
    expect(partial.authSerial).toBeNull();
    expect(partial.lastError?.message).toMatch(/unavailable/);
    await expect(wf.writeToCard(clerk, c.id, card)).rejects.toBeInstanceOf(CaseStateError);
    const retried = await wf.issue(clerk, c.id);
    expect(retried.state).toBe('issued');
    expect(retried.signSerial).toBe(partial.signSerial);
    expect(await certCount(residentId)).toBe(2);
    expect((await wf.writeToCard(clerk, c.id, card)).state).toBe('completed');
    await card.close();
  });

  it('loss report revokes both certificates at once (OCSP: revoked, keyCompromise)', async () => {
    const residentId = await newResident();
    const { c, card } = await issueAll(residentId);
    await card.close();
    const r = await wf.reportLoss(clerk, residentId, { channel: 'phone' });
    expect(r.revoked.sort()).toEqual([c.signSerial, c.authSerial].sort());
    for (const [serial, ca] of [
      [c.signSerial!, 'sign'],
      [c.authSerial!, 'auth'],
    ] as const) {
      const pem = (await authority.findCertificate(serial))!;
      const der = Buffer.from(pem.der);
      const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
      const req = ocspRequest(ta.dir, ta.certPath(ca), certPem, `loss-${serial}`);
      const answer = await authority.ocsp(req);
      expect(ocspCertStatus(answer.der)).toEqual({ status: 'revoked', reason: 1 });
    }
    expect(await wf.reportLoss(clerk, residentId, { channel: 'counter' })).toEqual({ revoked: [] });
    const audit = (await tailAudit(store.db, { limit: 2 })).map((e) => [e.action, e.details.channel]);
    expect(audit).toEqual([
      ['certificate.loss-report', 'phone'],
      ['certificate.loss-report', 'counter'],
    ]);
    // A new issuance is possible at once (the slots were freed).
    const again = await issueAll(residentId);
    expect(again.c.state).toBe('completed');
    await again.card.close();
  });

  it('PIN reset after 5 wrong signature PINs unlocks the card with a new PIN', async () => {
    const residentId = await newResident();
    const { card } = await issueAll(residentId);
    for (let i = 0; i < 5; i++)
      await expect(card.signer('sign', 'WRONG1')).rejects.toBeInstanceOf(PinIncorrectError);
    await expect(card.signer('sign', SIGN_PIN)).rejects.toBeInstanceOf(PinLockedError);
    const c = await wf.openCase(clerk, { residentId, type: 'pin-reset' });
    await expect(wf.resetPin(clerk, c.id, card, { slot: 'sign', newPin: 'NEWPIN9' })).rejects.toBeInstanceOf(
      CaseStateError,
    );
    await wf.verifyIdentity(clerk, c.id, { documents: [{ type: 'my-number-card' }] });
    // Someone else's card is refused.
    const other = await issueAll(await newResident());
    await expect(
      wf.resetPin(clerk, c.id, other.card, { slot: 'sign', newPin: 'NEWPIN9' }),
    ).rejects.toBeInstanceOf(CardMismatchError);
    await other.card.close();
    const done = await wf.resetPin(clerk, c.id, card, { slot: 'sign', newPin: 'NEWPIN9' });
    expect(done.state).toBe('completed');
    expect((await card.pinStatus('sign')).locked).toBe(false);
    const signer = await card.signer('sign', 'NEWPIN9');
    expect((await signer.sign(Buffer.from('after reset'))).length).toBeGreaterThan(0);
    await card.close();
    expect((await tailAudit(store.db, { limit: 1 }))[0]).toMatchObject({
      action: 'counter.pin-reset',
      details: { case: c.id, slot: 'sign' },
    });
  });

  it('renewal only inside the window before expiry; the old certificates are superseded', async () => {
    const residentId = await newResident();
    const first = await issueAll(residentId);
    await expect(wf.openCase(clerk, { residentId, type: 'renewal' })).rejects.toBeInstanceOf(
      RenewalWindowError,
    );
    // 30 days before expiry: inside the 90-day window.
    await store.db
      .updateTable('certificates')
      .set({ not_after: Date.now() + 30 * 86_400_000 })
      .where('resident_ref', '=', residentId)
      .execute();
    const renewed = await issueAll(residentId, clerk, first.card, 'renewal');
    expect(renewed.c.state).toBe('completed');
    expect(renewed.c.signSerial).not.toBe(first.c.signSerial);
    for (const serial of [first.c.signSerial!, first.c.authSerial!])
      expect((await authority.findRevocation(serial))?.reason).toBe(4); // superseded
    expect(await certCount(residentId)).toBe(4);
    await first.card.close();
    // A resident with nothing to renew.
    await expect(
      wf.openCase(clerk, { residentId: await newResident(), type: 'renewal' }),
    ).rejects.toBeInstanceOf(RenewalWindowError);
  });

  it('statistics count the counter issuances per day, month and municipality (JSON and CSV)', async () => {
    const shinjukuFacts = { ...TARO, municipalityCode: SHINJUKU, address: '東京都新宿区西新宿2丁目8番1号' };
    const s = await issueAll(await newResident(shinjukuFacts), clerk2);
    await s.card.close();
    const today = jstDay(Date.now());
    const rows = await store.db.selectFrom('counter_issuances').selectAll().execute();
    const count = (code?: string, kind?: string) =>
      rows.filter((r) => (!code || r.municipality_code === code) && (!kind || r.kind === kind)).length;
    const all = await issuanceStats(store, { from: today, to: today, capacity: 5_000_000 });
    expect(all.total.total).toBe(rows.length);
    expect(all.total.sign).toBe(count(undefined, 'sign'));
    expect(all.total.renewals).toBe(rows.filter((r) => r.renewal === 1).length);
    expect(all.daily.find((r) => r.municipalityCode === SHINJUKU)).toMatchObject({
      period: today,
      sign: 1,
      auth: 1,
      total: 2,
    });
    expect(all.daily.find((r) => r.municipalityCode === CHIYODA)?.total).toBe(count(CHIYODA));
    expect(all.monthly.find((r) => r.municipalityCode === 'total')?.total).toBe(rows.length);
    expect(all.cumulative).toBe(rows.length);
    expect(all.utilisation).toBeCloseTo(rows.length / 5_000_000, 6);
    const one = await issuanceStats(store, {
      from: today,
      to: today,
      municipalityCode: SHINJUKU,
      capacity: 100,
    });
    expect(one.total.total).toBe(2);
    expect(one.utilisation).toBe(0.02);
    const csv = issuanceStatsCsv(all).split('\r\n');
    expect(csv[0]).toBe('granularity,period,municipality_code,sign,auth,total,renewals');
    expect(csv).toContain(`day,${today},${SHINJUKU},1,1,2,0`);
    expect(csv).toContain(
      `day,${today},total,${count(undefined, 'sign')},${count(undefined, 'auth')},${rows.length},${all.total.renewals}`,
    );
  });
});
