// The clerks' page (web/, served at /counter/) in Debian's chromium against a real server: a real
// authority, SQLite store, staff accounts and residents. A clerk issues both certificates to a resident,
// is refused a second issuance, takes a loss report (OCSP then answers revoked); a supervisor reads the
// statistics; the page switches to English; every view passes the accessibility checks of browser.ts.
// Screenshots go to test-results/screenshots/ (git-ignored).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PinIncorrectError } from '../../src/card/card.ts';
import { SoftwareCard } from '../../src/card/software-card.ts';
import { jstDay } from '../../src/counter/workflow.ts';
import { buildServer } from '../../src/http/server.ts';
import { recordEvent } from '../../src/register/register.ts';
import { StaffService } from '../../src/staff/service.ts';
import { buildCounterPage } from '../../web/build.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import {
  CHIYODA,
  newResidentId,
  ocspCertStatus,
  ocspRequest,
  registration,
  TARO,
} from '../register/helpers.ts';
import {
  browserAvailable,
  browserRequired,
  expectAccessible,
  japaneseOutsideData,
  launchBrowser,
  screenshot,
  type TestBrowser,
} from './browser.ts';

const PASSWORD = 'correct horse battery';
const ICHIRO = { ...TARO, name: '鈴木 一郎', nameKana: 'スズキ イチロウ', dateOfBirth: '1975-07-15' };
const HANAKO = { ...TARO, name: '佐藤 花子', nameKana: 'サトウ ハナコ', dateOfBirth: '1992-11-03', sex: 'F' };

