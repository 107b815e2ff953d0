// Japanese first, English on request. Every message exists in both languages (the type of `en` is the
// keys of `ja`), so a missing translation is a type error, not an untranslated string on the screen.

import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { verifierEn, verifierJa } from './i18n-verifiers.ts';

const counterJa = {
  appTitle: '電子証明書 窓口',
  appSubtitle: '公的個人認証サービス',
  skipToMain: '本文へスキップ',
  navLabel: '主なメニュー',
  navCounter: '窓口業務',
  navStats: '発行統計',
  switchLanguage: 'English',
  loggedInAs: '{user}（{role}）',
  logout: 'ログアウト',
  roleClerk: '窓口職員',
  roleSupervisor: '窓口責任者',
  roleOperator: '認証機関職員',
  municipality: '市区町村コード {code}',

  loginTitle: '職員ログイン',
  loginIntro: '窓口業務を始めるには、職員アカウントでログインしてください。',
  username: 'ユーザー名',
  password: 'パスワード',
  login: 'ログイン',
  loggingIn: 'ログイン中…',
  loggedOut: 'ログアウトしました。',
  sessionEnded: 'セッションが終了しました。もう一度ログインしてください。',

  busy: '処理中…',
  required: '必須',
  optional: '任意',
  close: '閉じる',
  errorTitle: 'エラー',
  errorDetail: '詳細: {detail}',

  searchTitle: '住民の検索',
  searchIntro: '氏名と生年月日（どちらか一方でも可）で、この市区町村の住民を検索します。',
  name: '氏名',
  nameHint: '例: 山田 太郎（氏と名の間は空白）',
  dateOfBirth: '生年月日',
  search: '検索',
  searchNeedsInput: '氏名か生年月日を入力してください。',
  results: '検索結果',
  resultsCount: '{n} 件見つかりました。',
  noResults: '該当する住民は見つかりませんでした。',
  select: '選択',
  selectResident: '{name} さんを選択',
  residentId: '住民票コード',
  operatorNoResidents: '認証機関職員は住民の個人情報を閲覧できません。発行統計をご利用ください。',

  residentTitle: '住民の記録',
  nameKana: 'フリガナ',
  sex: '性別',
  sex_male: '男',
  sex_female: '女',
  sex_unknown: '不明',
  address: '住所',
  status: '状態',
  status_resident: '住民',
  'status_moved-out': '転出',
  status_deceased: '死亡',
  cardId: 'カードID',
  none: 'なし',
  certificates: '電子証明書',
  noCertificates: '電子証明書はまだ発行されていません。',
  kind: '種類',
  kind_sign: '署名用電子証明書',
  kind_auth: '利用者証明用電子証明書',
  serial: 'シリアル番号',
  certStatus: '状態',
  cert_valid: '有効',
  cert_revoked: '失効',
  cert_expired: '期限切れ',
  notAfter: '有効期限',
  note: '説明',
  actions: '手続',
  startIssuance: '新規発行',
  startRenewal: '更新',
  startPinReset: '暗証番号の再設定',
  startLossReport: '紛失届（一時停止）',
  backToSearch: '検索に戻る',
  backToResident: '住民の記録に戻る',

  case_issuance: '新規発行の手続',
  case_renewal: '更新の手続',
  'case_pin-reset': '暗証番号再設定の手続',
  caseNumber: '受付番号 {id}',
  progress: '手続の進行状況',
  stepDone: '完了',
  stepCurrent: '現在の手順',
  step_identity: '本人確認',
  step_fee: '手数料',
  step_keys: '鍵ペア生成と暗証番号',
  step_issue: '電子証明書の発行',
  step_card: 'カードへの書込み',
  'step_pin-reset': '暗証番号の再設定',

  identityIntro: '対面で確認した本人確認書類を選んでください。番号は下4桁だけを記録します。',
  identityDocuments: '確認した本人確認書類',
  'doc_my-number-card': 'マイナンバーカード',
  'doc_resident-card-photo': '住民基本台帳カード（写真付き）',
  doc_passport: '旅券（パスポート）',
  'doc_driving-licence': '運転免許証',
  'doc_other-photo-id': 'その他の写真付き身分証明書',
  last4: '{doc} の番号の下4桁',
  last4Hint: '英大文字と数字4文字（任意）',
  verifiedBy: '確認者: {user}',
  recordIdentity: '本人確認を記録',
  identityNeedsDocument: '本人確認書類を1つ以上選んでください。',
  identityBadLast4: '番号の下4桁は英大文字（A〜Z）と数字（0〜9）の4文字で入力してください。',

  feeIntro: '手数料 {amount} を受け取ってください。',
  paymentMethod: '支払方法',
  method_cash: '現金',
  method_cashless: 'キャッシュレス',
  method_exempt: '免除',
  recordFee: '手数料の受領を記録',
  receipt: '領収書',
  receiptNumber: '領収番号',
  amount: '金額',
  paidAt: '受領日時',
  receivedBy: '取扱者',
  item: '品目',
  printReceipt: '領収書を印刷',
  downloadReceipt: '領収書をダウンロード',
  yen: '{n}円',

  keysIntro:
    '住民の方に暗証番号を決めて入力していただきます。カードの中で鍵ペアが生成され、秘密鍵はカードの外に出ません。',
  cardIdLabel: 'カードID',
  cardIdHint: '空欄のときは新しいカードを用意します（開発用ソフトウェアカード）。',
  signPin: '署名用電子証明書の暗証番号',
  signPinHint: '英大文字（A〜Z）と数字（0〜9）で6〜16文字。5回間違えるとロックされます。',
  signPinConfirm: '署名用電子証明書の暗証番号（確認）',
  authPin: '利用者証明用電子証明書の暗証番号',
  authPinHint: '数字4桁。3回間違えるとロックされます。',
  authPinConfirm: '利用者証明用電子証明書の暗証番号（確認）',
  generateKeys: 'カードで鍵ペアを生成',
  generatingKeys: 'カードで鍵ペアを生成しています…',
  signPinFormat: '署名用の暗証番号は英大文字（A〜Z）と数字（0〜9）で6〜16文字です。',
  authPinFormat: '利用者証明用の暗証番号は数字4桁です。',
  pinMismatch: '{what}が確認欄と一致しません。',

  issueIntro: '署名用電子証明書と利用者証明用電子証明書を発行します。',
  issueRetryIntro: '一部の証明書だけが発行されています。再試行すると残りを発行します。',
  issue: '電子証明書を発行',
  issueRetry: '残りの証明書を発行（再試行）',
  cardIntro: '発行した2つの電子証明書をカードに書き込みます。',
  writeCard: 'カードに書き込む',

  completedTitle: '手続が完了しました',
  completedIntro: '2つの電子証明書を発行し、カードに書き込みました。',
  signSerial: '署名用電子証明書のシリアル番号',
  authSerial: '利用者証明用電子証明書のシリアル番号',
  nextResident: '次の住民へ',

  lossTitle: '紛失届（一時停止）',
  lossIntro:
    'カードの紛失・盗難の届出を受けると、この住民の有効な電子証明書をすべて直ちに失効させます。取り消せません。',
  channel: '届出の方法',
  channel_phone: '電話',
  channel_counter: '窓口',
  confirmLoss: '有効な証明書をすべて直ちに失効させる',
  lossDone: '{n} 件の電子証明書を失効させました。',
  lossNothing: '失効させる有効な電子証明書はありませんでした。',
  revokedSerials: '失効させた証明書のシリアル番号',

  pinResetIntro: '本人確認の後、ロックされた暗証番号をカードの上で新しく設定します。',
  pinSlot: '再設定する暗証番号',
  slot_sign: '署名用',
  slot_auth: '利用者証明用',
  newPin: '新しい暗証番号',
  newPinConfirm: '新しい暗証番号（確認）',
  resetPin: '暗証番号を再設定',
  pinResetDone: '暗証番号を再設定しました。ロックは解除されています。',

  statsTitle: '発行統計',
  statsIntro: '窓口で発行した電子証明書の数（日本時間の日付）を、設計上の発行能力と比べて示します。',
  from: '開始日',
  to: '終了日',
  municipalityCode: '市区町村コード',
  municipalityAll: '空欄で全市区町村',
  show: '表示',
  summary: '概要',
  periodTotal: '期間中の発行数',
  ofWhichRenewals: 'うち更新 {n}',
  cumulative: '累計発行数',
  capacity: '設計上の発行能力',
  utilisation: '発行能力に対する累計の割合',
  dailyChart: '日別の発行数（全体）',
  monthlyChart: '月別の発行数（全体）',
  chartDesc: '{from}から{to}までの{unit}別発行数。署名用と利用者証明用の積み上げ棒グラフ。合計 {total} 件。',
  unitDay: '日',
  unitMonth: '月',
  capacityChart: '設計上の発行能力に対する累計',
  capacityDesc: '累計 {cumulative} 件 ／ 発行能力 {capacity} 件（{percent}）',
  legendSign: '署名用',
  legendAuth: '利用者証明用',
  dataTable: 'データ表',
  dailyTable: '日別・市区町村別',
  monthlyTable: '月別・市区町村別',
  byMunicipalityTable: '市区町村別（期間合計）',
  period: '期間',
  total: '合計',
  renewals: '更新',
  allMunicipalities: '全体',
  noIssuance: 'この期間の発行はありません。',
  downloads: 'データのダウンロード',
  downloadJson: 'JSON',
  downloadCsv: 'CSV',
  statsForbidden: '発行統計は窓口責任者と認証機関職員だけが閲覧できます。',

  err_AlreadyIssuedError:
    'この住民には有効な電子証明書がすでに発行されています。二重発行はできません（法第6条）。紛失のときは紛失届を、有効期限が近いときは更新の手続をしてください。',
  err_RenewalWindowError:
    '今は更新できません。更新できるのは、有効期限が近い有効な電子証明書があるときだけです。それ以外のときは新規発行をしてください。',
  err_ResidentNotEligibleError: 'この住民は転出または死亡しているため、電子証明書を発行できません。',
  err_CaseStateError: 'この手続は今の段階では行えません。画面を更新してやり直してください。',
  err_ConcurrentIssuanceError: '同時に別の発行が行われました。住民の記録を確認してください。',
  err_FactsChangedError: '発行中に住民票の記載が変更されました。もう一度やり直してください。',
  err_CardMismatchError: 'カードがこの手続のものと一致しません。',
  err_PinFormatError: '暗証番号の形式が正しくありません。',
  err_PinIncorrectError: '暗証番号が違います。',
  err_PinLockedError: '暗証番号がロックされています。暗証番号の再設定をしてください。',
  err_UnblockError: 'カードのロックを解除できませんでした。',
  err_CardError: 'カードの操作に失敗しました。',
  err_ForbiddenError: 'この操作を行う権限がありません（他の市区町村の住民、または役割の範囲外）。',
  err_UnknownResidentError: 'その住民は見つかりません。',
  err_UnknownCaseError: 'その手続は見つかりません。',
  err_LoginError: 'ユーザー名またはパスワードが違います。',
  err_LoginLocked: 'ログインの失敗が続いたため、アカウントが一時的にロックされています。',
  err_SessionError: 'セッションが終了しました。もう一度ログインしてください。',
  err_BadRequest: '入力に誤りがあります。',
  err_InternalError: 'サーバーでエラーが発生しました。時間をおいてやり直してください。',
  err_Network: 'サーバーに接続できません。',
  err_Unknown: 'エラーが発生しました。',
};

