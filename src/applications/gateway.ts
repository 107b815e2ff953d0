// The submission gateway (MISSION.md parts 9 and 14): a resident's signed application is checked
// at receipt (form schema, signature and certificate status through the project's validator, the
// signed content against the submitted form, the signer against the logged-in resident), time
// stamped by the authority's TSA, stored with its evidence in one transaction (one part per
// receiving agency, an audit entry), and answered with a receipt signed by the gateway.
//
// The receipt's signature is an RFC 3161 time-stamp token of the authority's TSA over the SHA-256
// of the receipt's canonical JSON: a CMS signature by a key the authority already holds in its key
// store, under the root, with a certificate every verifier already trusts; it also dates the
// receipt. (A dedicated gateway certificate would need a new profile in core/profiles.ts.)

import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { appendAudit, residentActor } from '../audit/audit-log.ts';
import { canonicalJson, type JsonObject } from '../audit/canonical-json.ts';
import type { Authority } from '../authority/authority.ts';
import type { BasicFacts } from '../core/basic-facts.ts';
import { addSignatureTimeStamp, signatureTimeStampImprint as cmsImprint } from '../core/cms/index.ts';
import type { ParsedCertificate } from '../core/path/index.ts';
import { encodePem } from '../core/pem.ts';
import { buildTimeStampRequest, verifyTimeStampResponse, verifyTimeStampToken } from '../core/tsp/index.ts';
import { addXadesSignatureTimeStamp, signatureTimeStampImprint as xmlImprint } from '../core/xml/index.ts';
import { basicFactsOf } from '../register/facts.ts';
import { getResident } from '../register/register.ts';
import { detectFormat } from '../signing/sign-document.ts';
import type { Database } from '../store/schema.ts';
import { ocspRequest, RevocationSource } from '../verifier/revocation-source.ts';
import { type ValidationReport, verifySignature } from '../verifier/verify-signature.ts';
import { type Catalogue, defaultCatalogue, type FieldError, type Procedure } from './catalogue.ts';
import { sameApplication, signedApplication } from './document.ts';
import type { ApplicationTables } from './schema.ts';

/** Largest signed document accepted (the form plus signature, certificates and time stamps). */
export const MAX_SIGNED_DOCUMENT_BYTES = 1024 * 1024;
/** Largest form (canonical JSON). */
export const MAX_FORM_BYTES = 256 * 1024;

export type ApplicationErrorCode =
  | 'bad-request'
  | 'unknown-procedure'
  | 'invalid-form'
  | 'too-large'
  | 'refused'
  | 'idempotency-conflict'
  | 'not-found'
  | 'invalid-transition';

export class ApplicationError extends Error {
  override name = 'ApplicationError';
  constructor(
    readonly code: ApplicationErrorCode,
    message: string,
    readonly details: {
      fieldErrors?: FieldError[];
      summary?: { ja: string; en: string };
      report?: ValidationReport;
    } = {},
  ) {
    super(message);
  }
}

export interface SubmitInput {
  procedureId: string;
  form: unknown;
  /** The application signed as CMS with attached content, or as enveloped XML (see document.ts). */
  signedDocument: Uint8Array;
  /** Chosen by the client; the same key and content give the same receipt, never a second case. */
  idempotencyKey: string;
  /** The logged-in resident: the certificate's four facts must be theirs. */
  residentRef?: string;
}

export interface Receipt {
  submissionId: string;
  procedureId: string;
  procedureName: { ja: string; en: string };
  receivedAt: string;
  /** The signature time stamp's time (the gateway's, or the resident's own if the signature had one). */
  timestampTime: string;
  /** SHA-256 of the signed document as received. */
  signedDocumentSha256: string;
  signer: { serial: string; name?: string };
  parts: { id: string; agency: string; fee: number }[];
  fee: number;
}

export interface SubmitResult {
  receipt: Receipt;
  /** The gateway's signature over the receipt: a time-stamp token (DER) over SHA-256(canonical receipt). */
  receiptSignature: Buffer;
  /** True when this is the answer to an earlier submission with the same idempotency key. */
  replayed: boolean;
}

