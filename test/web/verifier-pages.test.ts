// The operators' verifier pages (/counter/#/verifiers, a staff session of an operator) and the verifier
// console (/verifier/, the verifier's API key) in Debian's chromium against a real server: a real authority,
// SQLite store, revocation access for verifiers only, a tariff with a base fee, and a verifier CA for
// client certificates. An operator registers a verifier, issues an API key (shown once, copied) and
// registers a client certificate; the verifier, with that key, makes OCSP and CRL requests and sees them
// in its usage and statement, validates a signed document made here with the project's signing code
// (TOTAL_PASSED) and a tampered one (TOTAL_FAILED); the operator sees every verifier's usage; the console
// in English; the operator suspends the verifier (confirmation, reason) and the console says so and is
// refused; a revoked key is refused at log-in. Every view passes the accessibility checks of browser.ts.
// Screenshots go to test-results/screenshots/ (git-ignored).

import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jstDay } from '../../src/counter/workflow.ts';
import { buildServer } from '../../src/http/server.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { StaffService } from '../../src/staff/service.ts';
import { buildCounterPage } from '../../web/build.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { opensslCsr } from '../helpers/openssl.ts';
import { ocspCertStatus, ocspRequest } from '../register/helpers.ts';
import { createTestCa } from '../verifiers/pki.ts';
import {
  browserAvailable,
  browserRequired,
  expectAccessible,
  japaneseOutsideData,
  launchBrowser,
  screenshot,
  type TestBrowser,
} from './browser.ts';

const PASSWORD = 'operator password 2026';
const VERIFIER = '株式会社テスト認証サービス';
const FACTS = {
  name: '山田 太郎',
  dateOfBirth: '1990-04-01',
  sex: 'male' as const,
  address: '東京都千代田区霞が関1-2-2',
};
const DOCUMENT = Buffer.from('転入届 2026-04-01 山田　太郎\r\n申請内容: 住所変更\n');
const TARIFF = { monthlyBaseFeeYen: 5000, ocspYen: 2, crlYen: 20, verificationYen: 20 };