// One table for both pages; a key defined twice would silently take the second text, so it is a type error.
type Overlap = Extract<keyof typeof counterJa, keyof typeof verifierJa>;
const noOverlap: [Overlap] extends [never] ? true : Overlap = true;
void noOverlap;

const ja = { ...counterJa, ...verifierJa };

export type MessageKey = keyof typeof ja;

const en: Record<MessageKey, string> = {
  ...verifierEn,
  appTitle: 'Certificate counter',
  appSubtitle: 'Public Certification Service for Individuals',
  skipToMain: 'Skip to main content',
  navLabel: 'Main menu',
  navCounter: 'Counter',
  navStats: 'Issuance statistics',
  switchLanguage: '日本語',
  loggedInAs: '{user} ({role})',
  logout: 'Log out',
  roleClerk: 'counter clerk',
  roleSupervisor: 'counter supervisor',
  roleOperator: 'authority operator',
  municipality: 'municipality {code}',

  loginTitle: 'Staff log-in',
  loginIntro: 'Log in with your staff account to work at the counter.',
  username: 'Username',
  password: 'Password',
  login: 'Log in',
  loggingIn: 'Logging in…',
  loggedOut: 'You have logged out.',
  sessionEnded: 'Your session has ended. Please log in again.',

  busy: 'Working…',
  required: 'required',
  optional: 'optional',
  close: 'Close',
  errorTitle: 'Error',
  errorDetail: 'Details: {detail}',

  searchTitle: 'Find a resident',
  searchIntro: "Search this municipality's residents by name and date of birth (either is enough).",
  name: 'Name',
  nameHint: 'As in the register: family name, a space, given name',
  dateOfBirth: 'Date of birth',
  search: 'Search',
  searchNeedsInput: 'Enter a name or a date of birth.',
  results: 'Results',
  resultsCount: '{n} found.',
  noResults: 'No resident matches.',
  select: 'Select',
  selectResident: 'Select {name}',
  residentId: 'Resident ID',
  operatorNoResidents:
    "Authority operators cannot see residents' personal data. Use the issuance statistics.",

  residentTitle: "Resident's record",
  nameKana: 'Name (kana)',
  sex: 'Sex',
  sex_male: 'male',
  sex_female: 'female',
  sex_unknown: 'unknown',
  address: 'Address',
  status: 'Status',
  status_resident: 'resident',
  'status_moved-out': 'moved out',
  status_deceased: 'deceased',
  cardId: 'Card ID',
  none: 'none',
  certificates: 'Certificates',
  noCertificates: 'No certificate has been issued yet.',
  kind: 'Kind',
  kind_sign: 'Signature certificate',
  kind_auth: 'User-authentication certificate',
  serial: 'Serial number',
  certStatus: 'Status',
  cert_valid: 'valid',
  cert_revoked: 'revoked',
  cert_expired: 'expired',
  notAfter: 'Valid until',
  note: 'Note',
  actions: 'Procedures',
  startIssuance: 'New issuance',
  startRenewal: 'Renewal',
  startPinReset: 'PIN reset',
  startLossReport: 'Loss report (suspend)',
  backToSearch: 'Back to search',
  backToResident: "Back to the resident's record",

  case_issuance: 'New issuance',
  case_renewal: 'Renewal',
  'case_pin-reset': 'PIN reset',
  caseNumber: 'Case {id}',
  progress: 'Progress',
  stepDone: 'done',
  stepCurrent: 'current step',
  step_identity: 'Identity check',
  step_fee: 'Fee',
  step_keys: 'Key pairs and PINs',
  step_issue: 'Issue certificates',
  step_card: 'Write to card',
  'step_pin-reset': 'Reset PIN',

  identityIntro:
    'Select the identity documents you checked face to face. Only the last 4 characters of a number are kept.',
  identityDocuments: 'Identity documents checked',
  'doc_my-number-card': 'My Number Card',
  'doc_resident-card-photo': 'Basic resident register card (with photo)',
  doc_passport: 'Passport',
  'doc_driving-licence': 'Driving licence',
  'doc_other-photo-id': 'Other photo ID',
  last4: 'Last 4 characters of the {doc} number',
  last4Hint: '4 capital letters or digits (optional)',
  verifiedBy: 'Checked by: {user}',
  recordIdentity: 'Record identity check',
  identityNeedsDocument: 'Select at least one identity document.',
  identityBadLast4: 'The last 4 characters must be 4 capital letters (A–Z) or digits (0–9).',

  feeIntro: 'Collect the fee of {amount}.',
  paymentMethod: 'Payment method',
  method_cash: 'Cash',
  method_cashless: 'Cashless',
  method_exempt: 'Exempt',
  recordFee: 'Record fee received',
  receipt: 'Receipt',
  receiptNumber: 'Receipt number',
  amount: 'Amount',
  paidAt: 'Paid at',
  receivedBy: 'Received by',
  item: 'Item',
  printReceipt: 'Print receipt',
  downloadReceipt: 'Download receipt',
  yen: '¥{n}',

  keysIntro:
    'The resident chooses and enters the PINs. The key pairs are generated inside the card; the private keys never leave it.',
  cardIdLabel: 'Card ID',
  cardIdHint: 'Leave empty to prepare a new card (development software card).',
  signPin: 'Signature certificate PIN',
  signPinHint: '6 to 16 capital letters (A–Z) and digits (0–9). Locks after 5 wrong tries.',
  signPinConfirm: 'Signature certificate PIN (again)',
  authPin: 'User-authentication certificate PIN',
  authPinHint: '4 digits. Locks after 3 wrong tries.',
  authPinConfirm: 'User-authentication certificate PIN (again)',
  generateKeys: 'Generate key pairs on the card',
  generatingKeys: 'Generating key pairs on the card…',
  signPinFormat: 'The signature PIN is 6 to 16 capital letters (A–Z) and digits (0–9).',
  authPinFormat: 'The user-authentication PIN is 4 digits.',
  pinMismatch: 'The {what} does not match its confirmation.',

  issueIntro: 'Issue the signature certificate and the user-authentication certificate.',
  issueRetryIntro: 'Only part of the certificates were issued. Retrying issues the rest.',
  issue: 'Issue certificates',
  issueRetry: 'Issue the remaining certificate (retry)',
  cardIntro: 'Write the two certificates to the card.',
  writeCard: 'Write to card',

  completedTitle: 'Completed',
  completedIntro: 'Both certificates were issued and written to the card.',
  signSerial: 'Signature certificate serial number',
  authSerial: 'User-authentication certificate serial number',
  nextResident: 'Next resident',

  lossTitle: 'Loss report (suspend)',
  lossIntro:
    'On a report that the card was lost or stolen, every valid certificate of this resident is revoked at once. This cannot be undone.',
  channel: 'Reported by',
  channel_phone: 'Phone',
  channel_counter: 'At the counter',
  confirmLoss: 'Revoke all valid certificates now',
  lossDone: '{n} certificate(s) revoked.',
  lossNothing: 'There was no valid certificate to revoke.',
  revokedSerials: 'Serial numbers revoked',

  pinResetIntro: 'After the identity check, set a new PIN on the card to lift the lock.',
  pinSlot: 'PIN to reset',
  slot_sign: 'Signature',
  slot_auth: 'User authentication',
  newPin: 'New PIN',
  newPinConfirm: 'New PIN (again)',
  resetPin: 'Reset PIN',
  pinResetDone: 'The PIN was reset; the card is unlocked.',

  statsTitle: 'Issuance statistics',
  statsIntro:
    'Certificates issued at counters (dates in Japan time), against the design capacity of the service.',
  from: 'From',
  to: 'To',
  municipalityCode: 'Municipality code',
  municipalityAll: 'Empty for all municipalities',
  show: 'Show',
  summary: 'Summary',
  periodTotal: 'Issued in the period',
  ofWhichRenewals: 'renewals: {n}',
  cumulative: 'Issued in total',
  capacity: 'Design capacity',
  utilisation: 'Share of capacity used',
  dailyChart: 'Certificates issued per day (all)',
  monthlyChart: 'Certificates issued per month (all)',
  chartDesc:
    'Certificates issued per {unit} from {from} to {to}, signature and user-authentication stacked. Total {total}.',
  unitDay: 'day',
  unitMonth: 'month',
  capacityChart: 'Issued in total against the design capacity',
  capacityDesc: '{cumulative} issued of a capacity of {capacity} ({percent})',
  legendSign: 'Signature',
  legendAuth: 'User authentication',
  dataTable: 'Data table',
  dailyTable: 'Per day and municipality',
  monthlyTable: 'Per month and municipality',
  byMunicipalityTable: 'Per municipality (whole period)',
  period: 'Period',
  total: 'Total',
  renewals: 'Renewals',
  allMunicipalities: 'All',
  noIssuance: 'Nothing was issued in this period.',
  downloads: 'Download the data',
  downloadJson: 'JSON',
  downloadCsv: 'CSV',
  statsForbidden: 'Only counter supervisors and authority operators can see the issuance statistics.',

  err_AlreadyIssuedError:
    'This resident already holds a valid certificate. A second one cannot be issued (Art. 6). For a lost card take a loss report first; near expiry, use a renewal.',
  err_RenewalWindowError:
    'Renewal is not possible now: it needs a valid certificate close to its expiry. Otherwise use a new issuance.',
  err_ResidentNotEligibleError: 'This resident has moved out or died: no certificate can be issued.',
  err_CaseStateError: 'This step is not possible at this stage. Reload and try again.',
  err_ConcurrentIssuanceError: "Another issuance happened at the same time. Check the resident's record.",
  err_FactsChangedError: "The resident's register entry changed during issuance. Please start again.",
  err_CardMismatchError: 'The card is not the one this case uses.',
  err_PinFormatError: 'The PIN is not in the required format.',
  err_PinIncorrectError: 'Wrong PIN.',
  err_PinLockedError: 'The PIN is locked. Reset it at the counter.',
  err_UnblockError: 'The card could not be unlocked.',
  err_CardError: 'The card operation failed.',
  err_ForbiddenError:
    'You are not allowed to do this (a resident of another municipality, or outside your role).',
  err_UnknownResidentError: 'No such resident.',
  err_UnknownCaseError: 'No such case.',
  err_LoginError: 'Wrong username or password.',
  err_LoginLocked: 'The account is locked for a while after too many failed log-ins.',
  err_SessionError: 'Your session has ended. Please log in again.',
  err_BadRequest: 'The input is not valid.',
  err_InternalError: 'The server failed. Please try again later.',
  err_Network: 'The server cannot be reached.',
  err_Unknown: 'Something went wrong.',
};