export type PartStatus = 'received' | 'accepted' | 'correction-requested' | 'rejected' | 'completed';

export interface ApplicationCase {
  id: string;
  procedureId: string;
  residentRef: string | null;
  form: unknown;
  receivedAt: string;
  timestampTime: string;
  fee: number;
  signer: { serial: string; subject: string };
  report: JsonObject;
  revocationEvidence: RevocationEvidence;
  receipt: Receipt;
  parts: { id: string; agency: string; fee: number; status: PartStatus; updatedAt: string }[];
  history: {
    partId: string;
    at: string;
    actor: string;
    action: string;
    status: PartStatus;
    note: string | null;
  }[];
}

export interface RevocationEvidence {
  /** OCSP responses (base64 DER) the check used, from the authority's responder. */
  ocsp: string[];
  /** CRLs the check used (the root CRL for the issuing CA): scope and number in the authority's store. */
  crls: { ca: string; number: number }[];
}

type Db = Kysely<Database & ApplicationTables>;

/**
 * Revocation data straight from the authority, in process: an OCSP response for a certificate of
 * an issuing CA, the current root CRL for an issuing CA's certificate. What was used is recorded as
 * the application's evidence.
 */
class AuthoritySource extends RevocationSource {
  readonly evidence: RevocationEvidence = { ocsp: [], crls: [] };
  constructor(private readonly authority: Authority) {
    super({ online: true });
  }
  override async fetchFor(items: readonly { cert: ParsedCertificate; issuer: ParsedCertificate }[]) {
    const errors: string[] = [];
    let fetched = 0;
    const root = this.authority.certificate('root');
    for (const { cert, issuer } of items) {
      if (issuer.der.equals(root)) {
        let crl = await this.authority.currentCrl('root', 'full');
        if (!crl) {
          await this.authority.generateCrl('root');
          crl = await this.authority.currentCrl('root', 'full');
        }
        if (!crl || this.evidence.crls.some((c) => c.ca === 'root' && c.number === crl.number)) continue;
        this.addCrl(crl.der);
        this.evidence.crls.push({ ca: 'root', number: crl.number });
        fetched++;
      } else {
        const answer = await this.authority.ocsp(ocspRequest(cert, issuer));
        if (answer.status !== 'successful') {
          errors.push(`the authority's OCSP responder answered ${answer.status}`);
          continue;
        }
        this.addOcspResponse(answer.der);
        this.evidence.ocsp.push(answer.der.toString('base64'));
        fetched++;
      }
    }
    return { fetched, errors };
  }
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{8,128}$/;

export class ApplicationGateway {
  readonly catalogue: Catalogue;
  readonly #db: Db;

  constructor(
    readonly authority: Authority,
    opts: { catalogue?: Catalogue; now?: () => Date } = {},
  ) {
    this.catalogue = opts.catalogue ?? defaultCatalogue();
    this.#db = authority.store.db.withTables<ApplicationTables>();
    this.now = opts.now ?? (() => new Date());
  }
  private readonly now: () => Date;