describe.skipIf(!browserRequired && !browserAvailable)('counter page in chromium', () => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  let browser: TestBrowser;
  let base: string;
  let webRoot: string;
  const staffIds: Record<string, number> = {};
  const taro = newResidentId();
  const hanako = newResidentId();
  const ichiro = newResidentId();
  /** Serials the page showed at the end of Taro's issuance. */
  const issued: { sign?: string; auth?: string } = {};

  beforeAll(async () => {
    // The browser first: without it (and JPKI_TEST_BROWSER=1) every test fails here.
    browser = await launchBrowser();
    webRoot = mkdtempSync(join(tmpdir(), 'jpki-web-'));
    await buildCounterPage(webRoot);
    ta = await createTestAuthority({ backend: 'sqlite' });
    const staff = new StaffService(ta.authority.store.db, { scrypt: { ln: 10, r: 8, p: 1 } });
    for (const [username, role] of [
      ['clerk.chiyoda', 'clerk'],
      ['super.chiyoda', 'supervisor'],
    ] as const)
      staffIds[username] = (
        await staff.createStaff({ username, password: PASSWORD, role, municipalityCode: CHIYODA }, 'cli:test')
      ).id;
    await recordEvent(ta.authority.store, registration(taro));
    await recordEvent(ta.authority.store, registration(hanako, '2020-01-01', HANAKO));
    await recordEvent(ta.authority.store, registration(ichiro, '2020-01-01', ICHIRO));
    app = await buildServer({ authority: ta.authority, operatorToken: ta.operatorToken, webRoot });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no port');
    base = `http://127.0.0.1:${addr.port}`;
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await ta?.close();
    if (webRoot) rmSync(webRoot, { recursive: true, force: true });
  });

  async function logIn(page: Page, username: string) {
    await page.goto(`${base}/counter/`);
    await page.getByLabel('ユーザー名').fill(username);
    await page.getByLabel('パスワード').fill(PASSWORD);
    await page.getByRole('button', { name: 'ログイン' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'ログアウト' }).count()).toBe(1);
  }

  async function findResident(page: Page, name: string, birth: string) {
    await page.getByLabel('氏名').fill(name);
    await page.getByLabel('生年月日').fill(birth);
    await page.getByRole('button', { name: '検索' }).click();
    await page.getByRole('button', { name: `${name} さんを選択` }).click();
    await page.getByRole('heading', { level: 1, name: `住民の記録: ${name}` }).waitFor();
  }

  /** The focused element's text (focus moves to each new step's heading). */
  const focused = (page: Page) => page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');

  const certificate = async (serial: string) => {
    const r = await fetch(`${base}/api/v1/certificates/${serial}`, {
      headers: { authorization: `Bearer ${ta.operatorToken}` },
    });
    expect(r.status).toBe(200);
    return (await r.json()) as { kind: string; status: string; pem: string };
  };
  const ocsp = async (kind: 'sign' | 'auth', pem: string, name: string) => {
    const req = ocspRequest(ta.dir, ta.certPath(kind), pem, name);
    const r = await fetch(`${base}/ocsp`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request' },
      body: new Uint8Array(req),
    });
    return ocspCertStatus(Buffer.from(await r.arrayBuffer()));
  };

  it('/counter is served with a strict content security policy', async () => {
    const r = await fetch(`${base}/counter/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(r.headers.get('cache-control')).toBe('no-cache');
    const html = await r.text();
    expect(html).toContain('<html lang="ja">');
    const asset = /src="(\/counter\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${base}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${base}/counter`, { redirect: 'manual' })).headers.get('location')).toBe(
      '/counter/',
    );
  });

  it('a clerk issues both certificates: identity, fee and receipt, keys with the PINs, issue, card', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });

    await page.goto(`${base}/counter/`);
    await expectAccessible(page, 'ja');
    await screenshot(page, '01-login');
    // A wrong password is announced and the form stays.
    await page.getByLabel('ユーザー名').fill('clerk.chiyoda');
    await page.getByLabel('パスワード').fill('not the password');
    await page.getByRole('button', { name: 'ログイン' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('ユーザー名またはパスワードが違います');
    await logIn(page, 'clerk.chiyoda');
    errors.length = 0; // the refused log-in above was a 401 on purpose
    await expect.poll(() => focused(page)).toBe('住民の検索');
    await expectAccessible(page, 'ja');

    await page.getByLabel('氏名').fill('山田 太郎');
    await page.getByRole('button', { name: '検索' }).click();
    await page.getByRole('status').filter({ hasText: '1 件見つかりました' }).waitFor();
    await screenshot(page, '02-search');
    await page.getByRole('button', { name: '山田 太郎 さんを選択' }).click();
    await page.getByText('電子証明書はまだ発行されていません').waitFor();
    await expectAccessible(page, 'ja');
    await screenshot(page, '03-resident');

    await page.getByRole('button', { name: '新規発行' }).click();
    await page.getByRole('heading', { level: 2, name: '本人確認' }).waitFor();
    expect(await focused(page)).toBe('本人確認');
    // Nothing selected: refused in the page, announced.
    await page.getByRole('button', { name: '本人確認を記録' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('本人確認書類を1つ以上選んでください');
    await page.getByRole('checkbox', { name: '旅券（パスポート）' }).check();
    await page.getByLabel('旅券（パスポート） の番号の下4桁').fill('tk98');
    await page.getByText('確認者: clerk.chiyoda').waitFor();
    await expectAccessible(page, 'ja');
    await screenshot(page, '04-identity');
    await page.getByRole('button', { name: '本人確認を記録' }).click();

    await page.getByRole('heading', { level: 2, name: '手数料' }).waitFor();
    expect(await focused(page)).toBe('手数料');
    await page.getByText('手数料 500円 を受け取ってください。').waitFor();
    await page.getByRole('button', { name: '手数料の受領を記録' }).click();
    await page.getByRole('heading', { level: 2, name: '領収書' }).waitFor();
    const receiptNumber = (await page.locator('.receipt dd .mono').first().textContent()) ?? '';
    expect(receiptNumber).toMatch(new RegExp(`^${CHIYODA}-\\d{4}-\\d{6}$`));
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: '領収書をダウンロード' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`receipt-${receiptNumber}.txt`);
    const receiptText = readFileSync((await download.path())!, 'utf8');
    expect(receiptText).toContain(receiptNumber);
    expect(receiptText).toContain('500円');
    await expectAccessible(page, 'ja');
    await screenshot(page, '05-fee-receipt');

    await page.getByRole('heading', { level: 2, name: '鍵ペア生成と暗証番号' }).waitFor();
    // The resident's PINs: a lower-case signature PIN and a mismatch are refused before the card is touched.
    await page.getByLabel('署名用電子証明書の暗証番号', { exact: false }).first().fill('sign1234');
    await page.getByLabel('署名用電子証明書の暗証番号（確認）').fill('sign1234');
    await page.getByLabel('利用者証明用電子証明書の暗証番号', { exact: false }).first().fill('1234');
    await page.getByLabel('利用者証明用電子証明書の暗証番号（確認）').fill('1243');
    await page.getByRole('button', { name: 'カードで鍵ペアを生成' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('英大文字（A〜Z）と数字（0〜9）で6〜16文字');
    await page.getByLabel('署名用電子証明書の暗証番号', { exact: false }).first().fill('SIGN1234');
    await page.getByLabel('署名用電子証明書の暗証番号（確認）').fill('SIGN1234');
    await page.getByRole('button', { name: 'カードで鍵ペアを生成' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('確認欄と一致しません');
    await page.getByLabel('利用者証明用電子証明書の暗証番号（確認）').fill('1234');
    await expectAccessible(page, 'ja');
    await screenshot(page, '06-keys');
    await page.getByRole('button', { name: 'カードで鍵ペアを生成' }).click();

    await page.getByRole('heading', { level: 2, name: '電子証明書の発行' }).waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: '電子証明書を発行' }).click();
    await page.getByRole('heading', { level: 2, name: 'カードへの書込み' }).waitFor();
    await page.getByRole('button', { name: 'カードに書き込む' }).click();
    await page.getByRole('heading', { level: 2, name: '手続が完了しました' }).waitFor();
    expect(await focused(page)).toContain('手続が完了しました');
    const serialOf = (label: string) =>
      page.locator('.completed dt', { hasText: label }).locator('xpath=following-sibling::dd').textContent();
    issued.sign = (await serialOf('署名用電子証明書のシリアル番号')) ?? undefined;
    issued.auth = (await serialOf('利用者証明用電子証明書のシリアル番号')) ?? undefined;
    expect(issued.sign).toMatch(/^[0-9a-f]{16,}$/i);
    expect(issued.auth).toMatch(/^[0-9a-f]{16,}$/i);
    expect(issued.sign).not.toBe(issued.auth);
    await expectAccessible(page, 'ja');
    await screenshot(page, '07-completed');

    // The authority holds both, valid, and OCSP says good.
    const sign = await certificate(issued.sign!);
    const auth = await certificate(issued.auth!);
    expect([sign.kind, sign.status, auth.kind, auth.status]).toEqual(['sign', 'valid', 'auth', 'valid']);
    expect(await ocsp('sign', sign.pem, 'page-sign-good')).toEqual({ status: 'good' });
    expect(await ocsp('auth', auth.pem, 'page-auth-good')).toEqual({ status: 'good' });
    // The case records who checked the documents and the fee, and only the last 4 characters.
    const row = await ta.authority.store.db
      .selectFrom('counter_cases')
      .selectAll()
      .where('resident_id', '=', taro)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      state: 'completed',
      identity_verified_by: staffIds['clerk.chiyoda'],
      fee_amount: 500,
      fee_method: 'cash',
      receipt_number: receiptNumber,
      sign_serial: issued.sign,
      auth_serial: issued.auth,
    });
    expect(JSON.parse(row.identity_documents!)).toEqual([{ type: 'passport', last4: 'TK98' }]);

    // Back on the record: two valid certificates.
    await page.getByRole('button', { name: '住民の記録に戻る' }).last().click();
    await expect.poll(() => page.locator('.badge-valid').count()).toBe(2);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a second issuance for the same resident is refused with a clear message, nothing written', async () => {
    expect(issued.sign).toBeDefined();
    const page = await browser.context.newPage();
    await logIn(page, 'clerk.chiyoda');
    await findResident(page, '山田 太郎', '1980-04-01');
    await page.getByRole('button', { name: '新規発行' }).click();
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.textContent()).toContain('二重発行はできません（法第6条）');
    expect(await alert.isVisible()).toBe(true);
    await screenshot(page, '08-double-issuance');
    const cases = await ta.authority.store.db
      .selectFrom('counter_cases')
      .select('id')
      .where('resident_id', '=', taro)
      .execute();
    expect(cases).toHaveLength(1);
    await page.close();
  });

  it('a loss report by phone revokes both certificates at once: OCSP answers revoked', async () => {
    const page = await browser.context.newPage();
    await logIn(page, 'clerk.chiyoda');
    await findResident(page, '山田 太郎', '1980-04-01');
    await page.getByRole('button', { name: '紛失届（一時停止）' }).click();
    await page.getByRole('heading', { level: 2, name: '紛失届（一時停止）' }).waitFor();
    expect(await page.getByRole('radio', { name: '電話' }).isChecked()).toBe(true);
    await expectAccessible(page, 'ja');
    await screenshot(page, '09-loss-report');
    await page.getByRole('button', { name: '有効な証明書をすべて直ちに失効させる' }).click();
    await page.getByRole('status').filter({ hasText: '2 件の電子証明書を失効させました' }).waitFor();
    await expect.poll(() => page.locator('.badge-revoked').count()).toBe(2);
    await page.getByText('紛失・盗難の届出により署名用電子証明書は失効しました').waitFor();
    await screenshot(page, '10-revoked');
    for (const [kind, serial] of [
      ['sign', issued.sign!],
      ['auth', issued.auth!],
    ] as const) {
      const cert = await certificate(serial);
      expect(cert.status).toBe('revoked');
      expect(await ocsp(kind, cert.pem, `page-${kind}-revoked`)).toEqual({ status: 'revoked', reason: 1 });
    }
    await page.close();
  });

  it('the statistics page shows the issuance in a chart, a data table, JSON and CSV', async () => {
    const page = await browser.context.newPage();
    // A clerk has no statistics.
    await logIn(page, 'clerk.chiyoda');
    expect(await page.getByRole('link', { name: '発行統計' }).count()).toBe(0);
    await page.getByRole('button', { name: 'ログアウト' }).click();
    await page.getByRole('status').filter({ hasText: 'ログアウトしました' }).waitFor();

    await logIn(page, 'super.chiyoda');
    await page.getByRole('link', { name: '発行統計' }).click();
    await page.getByRole('heading', { level: 1, name: '発行統計' }).waitFor();
    const chart = page.getByRole('img', { name: '日別の発行数（全体）' });
    await chart.waitFor();
    await screenshot(page, '11-statistics');
    expect(await chart.getAttribute('aria-labelledby')).toBeTruthy();
    // The chart draws one bar per kind for today (2 certificates), and says so in its description.
    expect(await chart.locator('rect[fill]').count()).toBeGreaterThanOrEqual(2 + 2);
    expect(await chart.locator('desc').textContent()).toContain('合計 2 件');
    const today = jstDay(Date.now());
    const totalRow = page
      .getByRole('table', { name: '日別・市区町村別' })
      .getByRole('row')
      .filter({ hasText: today })
      .filter({ hasText: '全体' });
    expect((await totalRow.getByRole('cell').allTextContents()).slice(1)).toEqual(['1', '1', '2', '0']);
    await page.getByRole('img', { name: '設計上の発行能力に対する累計' }).waitFor();
    await page.locator('figcaption', { hasText: '累計 2 件 ／ 発行能力 5,000,000 件（0.00004%）' }).waitFor();
    await expectAccessible(page, 'ja');

    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'CSV' }).click(),
    ]);
    const csvText = readFileSync((await csv.path())!, 'utf8');
    expect(csvText.split('\r\n')).toContain(`day,${today},total,1,1,2,0`);
    expect(csvText).toContain('5000000,2,');
    const [json] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'JSON' }).click(),
    ]);
    const stats = JSON.parse(readFileSync((await json.path())!, 'utf8'));
    expect(stats).toMatchObject({ capacity: 5_000_000, cumulative: 2, municipalityCode: CHIYODA });
    await page.close();
  });

  it('a PIN reset at the counter unlocks a locked signature PIN', async () => {
    // Issue to Ichiro through the API (the page's issuance is covered above), then lock his PIN.
    const login = await fetch(`${base}/api/v1/staff/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'clerk.chiyoda', password: PASSWORD }),
    });
    const headers = {
      authorization: `Bearer ${((await login.json()) as { token: string }).token}`,
      'content-type': 'application/json',
    };
    const post = async (path: string, body?: object) => {
      const r = await fetch(`${base}/api/v1${path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body ?? {}),
      });
      expect(r.status, await r.clone().text()).toBeLessThan(300);
      return (await r.json()) as { id: string; cardId: string };
    };
    const { id } = await post('/counter/cases', { residentId: ichiro });
    await post(`/counter/cases/${id}/identity`, { documents: [{ type: 'driving-licence' }] });
    await post(`/counter/cases/${id}/fee`, { method: 'cash' });
    await post(`/counter/cases/${id}/keys`, { signPin: 'ICHIRO123', authPin: '2468' });
    await post(`/counter/cases/${id}/issue`);
    const { cardId } = await post(`/counter/cases/${id}/card`);
    const cardPath = join(ta.dir, 'cards', `${cardId}.json`);
    const card = await SoftwareCard.open(cardPath);
    for (let n = 0; n < 5; n++)
      await expect(card.signer('sign', 'WRONG999')).rejects.toBeInstanceOf(PinIncorrectError);
    expect((await card.pinStatus('sign')).locked).toBe(true);
    await card.close();

    const page = await browser.context.newPage();
    await logIn(page, 'clerk.chiyoda');
    await findResident(page, '鈴木 一郎', '1975-07-15');
    await page.getByRole('button', { name: '暗証番号の再設定' }).click();
    await page.getByRole('heading', { level: 2, name: '本人確認' }).waitFor();
    await page.getByRole('checkbox', { name: 'マイナンバーカード' }).check();
    await page.getByRole('button', { name: '本人確認を記録' }).click();
    await page.getByRole('heading', { level: 2, name: '暗証番号の再設定' }).waitFor();
    // The card issued to him is filled in.
    await expect.poll(() => page.getByLabel('カードID').inputValue()).toBe(cardId);
    await page.getByLabel('新しい暗証番号', { exact: false }).first().fill('NEWPIN77');
    await page.getByLabel('新しい暗証番号（確認）').fill('NEWPIN77');
    await expectAccessible(page, 'ja');
    await screenshot(page, '12-pin-reset');
    await page.getByRole('button', { name: '暗証番号を再設定' }).click();
    await page.getByText('暗証番号を再設定しました。ロックは解除されています。').waitFor();
    const reopened = await SoftwareCard.open(cardPath);
    expect((await reopened.pinStatus('sign')).locked).toBe(false);
    await (await reopened.signer('sign', 'NEWPIN77')).sign(Buffer.from('signed after the reset'));
    await reopened.close();
    await page.close();
  });

  it('English: lang switches, no Japanese outside resident data, refusals in English; keyboard only', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/counter/`);
    // Keyboard only: the log-in heading has the focus; Tab reaches the fields, Enter submits.
    await expect.poll(() => focused(page)).toBe('職員ログイン');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).autocomplete)).toBe(
      'username',
    );
    await page.keyboard.type('clerk.chiyoda');
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await expect.poll(() => focused(page)).toBe('住民の検索');
    // The skip link comes first in the tab order.
    for (let n = 0; n < 4; n++) await page.keyboard.press('Shift+Tab');
    expect(await focused(page)).toBe('本文へスキップ');
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('窓口業務');
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('English');
    await page.keyboard.press('Enter');

    await expect.poll(() => page.getAttribute('html', 'lang')).toBe('en');
    await page.getByRole('heading', { level: 1, name: 'Find a resident' }).waitFor();
    expect(await page.title()).toBe('Counter — Certificate counter');
    await expectAccessible(page, 'en');
    await page.getByLabel('Name').fill('佐藤 花子');
    await page.getByLabel('Name').press('Enter');
    await page.getByRole('button', { name: 'Select 佐藤 花子' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: "Resident's record: 佐藤 花子" }).waitFor();
    expect(await japaneseOutsideData(page)).toEqual([]);
    await screenshot(page, '13-english-resident');
    await page.getByRole('button', { name: 'New issuance' }).click();
    await page.getByRole('heading', { level: 2, name: 'Identity check' }).waitFor();
    await page.getByRole('checkbox', { name: 'My Number Card' }).focus();
    await page.keyboard.press('Space');
    await page.getByRole('button', { name: 'Record identity check' }).click();
    await page.getByRole('heading', { level: 2, name: 'Fee' }).waitFor();
    await page.getByText('Collect the fee of ¥500.').waitFor();
    await page.getByRole('radio', { name: 'Exempt' }).check();
    await page.getByRole('button', { name: 'Record fee received' }).click();
    await page.getByRole('heading', { level: 2, name: 'Receipt' }).waitFor();
    await page.getByText('certificate issuance fee').waitFor();
    expect(await japaneseOutsideData(page)).toEqual([]);
    await expectAccessible(page, 'en');
    await screenshot(page, '14-english-receipt');

    // Taro's refusal in English.
    await page.getByRole('button', { name: "Back to the resident's record" }).click();
    await page.getByRole('button', { name: 'Back to search' }).click();
    await page.getByLabel('Name').fill('山田 太郎');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: 'Select 山田 太郎' }).click();
    // Taro's certificates were revoked by the loss report, so there is nothing to renew.
    await page.getByRole('button', { name: 'Renewal' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Renewal is not possible now');
    expect(await japaneseOutsideData(page)).toEqual([]);
    await screenshot(page, '15-english-refusal');
    // Back to Japanese.
    await page.getByRole('button', { name: '日本語' }).click();
    await expect.poll(() => page.getAttribute('html', 'lang')).toBe('ja');
    await page.close();
  });
});
