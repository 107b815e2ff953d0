// Shared by the register and counter tests: residents, CSRs, OCSP requests.

import { generateKeyPairSync, randomBytes, randomInt, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { AsnConvert } from '@peculiar/asn1-schema';
import { bitString, explicit, integer, NULL, oid, sequence, set, utf8String } from '../../src/core/der.ts';
import { OID } from '../../src/core/oids.ts';
import { municipalityCheckDigit } from '../../src/register/codes.ts';
import type { RegisterEventInput } from '../../src/register/register.ts';
import { openssl } from '../helpers/openssl.ts';

/** 千代田区 and 新宿区 (real codes with their check digits). */
export const CHIYODA = '131016';
export const SHINJUKU = '131041';

const usedIds = new Set<string>();
/** A fresh random 11-digit resident id (unique within the test process). */
export function newResidentId(): string {
  for (;;) {
    const id = String(randomInt(10_000_000_000, 100_000_000_000));
    if (!usedIds.has(id)) {
      usedIds.add(id);
      return id;
    }
  }
}

let sourceCounter = 0;
export function newSourceId(prefix = 'evt'): string {
  sourceCounter++;
  return `${prefix}-${randomBytes(6).toString('hex')}-${sourceCounter}`;
}

export const TARO = {
  municipalityCode: CHIYODA,
  name: '山田 太郎',
  nameKana: 'ヤマダ タロウ',
  dateOfBirth: '1980-04-01',
  sex: 'M',
  address: '東京都千代田区霞が関2丁目1番2号',
};

/** A registration event for a new resident. */
export function registration(
  residentId: string,
  effectiveDate = '2020-01-01',
  facts = TARO,
): RegisterEventInput {
  return { sourceEventId: newSourceId('reg'), residentId, type: 'registered', effectiveDate, facts };
}

export function validMunicipalityCode(five: string): string {
  return `${five}${municipalityCheckDigit(five)}`;
}

/** PKCS#10 requests with distinct subjects over one RSA-2048 key (key generation is the slow part). */
export function makeCsrs(count: number): Buffer[] {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const sigAlg = sequence(oid(OID.sha256WithRSAEncryption), NULL);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const name = sequence(
      set(sequence(oid('2.5.4.3'), utf8String(`card-${i}-${randomBytes(4).toString('hex')}`))),
    );
    const info = sequence(integer(0), name, spki, explicit(0));
    out.push(sequence(info, sigAlg, bitString(sign('sha256', info, privateKey))));
  }
  return out;
}

/** An OCSP request (DER, no nonce) for a certificate, made by openssl as a verifier would. */
export function ocspRequest(dir: string, issuerPemPath: string, certPem: string, name: string): Buffer {
  const certPath = `${dir}/${name}.pem`;
  const out = `${dir}/${name}.req.der`;
  writeFileSync(certPath, certPem);
  const r = openssl(['ocsp', '-issuer', issuerPemPath, '-cert', certPath, '-no_nonce', '-reqout', out]);
  if (r.status !== 0) throw new Error(`openssl ocsp failed: ${r.output}`);
  return readFileSync(out);
}

export function ocspCertStatus(der: Buffer): { status: 'good' | 'revoked' | 'unknown'; reason?: number } {
  const resp = AsnConvert.parse(der, OCSPResponse);
  if (!resp.responseBytes) throw new Error(`OCSP response status ${resp.responseStatus}`);
  const basic = AsnConvert.parse(resp.responseBytes.response.buffer, BasicOCSPResponse);
  const s = basic.tbsResponseData.responses[0]!.certStatus;
  if (s.revoked) return { status: 'revoked', reason: s.revoked.revocationReason?.reason };
  return { status: s.unknown !== undefined ? 'unknown' : 'good' };
}

/** Waits until `check` returns true (polling every `everyMs`), or throws after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000, everyMs = 5): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const HEADER = 'resident_id,municipality_code,name,name_kana,date_of_birth,sex,address';

/** A generated population as a stream of CSV chunks: never the whole file in memory. */
export function* generatedCsv(rows: number, firstId: number, rowsPerChunk = 500): Generator<string> {
  const families = ['山田', '佐藤', '鈴木', '高橋', '田中', '伊藤', '渡辺', '中村'];
  const given = ['太郎', '花子', '一郎', '美咲', '健太', '陽菜'];
  const cities: [string, string][] = [
    [validMunicipalityCode('13101'), '東京都千代田区'],
    [validMunicipalityCode('13104'), '東京都新宿区'],
    [validMunicipalityCode('27100'), '大阪府大阪市'],
    [validMunicipalityCode('01100'), '北海道札幌市'],
  ];
  let chunk = `${HEADER}\r\n`;
  for (let i = 0; i < rows; i++) {
    const [code, city] = cities[i % cities.length]!;
    const dob = `19${String(30 + (i % 70)).padStart(2, '0')}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`;
    chunk += `${firstId + i},${code},${families[i % 8]} ${given[i % 6]},,${dob},${['M', 'F', 'U'][i % 3]},"${city}一丁目${i}番地"\r\n`;
    if ((i + 1) % rowsPerChunk === 0) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}