  async submit(input: SubmitInput): Promise<SubmitResult> {
    if (!(input.signedDocument instanceof Uint8Array) || input.signedDocument.length === 0)
      throw new ApplicationError('bad-request', 'the signed document is missing');
    if (input.signedDocument.length > MAX_SIGNED_DOCUMENT_BYTES)
      throw new ApplicationError(
        'too-large',
        `the signed document is larger than ${MAX_SIGNED_DOCUMENT_BYTES} bytes`,
      );
    if (typeof input.idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(input.idempotencyKey))
      throw new ApplicationError(
        'bad-request',
        'the idempotency key must be 8 to 128 of A-Z a-z 0-9 _ . : -',
      );
    const procedure = this.catalogue.procedure(input.procedureId);
    if (!procedure) throw new ApplicationError('unknown-procedure', `no procedure ${input.procedureId}`);
    let formJson: string;
    try {
      formJson = canonicalJson(input.form);
    } catch (e) {
      throw new ApplicationError('bad-request', `the form is not JSON data: ${(e as Error).message}`);
    }
    if (Buffer.byteLength(formJson) > MAX_FORM_BYTES)
      throw new ApplicationError('too-large', `the form is larger than ${MAX_FORM_BYTES} bytes`);
    const fieldErrors = this.catalogue.validateForm(procedure.id, input.form);
    if (fieldErrors.length)
      throw new ApplicationError('invalid-form', 'the form does not match the procedure’s schema', {
        fieldErrors,
      });

    const document = Buffer.from(input.signedDocument);
    const documentSha256 = sha256(document);
    const requestSha256 = sha256(
      canonicalJson({
        procedureId: procedure.id,
        form: input.form as JsonObject,
        residentRef: input.residentRef ?? null,
      }) + documentSha256,
    );
    const earlier = await this.replay(input.idempotencyKey, requestSha256);
    if (earlier) return earlier;

    const receivedAt = this.now();
    const checked = await this.check(procedure, input, document, receivedAt);
    const stamped = checked.report.timestampTime
      ? { evidence: document, time: new Date(checked.report.timestampTime) }
      : await this.timeStamp(procedure.signatureFormat, document);

    const id = randomBytes(16).toString('hex');
    const receipt: Receipt = {
      submissionId: id,
      procedureId: procedure.id,
      procedureName: procedure.name,
      receivedAt: receivedAt.toISOString(),
      timestampTime: stamped.time.toISOString(),
      signedDocumentSha256: documentSha256,
      signer: { serial: checked.signer.serial, name: checked.signer.basicFacts?.name },
      parts: procedure.parts.map((p) => ({ id: p.id, agency: p.agency, fee: p.fee })),
      fee: procedure.fee,
    };
    const receiptSignature = await this.signReceipt(receipt);
    const { signedContent: _content, ...reportJson } = checked.report;
    const at = receivedAt.getTime();
    try {
      // A Kysely transaction (not BEGIN IMMEDIATE): the audit log appends inside it only then.
      await this.authority.store.db.transaction().execute(async (trx) => {
        const db = trx.withTables<ApplicationTables>();
        await db
          .insertInto('applications')
          .values({
            id,
            procedure_id: procedure.id,
            idempotency_key: input.idempotencyKey,
            request_sha256: requestSha256,
            resident_ref: input.residentRef ?? null,
            form_json: formJson,
            signature_format: procedure.signatureFormat,
            evidence: stamped.evidence,
            signer_serial: checked.signer.serial,
            signer_subject: checked.signer.subject,
            report_json: JSON.stringify(reportJson),
            revocation_json: JSON.stringify(checked.evidence),
            timestamp_time: stamped.time.getTime(),
            received_at: at,
            fee: procedure.fee,
            receipt_json: canonicalJson(receipt),
            receipt_token: receiptSignature,
          })
          .execute();
        await db
          .insertInto('application_parts')
          .values(
            procedure.parts.map((p) => ({
              application_id: id,
              part_id: p.id,
              agency_id: p.agency,
              fee: p.fee,
              status: 'received' as const,
              updated_at: at,
            })),
          )
          .execute();
        await db
          .insertInto('application_part_events')
          .values(
            procedure.parts.map((p) => ({
              application_id: id,
              part_id: p.id,
              at,
              actor: 'gateway',
              action: 'receive',
              status: 'received',
              note: null,
            })),
          )
          .execute();
        const agency = this.catalogue.agencies.get(procedure.agency);
        await appendAudit(trx, {
          actor: input.residentRef ? residentActor(input.residentRef) : 'anonymous',
          action: 'application.submit',
          subject: `application:${id}`,
          municipalityCode: agency?.municipalityCode ?? null,
          at,
          details: {
            procedure: procedure.id,
            signer: checked.signer.serial,
            parts: procedure.parts.map((p) => p.agency),
            timestamp: stamped.time.toISOString(),
          },
        });
      });
    } catch (e) {
      // Two submissions with one key at the same moment: the loser answers as a replay (or a conflict).
      if (isUniqueViolation(e)) {
        const winner = await this.replay(input.idempotencyKey, requestSha256);
        if (winner) return winner;
      }
      throw e;
    }
    return { receipt, receiptSignature, replayed: false };
  }