describe.skipIf(!browserRequired && !browserAvailable)('verifier pages in chromium', () => {
  let ta: TestAuthority;
  let app: FastifyInstance;
  let browser: TestBrowser;
  let base: string;
  let webRoot: string;
  let work: string;
  let clientCertPem: string;
  let foreignCertPem: string;
  /** The resident's signature certificate and what was signed with it. */
  let holderPem: string;
  let attached: Buffer;
  let detached: Buffer;
  /** CAdES-T: time-stamped by the authority's TSA. */
  let stamped: Buffer;
  /** What the operator's page showed once. */
  let apiKey = '';
  let keyId = '';

  beforeAll(async () => {
    browser = await launchBrowser();
    // A step that does not happen fails with the locator it waited for, not with the test's timeout.
    browser.context.setDefaultTimeout(10_000);
    webRoot = mkdtempSync(join(tmpdir(), 'jpki-web-'));
    work = mkdtempSync(join(tmpdir(), 'jpki-verifier-web-'));
    await buildCounterPage(webRoot);
    ta = await createTestAuthority({ backend: 'sqlite' });
    const staff = new StaffService(ta.authority.store.db, { scrypt: { ln: 10, r: 8, p: 1 } });
    await staff.createStaff({ username: 'ops', password: PASSWORD, role: 'operator' }, 'cli:test');

    // The verifier CA of verifiers.json, a client certificate it issued, and one from somebody else's CA.
    const ca = await createTestCa();
    writeFileSync(join(work, 'verifier-ca.pem'), ca.certPem);
    clientCertPem = (await ca.issue('verifier-console-test')).certPem;
    foreignCertPem = (await (await createTestCa('Somebody else')).issue('stranger')).certPem;

    // A resident's signature certificate (openssl key and request) and documents signed with it.
    const { keyPath, csrPath } = opensslCsr(work, 'holder', 'ec');
    const cert = await ta.authority.issue({ kind: 'sign', csr: readFileSync(csrPath, 'utf8'), facts: FACTS });
    holderPem = cert.pem;
    for (const ca of ['root', 'sign'] as const) await ta.authority.generateCrl(ca);
    const signer = SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(keyPath, 'utf8')));
    const sign = async (detach: boolean, timestampUrl?: string) =>
      (
        await signDocument({
          format: 'cms',
          signer,
          certificate: cert.der,
          chain: [ta.authority.certificate('sign')],
          content: DOCUMENT,
          detached: detach,
          timestampUrl,
        })
      ).output;
    attached = await sign(false);
    detached = await sign(true);

    app = await buildServer({
      authority: ta.authority,
      operatorToken: ta.operatorToken,
      webRoot,
      verifiers: {
        revocationAccess: 'verifiers',
        settings: {
          tariff: TARIFF,
          rateLimit: { requestsPerSecond: 0 },
          clientCa: join(work, 'verifier-ca.pem'),
        },
      },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no port');
    base = `http://127.0.0.1:${addr.port}`;
    stamped = await sign(false, `${base}/tsa`);
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await ta?.close();
    for (const d of [webRoot, work]) if (d) rmSync(d, { recursive: true, force: true });
  });

  /** A page that records script errors and failed requests the test did not make on purpose. */
  async function newPage() {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    return { page, errors };
  }

  async function operatorLogIn(page: Page) {
    await page.goto(`${base}/counter/`);
    await page.getByLabel('ユーザー名').fill('ops');
    await page.getByLabel('パスワード').fill(PASSWORD);
    await page.getByRole('button', { name: 'ログイン' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'ログアウト' }).count()).toBe(1);
  }

  async function openVerifier(page: Page) {
    await page.getByRole('link', { name: '検証者', exact: true }).click();
    await page.getByRole('button', { name: `${VERIFIER} の詳細` }).click();
    await page.getByRole('heading', { level: 1, name: `検証者: ${VERIFIER}` }).waitFor();
  }

  async function consoleLogIn(page: Page, key = apiKey) {
    await page.goto(`${base}/verifier/`);
    await page.getByRole('textbox', { name: 'API キー' }).fill(key);
    await page.getByRole('button', { name: 'ログイン' }).click();
  }

  const withKey = (key = apiKey) => ({ 'x-api-key': key });
  const ocsp = async (key?: string) => {
    const req = ocspRequest(work, ta.certPath('sign'), holderPem, `ocsp-${Date.now()}`);
    return fetch(`${base}/ocsp`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request', ...(key ? withKey(key) : {}) },
      body: new Uint8Array(req),
    });
  };

  /** The cells of the table row whose header cell says `row`. */
  const rowCells = (page: Page, table: string, row: string) =>
    page
      .getByRole('table', { name: table })
      .getByRole('row')
      .filter({ has: page.getByRole('rowheader', { name: row, exact: true }) })
      .getByRole('cell')
      .allTextContents();

  const today = jstDay(Date.now());
  const month = today.slice(0, 7);
  const jaMonth = `${Number(month.slice(0, 4))}年${Number(month.slice(5))}月`;
  const jaDay = new Intl.DateTimeFormat('ja-JP', { timeZone: 'Asia/Tokyo', dateStyle: 'medium' }).format(
    new Date(today),
  );

  it('/verifier/ is served with the strict content security policy; the page needs a key', async () => {
    const r = await fetch(`${base}/verifier/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(r.headers.get('cache-control')).toBe('no-cache');
    const html = await r.text();
    expect(html).toContain('<title>検証者コンソール');
    const asset = /src="(\/counter\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect((await fetch(`${base}${asset}`)).status).toBe(200);
    expect((await fetch(`${base}/verifier`, { redirect: 'manual' })).headers.get('location')).toBe(
      '/verifier/',
    );
    // Without a key the revocation endpoints refuse: this server is for authorised verifiers only.
    expect((await ocsp()).status).toBe(401);
  });

  it('an operator registers a verifier, issues an API key shown once with a copy button, registers a client certificate', async () => {
    const { page, errors } = await newPage();
    await operatorLogIn(page);
    await page.getByRole('link', { name: '検証者', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: '署名検証者等の管理' }).waitFor();
    await page.getByText('該当する検証者はありません。').waitFor();
    await expectAccessible(page, 'ja');

    // A contract that ends before it starts is refused in the page.
    await page.getByLabel('名称').fill(VERIFIER);
    await page.getByRole('radio', { name: '民間認証事業者' }).check();
    await page.getByLabel('契約開始日').fill('2026-04-01');
    await page.getByLabel('契約終了日').fill('2026-03-31');
    await page.getByRole('button', { name: '登録する' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('契約終了日は契約開始日と同じか、それより後の日にしてください');
    await page.getByLabel('契約開始日').fill('2026-01-01');
    await page.getByLabel('契約終了日').fill('2099-03-31');
    await screenshot(page, 'v01-register');
    await page.getByRole('button', { name: '登録する' }).click();

    await page.getByRole('heading', { level: 1, name: `検証者: ${VERIFIER}` }).waitFor();
    await page.getByText('API キーはありません。').waitFor();
    expect(await page.locator('.facts').first().textContent()).toContain('民間認証事業者');
    await expectAccessible(page, 'ja');

    await page.getByLabel('ラベル').fill('本番システム');
    await page.getByRole('button', { name: 'API キーを発行' }).click();
    await page.getByRole('heading', { level: 3, name: '新しい API キー' }).waitFor();
    await page.getByText('このキーは今この画面にだけ表示されます').waitFor();
    apiKey = await page.getByRole('textbox', { name: 'API キー', exact: true }).inputValue();
    expect(apiKey).toMatch(/^jpkv_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    keyId = apiKey.split('_')[1]!;
    await page.getByRole('button', { name: 'API キーをコピー' }).click();
    await page.getByRole('status').filter({ hasText: 'API キーをクリップボードにコピーしました' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(apiKey);
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v02-new-key');
    // Closed, the key is gone from the page; the table shows its id, valid, and nothing more.
    await page.getByRole('button', { name: '保管しました（表示を閉じる）' }).click();
    expect(await page.content()).not.toContain(apiKey.slice(23));
    const keyRow = page.getByRole('row').filter({ hasText: keyId });
    expect(await keyRow.textContent()).toContain('本番システム');
    expect(await keyRow.textContent()).toContain('有効');

    // Client certificates: no PEM, a stranger's certificate, then the verifier CA's.
    const pem = page.getByLabel('証明書（PEM）');
    await pem.fill('not a certificate');
    await page.getByRole('button', { name: '証明書を登録' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('PEM 形式の証明書を貼り付けてください');
    await pem.fill(foreignCertPem);
    await page.getByRole('button', { name: '証明書を登録' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('この証明書は登録できません');
    await pem.fill(clientCertPem);
    await page.getByRole('button', { name: '証明書を登録' }).click();
    await page.getByRole('status').filter({ hasText: 'を登録しました' }).waitFor();
    const certRow = page.getByRole('row').filter({ hasText: 'CN=verifier-console-test' });
    expect(await certRow.textContent()).toContain('有効');
    expect(await pem.inputValue()).toBe('');
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v03-verifier-detail');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the console, with that key, shows usage after OCSP and CRL requests and the statement with JSON and CSV', async () => {
    expect(apiKey).not.toBe('');
    for (let n = 0; n < 3; n++) {
      const r = await ocsp(apiKey);
      expect(r.status).toBe(200);
      expect(ocspCertStatus(Buffer.from(await r.arrayBuffer()))).toEqual({ status: 'good' });
    }
    expect((await fetch(`${base}/crl/sign.crl`, { headers: withKey() })).status).toBe(200);

    const { page, errors } = await newPage();
    await page.goto(`${base}/verifier/`);
    await page.getByRole('heading', { level: 1, name: 'API キーでログイン' }).waitFor();
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v04-console-login');
    // Not a key, and an unknown key: each refused with its own sentence.
    await consoleLogIn(page, 'password123');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('API キーは jpkv_ で始まります');
    await consoleLogIn(page, `jpkv_0123456789abcdef_${'A'.repeat(43)}`);
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('この API キーは登録されていません');
    errors.length = 0;

    await consoleLogIn(page);
    await page.getByRole('heading', { level: 1, name: '利用状況' }).waitFor();
    expect(await page.locator('.banner .who').textContent()).toBe(VERIFIER);
    // The key is in this tab's sessionStorage only.
    expect(await page.evaluate(() => sessionStorage.getItem('jpki.verifier.apiKey'))).toBe(apiKey);
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain(apiKey);

    const table = `日別・種類別の回数 (${jaMonth})`;
    await page.getByRole('table', { name: table }).waitFor();
    expect(await rowCells(page, table, jaDay)).toEqual(['3', '1', '0', '4']);
    const chart = page.getByRole('img', { name: `日別の利用回数 (${jaMonth})` });
    expect(await chart.locator('desc').textContent()).toContain('合計 4 回');
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v05-console-usage');

    await page.getByRole('link', { name: '利用明細書' }).click();
    const statement = `${jaMonth}の利用明細書`;
    await page.getByRole('table', { name: statement }).waitFor();
    expect(await rowCells(page, statement, '月額基本料')).toEqual(['1', '5,000円', '5,000円']);
    expect(await rowCells(page, statement, 'OCSP 応答')).toEqual(['3', '2円', '6円']);
    expect(await rowCells(page, statement, 'CRL の提供')).toEqual(['1', '20円', '20円']);
    expect(await rowCells(page, statement, '署名の検証')).toEqual(['0', '20円', '0円']);
    expect((await rowCells(page, statement, '合計金額')).at(-1)).toBe('5,026円');
    await page.getByText('暫定（月の途中のため、回数は増えることがあります）').waitFor();
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v06-console-statement');

    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'CSV' }).click(),
    ]);
    expect(csv.suggestedFilename()).toMatch(new RegExp(`^statement-\\d+-${month}\\.csv$`));
    const lines = readFileSync((await csv.path())!, 'utf8').split('\r\n');
    expect(lines[0]).toBe(
      'month,verifier_id,verifier,category,item,description,quantity,unit_price_yen,amount_yen',
    );
    expect(lines.find((l) => l.includes(',ocsp,'))).toMatch(/,3,2,6$/);
    expect(lines.find((l) => l.includes(',total,'))).toMatch(/,5026$/);
    const [json] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'JSON' }).click(),
    ]);
    expect(JSON.parse(readFileSync((await json.path())!, 'utf8'))).toMatchObject({
      month,
      verifier: { name: VERIFIER },
      totalYen: 5026,
      final: false,
    });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('validates a signed document (TOTAL_PASSED, also time-stamped) and a tampered one (TOTAL_FAILED); each is counted', async () => {
    const { page, errors } = await newPage();
    await consoleLogIn(page);
    await page.getByRole('link', { name: '署名の検証' }).click();
    await page.getByRole('heading', { level: 1, name: '署名の検証' }).waitFor();
    // Nothing chosen: said in the page, nothing sent.
    await page.getByRole('button', { name: '検証する' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('署名ファイルを選んでください');
    await expectAccessible(page, 'ja');

    const signatureField = page.getByLabel('署名ファイル（.p7s または署名付き XML）');
    const contentField = page.getByLabel('署名対象のファイル（分離署名のときだけ）');
    await signatureField.setInputFiles({
      name: 'tennyu.p7s',
      mimeType: 'application/pkcs7-signature',
      buffer: attached,
    });
    await page.getByRole('button', { name: '検証する' }).click();
    const heading = page.getByRole('heading', { level: 2, name: '検証結果' });
    await heading.waitFor();
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('検証結果');
    const verdict = page.locator('.verdict');
    expect(await verdict.locator('.verdict-word').textContent()).toContain('有効 (TOTAL_PASSED)');
    expect(await verdict.textContent()).toContain('署名は有効です');
    await page.getByRole('status').filter({ hasText: '検証が終わりました。判定: 有効' }).waitFor();
    const facts = page.getByRole('region', { name: '基本4情報' });
    expect(await facts.textContent()).toContain('山田\u3000太郎');
    expect(await facts.textContent()).toContain('東京都千代田区霞が関1-2-2');
    const signer = page.getByRole('region', { name: '署名者の電子証明書' });
    expect(await signer.textContent()).toContain('署名用電子証明書');
    await page.getByText('tennyu.p7s').waitFor();
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v07-validate-passed');

    // Time-stamped (CAdES-T): the time-stamp time is shown.
    await signatureField.setInputFiles({
      name: 'stamped.p7s',
      mimeType: 'application/pkcs7-signature',
      buffer: stamped,
    });
    await page.getByRole('button', { name: '検証する' }).click();
    await page.getByText('ファイル: stamped.p7s').waitFor();
    expect(await verdict.locator('.verdict-word').textContent()).toContain('TOTAL_PASSED');
    const reportFacts = page.locator('.report .facts').first();
    expect(await reportFacts.textContent()).toContain('CAdES-T');
    expect(await reportFacts.textContent()).toContain('（この時刻に署名が存在したことの証明）');
    expect(await page.getByRole('region', { name: 'タイムスタンプ' }).textContent()).toContain('有効');
    await screenshot(page, 'v08-validate-timestamped');

    // A detached signature with a document changed after signing.
    const tampered = Buffer.from(DOCUMENT.toString('utf8').replace('住所変更', '氏名変更'));
    await signatureField.setInputFiles({
      name: 'detached.p7s',
      mimeType: 'application/pkcs7-signature',
      buffer: detached,
    });
    await contentField.setInputFiles({ name: 'tennyu.txt', mimeType: 'text/plain', buffer: tampered });
    await page.getByRole('button', { name: '検証する' }).click();
    await expect.poll(() => verdict.locator('.verdict-word').textContent()).toContain('無効 (TOTAL_FAILED)');
    expect(await verdict.textContent()).toContain('文書が署名後に変更されています');
    expect(await verdict.textContent()).toContain('HASH_FAILURE');
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v09-validate-failed');
    // The same signature with the document as signed passes.
    await contentField.setInputFiles({ name: 'tennyu.txt', mimeType: 'text/plain', buffer: DOCUMENT });
    await page.getByRole('button', { name: '検証する' }).click();
    await expect.poll(() => verdict.locator('.verdict-word').textContent()).toContain('TOTAL_PASSED');

    // Four validations are counted.
    await page.getByRole('link', { name: '利用状況' }).click();
    const table = `日別・種類別の回数 (${jaMonth})`;
    await expect.poll(() => rowCells(page, table, jaDay)).toEqual(['3', '1', '4', '8']);

    // Keys and certificates: the key in use, the registered certificate, no secret.
    await page.getByRole('link', { name: 'API キーと証明書' }).click();
    await page.getByRole('heading', { level: 1, name: 'API キーとクライアント証明書' }).waitFor();
    const keyRow = page.getByRole('row').filter({ hasText: keyId });
    await expect.poll(() => keyRow.textContent()).toContain('このコンソールで使用中');
    expect(await page.getByRole('row').filter({ hasText: 'CN=verifier-console-test' }).count()).toBe(1);
    expect(await page.content()).not.toContain(apiKey.slice(23));
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v10-console-credentials');
    expect(errors).toEqual([]);
    await page.close();
  });

  it("operators see every verifier's usage and amount for the month, with CSV", async () => {
    const { page, errors } = await newPage();
    await operatorLogIn(page);
    await page.getByRole('link', { name: '検証者の利用状況' }).click();
    const table = `${jaMonth}の検証者別の利用状況`;
    await page.getByRole('table', { name: table }).waitFor();
    // 5,000 base + 3 OCSP × 2 + 1 CRL × 20 + 4 validations × 20.
    expect(await rowCells(page, table, VERIFIER)).toEqual([
      '民間認証事業者',
      '利用中',
      '3',
      '1',
      '4',
      '5,106円',
    ]);
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v11-operator-usage');
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'CSV' }).click(),
    ]);
    const text = readFileSync((await csv.path())!, 'utf8');
    expect(text).toContain(`,${VERIFIER},private-certification-business,active,3,1,4,5106`);
    // The verifier's name leads to its page.
    await page.getByRole('link', { name: VERIFIER }).click();
    await page.getByRole('heading', { level: 1, name: `検証者: ${VERIFIER}` }).waitFor();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('English: the console and its validation report, no Japanese outside data', async () => {
    const { page, errors } = await newPage();
    await consoleLogIn(page);
    await page.getByRole('heading', { level: 1, name: '利用状況' }).waitFor();
    await page.getByRole('button', { name: 'English' }).click();
    await expect.poll(() => page.getAttribute('html', 'lang')).toBe('en');
    await page.getByRole('heading', { level: 1, name: 'Usage' }).waitFor();
    expect(await page.title()).toBe('Usage — Verifier console');
    await page.getByRole('table', { name: /^Per day and kind/ }).waitFor();
    expect(await japaneseOutsideData(page)).toEqual([]);
    await expectAccessible(page, 'en');

    await page.getByRole('link', { name: 'Validate a signature' }).click();
    await page
      .getByLabel('Signature file (.p7s or signed XML)')
      .setInputFiles({ name: 'tennyu.p7s', mimeType: 'application/pkcs7-signature', buffer: attached });
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByRole('heading', { level: 2, name: 'Validation report' }).waitFor();
    const verdict = page.locator('.verdict');
    expect(await verdict.locator('.verdict-word').textContent()).toContain('Valid (TOTAL_PASSED)');
    expect(await verdict.textContent()).toContain('The signature is valid');
    // The signer's name in the English sentence is marked Japanese for screen readers.
    expect(await verdict.locator('[lang="ja"]').first().textContent()).toBe('山田\u3000太郎');
    expect(await japaneseOutsideData(page)).toEqual([]);
    await expectAccessible(page, 'en');
    await screenshot(page, 'v12-english-report');

    await page.getByRole('link', { name: 'Statements' }).click();
    await page.getByRole('table', { name: /^Statement for / }).waitFor();
    expect(await japaneseOutsideData(page)).toEqual([]);
    await screenshot(page, 'v13-english-statement');

    // The operators' pages, in English too (the language choice is kept for the next page).
    const { page: ops, errors: opsErrors } = await newPage();
    await ops.goto(`${base}/counter/`);
    await ops.getByLabel('Username').fill('ops');
    await ops.getByLabel('Password').fill(PASSWORD);
    await ops.getByRole('button', { name: 'Log in' }).click();
    await ops.getByRole('link', { name: 'Verifiers', exact: true }).click();
    await ops.getByRole('table', { name: 'Registered verifiers (1)' }).waitFor();
    expect(await japaneseOutsideData(ops)).toEqual([]);
    await expectAccessible(ops, 'en');
    await ops.getByRole('button', { name: `Details of ${VERIFIER}` }).click();
    await ops.getByRole('heading', { level: 1, name: `Verifier: ${VERIFIER}` }).waitFor();
    await ops.getByRole('table', { name: /^Statement for / }).waitFor();
    expect(await japaneseOutsideData(ops)).toEqual([]);
    await expectAccessible(ops, 'en');
    await screenshot(ops, 'v14-english-verifier');
    await ops.getByRole('link', { name: 'Verifier usage' }).click();
    await ops.getByRole('table', { name: /^Usage by verifier, / }).waitFor();
    expect(await japaneseOutsideData(ops)).toEqual([]);
    await ops.getByRole('button', { name: '日本語' }).click();
    await expect.poll(() => ops.getAttribute('html', 'lang')).toBe('ja');
    expect([...errors, ...opsErrors]).toEqual([]);
    await ops.close();
    await page.close();
  });

  it('a suspended verifier: suspension needs a reason; the console says so and its validation is refused', async () => {
    const { page } = await newPage();
    await operatorLogIn(page);
    await openVerifier(page);
    await page.getByRole('button', { name: '利用停止', exact: true }).click();
    await page.getByRole('heading', { level: 3, name: '利用停止の確認' }).waitFor();
    await page.getByText('直ちに拒否されます（403）').waitFor();
    await page.getByRole('button', { name: '利用停止にする' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('理由を入力してください');
    await page.getByLabel('理由').fill('利用料金の未払い');
    await expectAccessible(page, 'ja');
    await screenshot(page, 'v15-suspend-confirm');
    await page.getByRole('button', { name: '利用停止にする' }).click();
    await page.getByRole('status').filter({ hasText: '利用停止にしました。' }).waitFor();
    expect(await page.locator('.facts').first().textContent()).toContain('利用停止中');
    const history = page.getByRole('row').filter({ hasText: '利用料金の未払い' });
    expect(await history.textContent()).toContain('利用中 → 利用停止中');

    // OCSP with the key: 403 and no revocation data.
    const refused = await ocsp(apiKey);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('x-jpki-refusal')).toBe('suspended');

    const { page: console } = await newPage();
    await consoleLogIn(console);
    await console.getByRole('heading', { level: 1, name: '利用状況' }).waitFor();
    await console.getByText('この検証者は利用停止中です。').waitFor();
    // Statements can still be read.
    await console.getByRole('link', { name: '利用明細書' }).click();
    await console.getByRole('table', { name: `${jaMonth}の利用明細書` }).waitFor();
    await console.getByRole('link', { name: '署名の検証' }).click();
    await console
      .getByLabel('署名ファイル（.p7s または署名付き XML）')
      .setInputFiles({ name: 'tennyu.p7s', mimeType: 'application/pkcs7-signature', buffer: attached });
    await console.getByRole('button', { name: '検証する' }).click();
    await expect
      .poll(() => console.getByRole('alert').textContent())
      .toContain('この検証者は利用停止中のため、拒否されました');
    expect(await console.getByRole('heading', { name: '検証結果' }).count()).toBe(0);
    await expectAccessible(console, 'ja');
    await screenshot(console, 'v16-suspended-refused');

    // Reinstated: validation works again.
    await page.getByRole('button', { name: '利用再開', exact: true }).click();
    await page.getByRole('button', { name: '利用を再開する' }).click();
    await page.getByRole('status').filter({ hasText: '利用を再開しました。' }).waitFor();
    await console.getByRole('button', { name: '検証する' }).click();
    await expect.poll(() => console.locator('.verdict-word').textContent()).toContain('TOTAL_PASSED');

    // The key revoked (with confirmation): the console's next request ends the session, and the key is
    // refused at log-in with its own sentence.
    await page.getByRole('button', { name: `キー ${keyId} を失効` }).click();
    await page.getByRole('button', { name: '失効させる' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `キー ${keyId} を失効させました` })
      .waitFor();
    const self = await fetch(`${base}/api/v1/verifier`, { headers: withKey() });
    expect(self.status).toBe(401);
    expect(self.headers.get('x-jpki-refusal')).toBe('revoked-credential');
    await console.getByRole('link', { name: 'API キーと証明書' }).click();
    await console.getByRole('status').filter({ hasText: 'この API キーは使えなくなりました' }).waitFor();
    expect(await console.evaluate(() => sessionStorage.getItem('jpki.verifier.apiKey'))).toBeNull();
    await consoleLogIn(console);
    await expect
      .poll(() => console.getByRole('alert').textContent())
      .toContain('この API キーは失効しています');
    await screenshot(console, 'v17-revoked-key');
    await console.close();
    await page.close();
  });
});