export type Lang = 'ja' | 'en';
const MESSAGES: Record<Lang, Record<MessageKey, string>> = { ja, en };
const STORAGE_KEY = 'jpki.counter.lang';

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export interface I18n {
  lang: Lang;
  setLang(lang: Lang): void;
  t: Translate;
  /** A key built at run time (e.g. `doc_${type}`); falls back to the raw value when unknown. */
  tk(prefix: string, value: string): string;
  number(n: number): string;
  dateTime(iso: string): string;
  date(iso: string): string;
  /** A month written YYYY-MM, e.g. 2026年5月 / May 2026. */
  month(ym: string): string;
  /** Whole yen: 1,234円 / ¥1,234. */
  yen(n: number): string;
}

const I18nContext = createContext<I18n | null>(null);

function initialLang(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'ja' || saved === 'en') return saved;
  } catch {
    // storage unavailable: Japanese
  }
  return 'ja';
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);

  const setLang = useCallback((l: Lang) => {
    setLangState(l);
    try {
      localStorage.setItem(STORAGE_KEY, l);
    } catch {
      // not kept across reloads then
    }
  }, []);

  const value = useMemo<I18n>(() => {
    const table = MESSAGES[lang];
    const t: Translate = (key, vars) =>
      table[key].replace(/\{(\w+)\}/g, (m, name: string) => (vars && name in vars ? String(vars[name]) : m));
    const locale = lang === 'ja' ? 'ja-JP' : 'en-GB';
    const dt = new Intl.DateTimeFormat(locale, {
      timeZone: 'Asia/Tokyo',
      dateStyle: 'medium',
      timeStyle: 'short',
    });
    const d = new Intl.DateTimeFormat(locale, { timeZone: 'Asia/Tokyo', dateStyle: 'medium' });
    const nf = new Intl.NumberFormat(locale);
    const mf = new Intl.DateTimeFormat(locale, { timeZone: 'UTC', year: 'numeric', month: 'long' });
    return {
      lang,
      setLang,
      t,
      tk: (prefix, v) => {
        const key = `${prefix}${v}` as MessageKey;
        return key in table ? table[key] : v;
      },
      number: (n) => nf.format(n),
      dateTime: (iso) => dt.format(new Date(iso)),
      date: (iso) => d.format(new Date(iso)),
      month: (ym) => mf.format(new Date(`${ym}-01T00:00:00Z`)),
      yen: (n) => t('yen', { n: nf.format(n) }),
    };
  }, [lang, setLang]);

  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const v = useContext(I18nContext);
  if (!v) throw new Error('useI18n outside I18nProvider');
  return v;
}