  /** The earlier answer for this key; a conflict when the key was used for something else. */
  private async replay(key: string, requestSha256: string): Promise<SubmitResult | undefined> {
    const row = await this.#db
      .selectFrom('applications')
      .select(['request_sha256', 'receipt_json', 'receipt_token'])
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.request_sha256 !== requestSha256)
      throw new ApplicationError(
        'idempotency-conflict',
        'this idempotency key was already used for a different application',
      );
    return {
      receipt: JSON.parse(row.receipt_json) as Receipt,
      receiptSignature: Buffer.from(row.receipt_token),
      replayed: true,
    };
  }

  /** The checks at receipt; throws ApplicationError('refused') with the report's reason. */
  private async check(procedure: Procedure, input: SubmitInput, document: Buffer, at: Date) {
    const format = detectFormat(document);
    if (format !== procedure.signatureFormat)
      throw new ApplicationError(
        'refused',
        `this procedure takes ${procedure.signatureFormat === 'xml' ? 'an XML' : 'a CMS'} signature`,
        {
          summary: {
            ja: `この手続は${procedure.signatureFormat === 'xml' ? 'XML' : 'CMS'}形式の署名で申請してください。`,
            en: `This procedure takes a ${procedure.signatureFormat.toUpperCase()} signature.`,
          },
        },
      );
    const source = new AuthoritySource(this.authority);
    const report = await verifySignature({
      signature: document,
      trust: [this.authority.certificate('root')],
      untrusted: [this.authority.certificate('sign')],
      source,
      at,
    });
    const refuse = (message: string, summary: { ja: string; en: string }): never => {
      throw new ApplicationError('refused', message, { summary, report: withoutContent(report) });
    };
    if (report.indication !== 'TOTAL_PASSED' || !report.signer)
      refuse(`the signature did not pass: ${report.subIndication ?? report.indication}`, report.summary);
    const signer = report.signer!;
    if (signer.kind !== procedure.certificate || !signer.basicFacts)
      refuse('the application must be signed with a signature certificate', {
        ja: '申請には署名用電子証明書による署名が必要です。',
        en: 'The application must be signed with a signature certificate.',
      });
    if (
      !report.signedContent ||
      !sameApplication(signedApplication(format, report.signedContent), procedure.id, input.form)
    )
      refuse('the signed document is not the submitted application', {
        ja: '署名された内容が送信された申請内容と一致しません。',
        en: 'What was signed is not the application that was submitted.',
      });
    if (input.residentRef !== undefined) {
      const resident = await getResident(this.authority.store, input.residentRef);
      if (!resident || !sameFacts(basicFactsOf(resident), signer.basicFacts!))
        refuse('the certificate is not the logged-in resident’s', {
          ja: '署名者の電子証明書の基本4情報がログイン中の利用者と一致しません。',
          en: 'The signer’s certificate does not carry the logged-in resident’s four basic facts.',
        });
    }
    return { report, signer, evidence: source.evidence };
  }

  /** CAdES-T / XAdES-T at receipt: the authority's TSA stamps the signature value. */
  private async timeStamp(
    format: 'cms' | 'xml',
    document: Buffer,
  ): Promise<{ evidence: Buffer; time: Date }> {
    const imprint =
      format === 'cms'
        ? cmsImprint(document)
        : { algorithm: 'sha256' as const, digest: xmlImprint(document.toString('utf8')) };
    const token = await this.stamp(imprint.algorithm, imprint.digest);
    const evidence =
      format === 'cms'
        ? addSignatureTimeStamp(document, token.der)
        : Buffer.from(addXadesSignatureTimeStamp(document.toString('utf8'), token.der), 'utf8');
    return { evidence, time: token.time };
  }

