// A real authority with residents in the register and their signature certificates, for the
// application tests: keys made by openssl, certificates issued with the register's four facts.

import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { applicationContent, applicationXml } from '../../src/applications/document.ts';
import type { Authority, IssuedCertificate } from '../../src/authority/authority.ts';
import { SoftwareSigner } from '../../src/keys/software.ts';
import { basicFactsOf } from '../../src/register/facts.ts';
import { getResident, recordEvent } from '../../src/register/register.ts';
import { signDocument } from '../../src/signing/sign-document.ts';
import { opensslCsr } from '../helpers/openssl.ts';
import { newResidentId, newSourceId, TARO } from '../register/helpers.ts';

export const HANAKO = {
  ...TARO,
  name: '佐藤 花子',
  nameKana: 'サトウ ハナコ',
  dateOfBirth: '1985-07-07',
  sex: 'F',
};

export interface Holder {
  residentId: string;
  signer: SoftwareSigner;
  cert: IssuedCertificate;
}

/** Registers a resident and issues a certificate of `kind` (with the register's facts for 'sign'). */
export async function holder(
  authority: Authority,
  dir: string,
  facts: typeof TARO = TARO,
  kind: 'sign' | 'auth' = 'sign',
): Promise<Holder> {
  const residentId = newResidentId();
  await recordEvent(authority.store, {
    sourceEventId: newSourceId('reg'),
    residentId,
    type: 'registered',
    effectiveDate: '2020-01-01',
    facts,
  });
  const resident = (await getResident(authority.store, residentId))!;
  const { keyPath, csrPath } = opensslCsr(dir, `${residentId}-${kind}`, 'ec');
  const cert = await authority.issue({
    kind,
    csr: readFileSync(csrPath, 'utf8'),
    facts: kind === 'sign' ? basicFactsOf(resident) : undefined,
    residentRef: residentId,
  });
  return {
    residentId,
    signer: SoftwareSigner.fromKeyObject(createPrivateKey(readFileSync(keyPath, 'utf8'))),
    cert,
  };
}

/** The application signed as the resident's card helper would sign it. */
export async function signApplication(
  authority: Authority,
  who: Holder,
  procedureId: string,
  form: unknown,
  format: 'cms' | 'xml' = 'cms',
): Promise<Buffer> {
  const content =
    format === 'cms'
      ? applicationContent(procedureId, form)
      : Buffer.from(applicationXml(procedureId, form), 'utf8');
  const { output } = await signDocument({
    format,
    signer: who.signer,
    certificate: who.cert.der,
    chain: [authority.certificate(who.cert.kind)],
    content,
  });
  return output;
}

export const VEHICLE_FORM = {
  vehicleIdentificationNumber: 'ZVW30-1234567',
  model: 'DAA-ZVW30',
  ownerAddress: '東京都千代田区霞が関2丁目1番2号',
  parkingAddress: '東京都千代田区霞が関2丁目1番3号',
  acquisitionPrice: 2_450_000,
  acquisitionDate: '2026-04-01',
};

export const TAX_FORM = {
  taxYear: 2007,
  taxOffice: '麹町税務署',
  income: 5_200_000,
  deductions: 1_300_000,
  claimElectronicCertificateCredit: true,
};