  private async stamp(algorithm: 'sha256' | 'sha384' | 'sha512' | 'sha1' | 'sha224', digest: Buffer) {
    const request = buildTimeStampRequest({
      digest,
      hashAlgorithm: algorithm,
      nonce: randomBytes(8),
      certReq: true,
    });
    const response = await this.authority.timeStamp(request);
    const v = verifyTimeStampResponse(response.der, request);
    if (!v.valid || !v.token || !v.genTime)
      throw new Error(`the authority's TSA did not stamp: ${v.message}`);
    return { der: v.token, time: v.genTime };
  }

  private async signReceipt(receipt: Receipt): Promise<Buffer> {
    return (await this.stamp('sha256', createHash('sha256').update(canonicalJson(receipt)).digest())).der;
  }

  /** The case: the application, its parts with their status, and the history of every part. */
  async getApplication(id: string): Promise<ApplicationCase | undefined> {
    const row = await this.#db.selectFrom('applications').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const parts = await this.#db
      .selectFrom('application_parts')
      .selectAll()
      .where('application_id', '=', id)
      .orderBy('part_id')
      .execute();
    const events = await this.#db
      .selectFrom('application_part_events')
      .selectAll()
      .where('application_id', '=', id)
      .orderBy('id')
      .execute();
    const receipt = JSON.parse(row.receipt_json) as Receipt;
    const order = new Map(receipt.parts.map((p, i) => [p.id, i]));
    return {
      id: row.id,
      procedureId: row.procedure_id,
      residentRef: row.resident_ref,
      form: JSON.parse(row.form_json),
      receivedAt: new Date(Number(row.received_at)).toISOString(),
      timestampTime: new Date(Number(row.timestamp_time)).toISOString(),
      fee: Number(row.fee),
      signer: { serial: row.signer_serial, subject: row.signer_subject },
      report: JSON.parse(row.report_json),
      revocationEvidence: JSON.parse(row.revocation_json),
      receipt,
      parts: parts
        .map((p) => ({
          id: p.part_id,
          agency: p.agency_id,
          fee: Number(p.fee),
          status: p.status as PartStatus,
          updatedAt: new Date(Number(p.updated_at)).toISOString(),
        }))
        .sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0)),
      history: events.map((e) => ({
        partId: e.part_id,
        at: new Date(Number(e.at)).toISOString(),
        actor: e.actor,
        action: e.action,
        status: e.status as PartStatus,
        note: e.note,
      })),
    };
  }

  /**
   * The evidence file: the signature as received with the gateway's time stamp (CAdES-T .p7s or
   * XAdES-T .xml). `jpki verify FILE --trust root.pem --crl …` checks it offline.
   */
  async evidence(id: string): Promise<{ format: 'cms' | 'xml'; data: Buffer } | undefined> {
    const row = await this.#db
      .selectFrom('applications')
      .select(['signature_format', 'evidence'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row
      ? { format: row.signature_format as 'cms' | 'xml', data: Buffer.from(row.evidence) }
      : undefined;
  }

  /** The certificate that signs receipts (the authority's TSA), PEM. */
  receiptCertificatePem(): string {
    return encodePem('CERTIFICATE', this.authority.certificate('tsa'));
  }
}

/**
 * Checks a receipt's signature: a valid time-stamp token of the authority's TSA over the receipt's
 * canonical JSON. Returns the time it was signed, or undefined when it does not verify.
 */
export function verifyReceipt(
  receipt: Receipt,
  signature: Uint8Array,
  tsaCertificate: Buffer,
): Date | undefined {
  const v = verifyTimeStampToken(signature, { data: Buffer.from(canonicalJson(receipt), 'utf8') });
  if (!v.valid || !v.tsaCertificate || !Buffer.from(v.tsaCertificate).equals(tsaCertificate))
    return undefined;
  return v.genTime;
}

function sameFacts(register: BasicFacts, certificate: BasicFacts): boolean {
  return (
    register.name === certificate.name &&
    register.dateOfBirth === certificate.dateOfBirth &&
    register.sex === certificate.sex &&
    register.address === certificate.address
  );
}

function withoutContent(r: ValidationReport): ValidationReport {
  const { signedContent: _c, ...rest } = r;
  return rest;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
