import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { sql } from 'kysely';
import { type BasicFacts, normaliseBasicFacts } from '../core/basic-facts.ts';
import { signCertificate } from '../core/certificate.ts';
import { buildCrl, issuingDistributionPoint, releaseCrl } from '../core/crl.ts';
import {
  checkPartition,
  checkPartitionCount,
  crlPartitionOf,
  crlScopeId,
  partitionSerialRange,
} from '../core/crl-partition.ts';
import { verifyCsr } from '../core/csr.ts';
import { readChildren, readTlv, slice } from '../core/der.ts';
import {
  buildBasicResponse,
  type CertStatus,
  createResponder,
  errorResponse,
  type IssuerHashes,
  issuerHashes,
  matchesIssuer,
  OcspRequestError,
  type OcspResponder,
  parseOcspRequest,
} from '../core/ocsp.ts';
import { decodePem, encodePem } from '../core/pem.ts';
import {
  type CaId,
  type CertificateKind,
  type CertificateTemplate,
  type CrlIssuerId,
  type EndEntityProfile,
  endEntityProfile,
  endEntityTemplate,
  type IssuerInfo,
  issuingCaTemplate,
  ocspResponderTemplate,
  type PublicationPoints,
  rootCaTemplate,
  timeStampingTemplate,
  verifierCaTemplate,
  verifierClientTemplate,
} from '../core/profiles.ts';
import { canonicalSerial, newSerial, serialHex } from '../core/serial.ts';
import type { KeyAlgorithm, Signer } from '../core/signer.ts';
import { keyIdentifier } from '../core/spki.ts';
import { respondToTimeStampRequest } from '../core/tsp/index.ts';
import type { KeyStore } from '../keys/keystore.ts';
import { SoftwareSigner } from '../keys/software.ts';
import {
  CertificateWriter,
  certificateStatus,
  crlDer,
  type Db,
  DuplicateCrlNumberError,
  DuplicateSerialError,
  findCertificate,
  findRevocation,
  insertCertificate,
  insertCrl,
  latestCrl,
  latestCrls,
  maxRevocationId,
  nextCrlNumber,
  revoke as revokeInStore,
  streamRevocationPages,
} from '../store/certificates.ts';
import { openDatabase, type Store } from '../store/db.ts';
import {
  type AuthorityConfig,
  CA_CERTIFICATE_IDS,
  type CaCertificateId,
  ConfigError,
  DEFAULTS,
  dataPaths,
  type KeyStoreConfig,
  keyLabel,
  readConfig,
  urls,
} from './config.ts';
import { createDevelopmentPassphrase, openKeyStore } from './keystores.ts';
import { OcspResponses, ocspIssuer, presignSettings, statusKeyOf } from './ocsp-responses.ts';
import { type RevocationReason, reasonCode } from './reasons.ts';

export class AuthorityError extends Error {
  override name = 'AuthorityError';
}

export interface InitOptions {
  dataDir: string;
  algorithm?: KeyAlgorithm;
  baseUrl?: string;
  keyStore?: KeyStoreConfig;
  /** CRL partitions per issuing CA (a power of two, 1 to 4096); default 64. Fixed for the CA's life. */
  crlPartitions?: number;
  /** Written into authority.json; absent means 'public' (docs/verifiers.md). `jpki init` writes 'verifiers'. */
  revocationAccess?: 'public' | 'verifiers';
  env?: NodeJS.ProcessEnv;
  now?: Date;
}

export interface InitResult {
  config: AuthorityConfig;
  /** Set when a development passphrase was generated into the data directory. */
  generatedPassphraseFile?: string;
  operatorTokenFile: string;
}

export interface IssueRequest {
  kind: CertificateKind;
  /** PKCS#10, PEM text or DER. */
  csr: string | Uint8Array;
  /** Required for `sign`, refused for `auth`. */
  facts?: BasicFacts;
  localities?: { prefecture?: string; city?: string };
  /** Which counter issued it; part of the opaque CN. */
  counterId?: string;
  residentRef?: string;
}

export interface IssueOptions {
  /**
   * Runs in the transaction that stores the certificate, after the insert: the counter uses it to
   * take the resident's one slot per kind and revoke the certificate being replaced. If it throws,
   * nothing is stored.
   */
  inTransaction?: (trx: Db, issued: IssuedCertificate) => Promise<void>;
}

export interface IssuedVerifierCertificate {
  serial: string;
  verifierId: number;
  der: Buffer;
  pem: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

interface VerifierCa {
  signer: Signer;
  certDer: Buffer;
  info: IssuerInfo;
  notAfter: Date;
}

/** Generates the verifier CA's key and certificate under the root; never over an existing key. */
async function createVerifierCa(
  keys: KeyStore,
  config: AuthorityConfig,
  rootSigner: Signer,
  rootInfo: IssuerInfo,
  notBefore: Date,
  certPath: string,
): Promise<void> {
  if (await keys.has(keyLabel('verifier')))
    throw new AuthorityError(
      `the key store already holds a key labelled ${keyLabel('verifier')}; refusing to overwrite it`,
    );
  const u = urls(config.baseUrl);
  const key = await keys.generate(keyLabel('verifier'), config.algorithm);
  const der = await issueWith(
    rootSigner,
    verifierCaTemplate(
      key.publicKeySpki,
      rootInfo,
      { crl: u.crl('root'), caIssuers: u.caCert('root'), cps: u.cps },
      notBefore,
      config.validity.caYears,
    ),
    rootInfo,
    key.publicKeySpki,
  );
  writeCert(certPath, der);
}

export interface IssuedCertificate {
  serial: string;
  kind: CertificateKind;
  der: Buffer;
  pem: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CrlResult {
  ca: CrlIssuerId;
  /** The partition, for a partition's CRL; absent for the CA's complete CRLs. */
  partition?: number;
  /** The CRL series: `sign`, or `sign-p17` for a partition (the file name without `.crl`). */
  scope: string;
  number: number;
  kind: 'full' | 'delta';
  baseNumber: number | null;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  sha256: string;
}

export interface OcspAnswer {
  der: Buffer;
  /** For GET: whether an HTTP cache may keep it, and until when it is fresh. */
  cacheable: boolean;
  producedAt?: Date;
  nextUpdate?: Date;
  status: 'successful' | 'malformedRequest' | 'unauthorized' | 'internalError';
}

interface IssuingCa {
  id: CertificateKind;
  signer: Signer;
  certDer: Buffer;
  /** The CA certificate's notAfter, read once at open (parsing the certificate per issuance costs ~100 µs). */
  notAfter: Date;
  /** Its end-entity profile, with the extensions that are the same in every certificate encoded once. */
  profile: EndEntityProfile;
  /**
   * The same key signing on the thread pool (software keys only), used while other issuances are
   * in progress: their signatures then run on the other cores instead of one after the other.
   */
  signerOffThread: Signer | undefined;
  info: IssuerInfo;
  hashes: IssuerHashes;
  responder: OcspResponder;
}

interface CachedOcsp {
  der: Buffer;
  statusKey: string;
  producedAt: number;
  nextUpdate: number;
}

const OCSP_CACHE_LIMIT = 200_000;

/** Subject Name DER and SPKI DER of a certificate. */
export function certificateParts(der: Buffer): { subject: Buffer; spki: Buffer; serial: Buffer } {
  const cert = readTlv(der, 0);
  const [tbs] = readChildren(der, cert);
  const f = readChildren(der, tbs!);
  const off = f[0]!.tag === 0xa0 ? 1 : 0;
  return {
    serial: der.subarray(f[off]!.contentStart, f[off]!.end),
    subject: slice(der, f[off + 4]!),
    spki: slice(der, f[off + 5]!),
  };
}

/**
 * The designated certification authority: one root, an issuing CA for signature certificates and
 * one for authentication certificates, each issuing CA with a delegated OCSP signer. It issues
 * from PKCS#10 requests under the profiles, revokes, builds CRLs and answers OCSP. The store is the
 * single source of truth for what was issued and revoked.
 */
export class Authority {
  private readonly ocspCache = new Map<string, CachedOcsp>();
  /** Issuances in progress (in this process). */
  private issuancesInProgress = 0;
  /** Stores the certificates of issuances without a transaction hook, with group commit. */
  private readonly certificateWriter: CertificateWriter;
  /** Pre-signed OCSP responses: lookup, re-sign on revocation, batch signing (docs/ocsp.md). */
  readonly ocspResponses: OcspResponses;

  private constructor(
    readonly dataDir: string,
    readonly config: AuthorityConfig,
    readonly store: Store,
    private readonly keys: KeyStore,
    private readonly root: { signer: Signer; certDer: Buffer; info: IssuerInfo },
    private readonly issuing: Record<CertificateKind, IssuingCa>,
    private readonly tsa: { signer: Signer; certDer: Buffer } | undefined,
    private readonly verifierCa: VerifierCa | undefined,
    private readonly now: () => Date,
    databaseUrl?: string,
  ) {
    this.certificateWriter = new CertificateWriter(store.db);
    this.ocspResponses = new OcspResponses(
      store,
      {
        sign: ocspIssuer('sign', issuing.sign.hashes, issuing.sign.responder),
        auth: ocspIssuer('auth', issuing.auth.hashes, issuing.auth.responder),
      },
      { now, settings: presignSettings(config), databaseUrl },
    );
  }

  /**
   * Creates a new authority in `dataDir`. Refuses if one exists there (or any of its keys does):
   * a key is never overwritten.
   */
  static async init(opts: InitOptions): Promise<InitResult> {
    const env = opts.env ?? process.env;
    const dir = opts.dataDir;
    const paths = dataPaths(dir);
    if (existsSync(paths.config))
      throw new AuthorityError(`an authority already exists in ${dir}; refusing to overwrite it`);
    if (existsSync(paths.keys) && readdirSync(paths.keys).length > 0)
      throw new AuthorityError(`${paths.keys} already holds keys; refusing to overwrite them`);
    mkdirSync(paths.certs, { recursive: true });
    mkdirSync(paths.secrets, { recursive: true, mode: 0o700 });

    const keyStoreCfg = opts.keyStore ?? { type: 'software' };
    let generatedPassphraseFile: string | undefined;
    if (
      keyStoreCfg.type === 'software' &&
      !env.JPKI_KEY_PASSPHRASE &&
      !env.JPKI_KEY_PASSPHRASE_FILE &&
      !existsSync(paths.passphraseFile)
    ) {
      createDevelopmentPassphrase(dir);
      generatedPassphraseFile = paths.passphraseFile;
    }
    if (opts.crlPartitions !== undefined)
      try {
        checkPartitionCount(opts.crlPartitions);
      } catch (e) {
        throw new AuthorityError((e as Error).message);
      }
    const config: AuthorityConfig = {
      ...DEFAULTS,
      crl: { ...DEFAULTS.crl, partitions: opts.crlPartitions ?? DEFAULTS.crl.partitions },
      algorithm: opts.algorithm ?? 'rsa-2048',
      baseUrl: (opts.baseUrl ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''),
      keyStore: keyStoreCfg,
      ...(opts.revocationAccess ? { revocationAccess: opts.revocationAccess } : {}),
      createdAt: (opts.now ?? new Date()).toISOString(),
    };
    const u = urls(config.baseUrl);
    const keys = await openKeyStore(dir, keyStoreCfg, env);
    try {
      for (const id of CA_CERTIFICATE_IDS)
        if (await keys.has(keyLabel(id)))
          throw new AuthorityError(
            `the key store already holds a key labelled ${keyLabel(id)}; refusing to overwrite it`,
          );
      const notBefore = truncateToSecond(opts.now ?? new Date());
      const gen = (id: CaCertificateId) => keys.generate(keyLabel(id), config.algorithm);

      const rootKey = await gen('root');
      const rootDer = await issueWith(
        rootKey,
        rootCaTemplate(rootKey.publicKeySpki, notBefore, config.validity.rootYears),
        null,
        rootKey.publicKeySpki,
      );
      const rootInfo = { name: certificateParts(rootDer).subject, spki: rootKey.publicKeySpki };
      writeCert(paths.cert('root'), rootDer);

      for (const ca of ['sign', 'auth'] as const) {
        const caKey = await gen(ca);
        const caDer = await issueWith(
          rootKey,
          issuingCaTemplate(
            ca,
            caKey.publicKeySpki,
            rootInfo,
            { crl: u.crl('root'), caIssuers: u.caCert('root'), cps: u.cps },
            notBefore,
            config.validity.caYears,
          ),
          rootInfo,
          caKey.publicKeySpki,
        );
        writeCert(paths.cert(ca), caDer);
        const caInfo = { name: certificateParts(caDer).subject, spki: caKey.publicKeySpki };
        const ocspKey = await gen(`${ca}-ocsp`);
        const ocspDer = await issueWith(
          caKey,
          ocspResponderTemplate(ca, ocspKey.publicKeySpki, caInfo, notBefore, config.validity.ocspYears),
          caInfo,
          ocspKey.publicKeySpki,
        );
        writeCert(paths.cert(`${ca}-ocsp`), ocspDer);
      }
      const tsaKey = await gen('tsa');
      const tsaDer = await issueWith(
        rootKey,
        timeStampingTemplate(tsaKey.publicKeySpki, rootInfo, notBefore, config.validity.tsaYears, {
          crl: u.crl('root'),
          caIssuers: u.caCert('root'),
        }),
        rootInfo,
        tsaKey.publicKeySpki,
      );
      writeCert(paths.cert('tsa'), tsaDer);
      await createVerifierCa(keys, config, rootKey, rootInfo, notBefore, paths.cert('verifier'));
      writeFileSync(paths.operatorTokenFile, `${randomBytes(32).toString('base64url')}\n`, {
        mode: 0o600,
        flag: 'wx',
      });
      // Written last: its presence means the authority is complete.
      writeFileSync(paths.config, `${JSON.stringify(config, null, 2)}\n`, { flag: 'wx' });
    } finally {
      await keys.close();
    }
    return { config, generatedPassphraseFile, operatorTokenFile: paths.operatorTokenFile };
  }

  /** Opens an existing authority. The store is SQLite in the data directory unless `databaseUrl` is given. */
  static async open(
    dataDir: string,
    opts: { env?: NodeJS.ProcessEnv; databaseUrl?: string; now?: () => Date } = {},
  ): Promise<Authority> {
    const env = opts.env ?? process.env;
    const config = readConfig(dataDir);
    const paths = dataPaths(dataDir);
    const keys = await openKeyStore(dataDir, config.keyStore, env);
    let store: Store | undefined;
    try {
      const readCert = (id: CaCertificateId) => {
        try {
          return decodePem(readFileSync(paths.cert(id), 'utf8'), ['CERTIFICATE']);
        } catch {
          throw new ConfigError(`cannot read ${paths.cert(id)}`);
        }
      };
      const rootDer = readCert('root');
      const rootSigner = await keys.open(keyLabel('root'));
      const root = { signer: rootSigner, certDer: rootDer, info: infoOf(rootDer) };
      const issuing = {} as Record<CertificateKind, IssuingCa>;
      for (const ca of ['sign', 'auth'] as const) {
        const certDer = readCert(ca);
        const signer = await keys.open(keyLabel(ca));
        const info = infoOf(certDer);
        if (!info.spki.equals(signer.publicKeySpki))
          throw new ConfigError(`the ${ca} CA certificate does not match its key`);
        const ocspSigner = await keys.open(keyLabel(`${ca}-ocsp`));
        issuing[ca] = {
          id: ca,
          signer,
          certDer,
          notAfter: certificateNotAfter(certDer),
          profile: endEntityProfile(ca, info, publicationPoints(config.baseUrl, ca, config.crl.partitions)),
          signerOffThread: offThread(signer),
          info,
          hashes: issuerHashes(certDer),
          responder: createResponder(ocspSigner, readCert(`${ca}-ocsp`)),
        };
      }
      // Authorities created before the TSA existed have none; time stamping then says so.
      let tsa: { signer: Signer; certDer: Buffer } | undefined;
      if (existsSync(paths.cert('tsa'))) {
        const tsaDer = readCert('tsa');
        const tsaSigner = await keys.open(keyLabel('tsa'));
        if (!infoOf(tsaDer).spki.equals(tsaSigner.publicKeySpki))
          throw new ConfigError('the TSA certificate does not match its key');
        tsa = { signer: tsaSigner, certDer: tsaDer };
      }
      // Likewise the verifier CA (`jpki ca add-verifier-ca` adds it).
      let verifierCa: VerifierCa | undefined;
      if (existsSync(paths.cert('verifier'))) {
        const certDer = readCert('verifier');
        const signer = await keys.open(keyLabel('verifier'));
        const info = infoOf(certDer);
        if (!info.spki.equals(signer.publicKeySpki))
          throw new ConfigError('the verifier CA certificate does not match its key');
        verifierCa = { signer, certDer, info, notAfter: certificateNotAfter(certDer) };
      }
      const databaseUrl = opts.databaseUrl ?? env.DATABASE_URL;
      store = await openDatabase(databaseUrl ? { databaseUrl } : { sqlitePath: paths.sqlite });
      return new Authority(
        dataDir,
        config,
        store,
        keys,
        root,
        issuing,
        tsa,
        verifierCa,
        opts.now ?? (() => new Date()),
        databaseUrl,
      );
    } catch (e) {
      await store?.close();
      await keys.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.ocspResponses.stop();
    await this.store.close();
    await this.keys.close();
  }

  /** A CA certificate (or OCSP signer certificate) as DER. */
  certificate(id: CaCertificateId): Buffer {
    if (id === 'root') return this.root.certDer;
    if (id === 'sign' || id === 'auth') return this.issuing[id].certDer;
    if (id === 'tsa') {
      if (!this.tsa) throw new AuthorityError('this authority has no time-stamping authority');
      return this.tsa.certDer;
    }
    if (id === 'verifier') {
      if (!this.verifierCa)
        throw new AuthorityError('this authority has no verifier CA; add one with "jpki ca add-verifier-ca"');
      return this.verifierCa.certDer;
    }
    return readCertFile(dataPaths(this.dataDir).cert(id));
  }

  /** Whether the authority has its verifier CA (authorities created before it have none). */
  get hasVerifierCa(): boolean {
    return this.verifierCa !== undefined;
  }

  /**
   * Adds the verifier CA to an existing authority: a new key `jpki-verifier` and its certificate
   * under the root. Touches no other key or certificate; refuses if the key or the certificate
   * already exists.
   */
  static async addVerifierCa(
    dataDir: string,
    opts: { env?: NodeJS.ProcessEnv; now?: Date } = {},
  ): Promise<void> {
    const env = opts.env ?? process.env;
    const config = readConfig(dataDir);
    const paths = dataPaths(dataDir);
    if (existsSync(paths.cert('verifier')))
      throw new AuthorityError(`${paths.cert('verifier')} exists: this authority already has a verifier CA`);
    const keys = await openKeyStore(dataDir, config.keyStore, env);
    try {
      const rootSigner = await keys.open(keyLabel('root'));
      const rootDer = decodePem(readFileSync(paths.cert('root'), 'utf8'), ['CERTIFICATE']);
      const rootInfo = infoOf(rootDer);
      if (!rootInfo.spki.equals(rootSigner.publicKeySpki))
        throw new ConfigError('the root CA certificate does not match its key');
      await createVerifierCa(
        keys,
        config,
        rootSigner,
        rootInfo,
        truncateToSecond(opts.now ?? new Date()),
        paths.cert('verifier'),
      );
    } finally {
      await keys.close();
    }
  }

  /**
   * Issues an authorised verifier's TLS client certificate from a PKCS#10 request (only its key is
   * taken; the subject names the verifier by id), stored with ca = 'verifier' so that revocation and
   * the verifier CA's CRL work as for any certificate. `inTransaction` runs in the transaction that
   * stores it (the registry registers it to the verifier there); if it throws, nothing is stored.
   */
  async issueVerifierCertificate(
    csr: string | Uint8Array,
    verifierId: number,
    opts: { inTransaction?: (trx: Db, issued: IssuedVerifierCertificate) => Promise<void> } = {},
  ): Promise<IssuedVerifierCertificate> {
    const ca = this.verifierCa;
    if (!ca)
      throw new AuthorityError('this authority has no verifier CA; add one with "jpki ca add-verifier-ca"');
    const { spki } = verifyCsr(csr);
    const u = urls(this.config.baseUrl);
    for (let attempt = 0; ; attempt++) {
      const now = truncateToSecond(this.now());
      const serial = newSerial();
      const template = verifierClientTemplate(
        verifierId,
        spki,
        ca.info,
        { crl: u.crl('verifier'), caIssuers: u.caCert('verifier') },
        now,
        this.config.validity.verifierYears,
      );
      if (template.validity.notAfter > ca.notAfter)
        throw new AuthorityError(
          'the verifier CA certificate expires before the certificate would; renew the CA',
        );
      const der = await signCertificate(ca.signer, {
        serial,
        issuer: ca.info.name,
        subject: template.subject,
        notBefore: template.validity.notBefore,
        notAfter: template.validity.notAfter,
        spki,
        extensions: template.extensions,
      });
      const hex = serialHex(serial);
      const issued: IssuedVerifierCertificate = {
        serial: hex,
        verifierId,
        der,
        pem: encodePem('CERTIFICATE', der),
        subject: template.subjectDisplay,
        notBefore: template.validity.notBefore,
        notAfter: template.validity.notAfter,
      };
      try {
        await this.store.db.transaction().execute(async (trx) => {
          await insertCertificate(
            trx,
            {
              serial: hex,
              ca: 'verifier',
              profile: 'verifier',
              subject: template.subjectDisplay,
              not_before: template.validity.notBefore.getTime(),
              not_after: template.validity.notAfter.getTime(),
              issued_at: now.getTime(),
              der,
              resident_ref: null,
              spki_sha256: createHash('sha256').update(spki).digest('hex'),
            },
            { savepoint: false },
          );
          await opts.inTransaction?.(trx, issued);
        });
      } catch (e) {
        if (e instanceof DuplicateSerialError && attempt < 3) continue;
        throw e;
      }
      return issued;
    }
  }

  /**
   * Issues a certificate from a PKCS#10 request under the profile of `kind`. The request's
   * signature and key are checked first; nothing is stored unless the certificate is complete.
   */
  async issue(req: IssueRequest, opts: IssueOptions = {}): Promise<IssuedCertificate> {
    this.issuancesInProgress++;
    try {
      return await this.issueOne(req, opts);
    } finally {
      this.issuancesInProgress--;
    }
  }

  private async issueOne(req: IssueRequest, opts: IssueOptions): Promise<IssuedCertificate> {
    const { spki } = verifyCsr(req.csr);
    const facts = req.kind === 'sign' && req.facts ? normaliseBasicFacts(req.facts, this.now()) : req.facts;
    const counterId = (req.counterId ?? '0000').toUpperCase();
    if (!/^[A-Z0-9]{1,10}$/.test(counterId))
      throw new AuthorityError('the counter id must be 1-10 letters or digits');
    const ca = this.issuing[req.kind];
    const years = req.kind === 'sign' ? this.config.validity.signYears : this.config.validity.authYears;
    for (let attempt = 0; ; attempt++) {
      const now = truncateToSecond(this.now());
      const serial = newSerial();
      const template = endEntityTemplate(
        {
          kind: req.kind,
          spki,
          serial,
          issuanceId: issuanceId(now, counterId, serial),
          facts,
          localities: req.localities,
          notBefore: now,
          years,
        },
        ca.profile,
      );
      if (template.validity.notAfter > ca.notAfter)
        throw new AuthorityError(
          `the ${req.kind} CA certificate expires before the certificate would; renew the CA`,
        );
      // Alone, the signature is made right here (handing it to another thread costs ~25 µs);
      // with other issuances in progress, on the thread pool, so that they overlap.
      const signer = this.issuancesInProgress > 1 && ca.signerOffThread ? ca.signerOffThread : ca.signer;
      const der = await signCertificate(signer, {
        serial,
        issuer: ca.info.name,
        subject: template.subject,
        notBefore: template.validity.notBefore,
        notAfter: template.validity.notAfter,
        spki,
        extensions: template.extensions,
      });
      const hex = serialHex(serial);
      const issued: IssuedCertificate = {
        serial: hex,
        kind: req.kind,
        der,
        pem: encodePem('CERTIFICATE', der),
        subject: template.subjectDisplay,
        notBefore: template.validity.notBefore,
        notAfter: template.validity.notAfter,
      };
      const row = {
        serial: hex,
        ca: req.kind,
        profile: req.kind,
        subject: template.subjectDisplay,
        not_before: template.validity.notBefore.getTime(),
        not_after: template.validity.notAfter.getTime(),
        issued_at: now.getTime(),
        der,
        resident_ref: req.residentRef ?? null,
        spki_sha256: createHash('sha256').update(spki).digest('hex'),
      };
      try {
        const hook = opts.inTransaction;
        if (hook)
          // Its own transaction, not a shared one: the hook takes locks (the counter's Art. 6 slot)
          // that should be held no longer than this issuance needs them. A duplicate serial
          // abandons the transaction and the loop starts a new one, so no savepoint is needed.
          await this.store.db.transaction().execute(async (trx) => {
            await insertCertificate(trx, row, { savepoint: false });
            await hook(trx, issued);
          });
        // Committed together with the issuances in flight alongside it, if there are any.
        else await this.certificateWriter.insert(row, { gather: this.issuancesInProgress > 1 });
      } catch (e) {
        // A 128-bit collision is not expected, but the primary key decides, not luck.
        if (e instanceof DuplicateSerialError && attempt < 3) continue;
        throw e;
      }
      return issued;
    }
  }

  async findCertificate(serial: string) {
    return findCertificate(this.store.db, canonicalSerial(serial));
  }

  async findRevocation(serial: string) {
    return findRevocation(this.store.db, canonicalSerial(serial));
  }

  /** Throws if the store cannot be reached. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.store.db);
  }

  /**
   * Revokes a certificate. Revoking again keeps the first record (time and reason) and reports
   * `created: false`. `opts.db` runs it inside a caller's transaction. In the same transaction the
   * "revoked" OCSP response is signed and stored in place of the pre-signed one (docs/ocsp.md), so
   * from the commit on no responder serves "good" from the store; this process's memory cache keeps
   * the serial out until then, and other responders drop it when their revocation feed sees it.
   */
  async revoke(serial: string, reason: RevocationReason, revokedAt?: Date, opts: { db?: Db } = {}) {
    const now = this.now();
    const at = revokedAt ?? now;
    if (at.getTime() > now.getTime() + 60_000)
      throw new AuthorityError('the revocation time is in the future');
    const hex = canonicalSerial(serial);
    const request = {
      serial: hex,
      reason: reasonCode(reason),
      revokedAt: truncateToSecond(at).getTime(),
      recordedAt: now.getTime(),
    };
    const run = async (trx: Db) => {
      const result = await revokeInStore(trx, request);
      if (result.created) await this.ocspResponses.revokedInTransaction(trx, result.revocation);
      return result;
    };
    // In a caller's transaction (opts.db; on SQLite the outbox's may be a connection it began one
    // on) the commit comes later: the serial then stays out of the memory cache until the
    // revocation feed sees it.
    const own = !opts.db;
    this.ocspResponses.beginRevocation(hex);
    try {
      return opts.db ? await run(opts.db) : await this.store.db.transaction().execute(run);
    } finally {
      if (own) this.ocspResponses.endRevocation(hex);
    }
  }

  /**
   * Builds, signs and stores the next CRL of `ca`: a full CRL, or a delta CRL (RFC 5280 5.2.4)
   * against the latest full CRL of the same scope. Without `partition` it is the CA's complete CRL
   * (every certificate of the CA, no issuingDistributionPoint); with one, the CRL of that partition
   * of an issuing CA: only its serials, with a critical issuingDistributionPoint naming the
   * partition's URL (the one in its certificates' cRLDistributionPoints) and onlyContainsUserCerts.
   * Each scope has its own CRL numbering, shared by its full and delta CRLs (RFC 5280 5.2.3).
   */
  async generateCrl(ca: CrlIssuerId, opts: { delta?: boolean; partition?: number } = {}): Promise<CrlResult> {
    const issuer = ca === 'root' ? this.root : ca === 'verifier' ? this.verifierCa : this.issuing[ca];
    if (!issuer)
      throw new AuthorityError('this authority has no verifier CA; add one with "jpki ca add-verifier-ca"');
    const { signer, info } = issuer;
    const u = urls(this.config.baseUrl);
    const partition = opts.partition;
    if (partition !== undefined) this.checkCrlPartition(ca, partition);
    const scope = partition === undefined ? ca : crlScopeId(ca, partition);
    const serialRange =
      partition === undefined ? undefined : partitionSerialRange(partition, this.config.crl.partitions);
    const idp =
      partition === undefined
        ? undefined
        : issuingDistributionPoint({
            uri: u.partitionCrl(ca as CertificateKind, partition),
            onlyContainsUserCerts: true,
          });
    const freshestCrlUrl =
      opts.delta || ca === 'root' || ca === 'verifier'
        ? undefined
        : partition === undefined
          ? u.deltaCrl(ca)
          : u.partitionDeltaCrl(ca, partition);
    for (let attempt = 0; ; attempt++) {
      const thisUpdate = truncateToSecond(this.now());
      const db = this.store.db;
      const base = opts.delta ? await latestCrl(db, scope, 'full') : undefined;
      if (opts.delta && !base) throw new AuthorityError(`no full CRL of ${scope} yet to base a delta CRL on`);
      const number = await nextCrlNumber(db, scope);
      const maxId = await maxRevocationId(db, ca);
      const hours = opts.delta ? this.config.crl.deltaHours : this.config.crl.fullHours;
      const nextUpdate = new Date(thisUpdate.getTime() + hours * 3600_000);
      let entries = 0;
      // Pages of rows straight into the encoder: the store's hex serials and millisecond times are
      // written as they are (no Buffer or Date per entry), and the encoder, the signer and the
      // store give the event loop a turn every few milliseconds, so OCSP keeps answering while a
      // large CRL is built. (On SQLite the insert of the finished CRL is the longest step without
      // one: ~0.1 s for 47 MB.)
      const pages = streamRevocationPages(this.store.reader, {
        ca,
        ...(base ? { afterId: base.max_revocation_id } : {}),
        throughId: maxId,
        notAfterFrom: thisUpdate.getTime(),
        ...(serialRange ? { serialRange } : {}),
      });
      async function* counted() {
        for await (const rows of pages) {
          entries += rows.length;
          yield rows;
        }
      }
      const der = await buildCrl(
        signer,
        {
          issuerNameDer: info.name,
          authorityKeyId: keyIdentifier(info.spki),
          crlNumber: BigInt(number),
          thisUpdate,
          nextUpdate,
          deltaOf: base ? BigInt(base.number) : undefined,
          freshestCrlUrl,
          issuingDistributionPoint: idp,
        },
        counted(),
      );
      let sha256: string;
      try {
        // insertCrl hashes the DER (once; passing a hash would make it hash again to check it). On
        // SQLite the CRL is freed as soon as the statement holds its copy, before SQLite copies it
        // into the row: three copies of a 47 MB CRL at once would be 140 MB.
        ({ sha256 } = await insertCrl(
          db,
          {
            ca: scope,
            number,
            kind: opts.delta ? 'delta' : 'full',
            base_number: base ? base.number : null,
            this_update: thisUpdate.getTime(),
            next_update: nextUpdate.getTime(),
            max_revocation_id: maxId,
            entries,
            der,
          },
          { afterCopy: () => releaseCrl(der) },
        ));
      } catch (e) {
        // Another process took this number; build again with the next one.
        if (e instanceof DuplicateCrlNumberError && attempt < 5) continue;
        throw e;
      }
      return {
        ca,
        ...(partition !== undefined ? { partition } : {}),
        scope,
        number,
        kind: opts.delta ? 'delta' : 'full',
        baseNumber: base ? base.number : null,
        thisUpdate,
        nextUpdate,
        entries,
        sha256,
      };
    }
  }

  /** The CRL partitions of each issuing CA (1: one CRL per CA, no partitions). */
  get crlPartitions(): number {
    return this.config.crl.partitions;
  }

  /** The partition of a certificate's serial (hex, as `jpki` prints it). */
  crlPartitionOf(serial: string): number {
    return crlPartitionOf(canonicalSerial(serial), this.config.crl.partitions);
  }

  private checkCrlPartition(ca: CrlIssuerId, partition: number): asserts ca is CertificateKind {
    if (ca === 'root' || ca === 'verifier') throw new AuthorityError(`the ${ca} CA has no CRL partitions`);
    if (this.config.crl.partitions === 1)
      throw new AuthorityError(`this authority does not partition its CRLs (crl.partitions is 1)`);
    try {
      checkPartition(partition, this.config.crl.partitions);
    } catch (e) {
      throw new AuthorityError((e as Error).message);
    }
  }

  /**
   * Every CRL series of the authority: the root's, each issuing CA's complete CRLs, and each
   * partition's. The complete CRL of an issuing CA stays even with partitions: it is the one CRL
   * that covers certificates issued before partitioning was switched on, the one tools that mirror
   * everything fetch, and what POST /verify checks with.
   */
  crlScopes(): { ca: CrlIssuerId; partition?: number; scope: string; delta: boolean }[] {
    const out: { ca: CrlIssuerId; partition?: number; scope: string; delta: boolean }[] = [
      { ca: 'root', scope: 'root', delta: false },
    ];
    if (this.verifierCa) out.push({ ca: 'verifier', scope: 'verifier', delta: false });
    for (const ca of ['sign', 'auth'] as const) {
      out.push({ ca, scope: ca, delta: true });
      if (this.config.crl.partitions > 1)
        for (let p = 0; p < this.config.crl.partitions; p++)
          out.push({ ca, partition: p, scope: crlScopeId(ca, p), delta: true });
    }
    return out;
  }

  /**
   * Builds the full CRL of every series now, one after the other (partitions too; `delta` adds a
   * delta CRL of each series after its full CRL; `partitionsOnly` leaves out the root's and the
   * CAs' complete CRLs), and says how long each took. For the scale benchmark and for operators.
   */
  async generateAllCrls(
    opts: { delta?: boolean; partitionsOnly?: boolean } = {},
  ): Promise<{ results: (CrlResult & { seconds: number })[]; seconds: number }> {
    const t0 = performance.now();
    const results: (CrlResult & { seconds: number })[] = [];
    for (const s of this.crlScopes()) {
      if (opts.partitionsOnly && s.partition === undefined) continue;
      const at = { ...(s.partition !== undefined ? { partition: s.partition } : {}) };
      for (const delta of opts.delta && s.delta ? [false, true] : [false]) {
        const t = performance.now();
        const r = await this.generateCrl(s.ca, { ...at, delta });
        results.push({ ...r, seconds: (performance.now() - t) / 1000 });
      }
    }
    return { results, seconds: (performance.now() - t0) / 1000 };
  }

  /**
   * Keeps every CRL series fresh (what `jpki serve` runs every minute). A full CRL is built when
   * its series has none or the current one is in the last quarter of its life; a delta CRL on the
   * same rule, and also as soon as its series has a revocation the current delta does not hold
   * (so a revocation reaches the partition's delta CRL within a tick, and untouched partitions
   * cost nothing). Looking costs two queries per tick: the latest CRL of every series, and the
   * revocations recorded since the oldest delta CRL.
   */
  async refreshCrls(now = this.now().getTime()): Promise<CrlResult[]> {
    const scopes = this.crlScopes();
    const latest = new Map<string, { this_update: number; next_update: number; max_revocation_id: number }>();
    for (const row of await latestCrls(
      this.store.db,
      scopes.map((s) => s.scope),
    ))
      latest.set(`${row.ca}:${row.kind}`, row);
    const due = (scope: string, kind: 'full' | 'delta') => {
      const cur = latest.get(`${scope}:${kind}`);
      return !cur || now > cur.next_update - (cur.next_update - cur.this_update) / 4;
    };
    // Scopes whose delta CRL misses a revocation recorded since it was built.
    const changed = new Set<string>();
    for (const ca of ['sign', 'auth'] as const) {
      const deltas = scopes
        .filter((s) => s.ca === ca)
        .map((s) => latest.get(`${s.scope}:delta`)?.max_revocation_id)
        .filter((id): id is number => id !== undefined);
      if (deltas.length === 0) continue;
      const since = Math.min(...deltas);
      for await (const rows of streamRevocationPages(this.store.reader, {
        ca,
        afterId: since,
        notAfterFrom: 0,
      }))
        for (const r of rows) {
          const mark = (scope: string) => {
            const d = latest.get(`${scope}:delta`);
            if (d && r.id > d.max_revocation_id) changed.add(scope);
          };
          mark(ca);
          if (this.config.crl.partitions > 1)
            mark(crlScopeId(ca, crlPartitionOf(r.serial, this.config.crl.partitions)));
        }
    }
    const built: CrlResult[] = [];
    for (const s of scopes) {
      const at = s.partition !== undefined ? { partition: s.partition } : {};
      const full = due(s.scope, 'full');
      if (full) built.push(await this.generateCrl(s.ca, at));
      // A new full CRL holds everything; its delta then starts empty against it.
      if (s.delta && (full || due(s.scope, 'delta') || changed.has(s.scope)))
        built.push(await this.generateCrl(s.ca, { ...at, delta: true }));
    }
    return built;
  }

  /** The latest CRL of a kind (of a partition, if given), without its DER. */
  async currentCrlInfo(ca: CrlIssuerId, kind: 'full' | 'delta', partition?: number) {
    return latestCrl(this.store.db, partition === undefined ? ca : crlScopeId(ca as CaId, partition), kind);
  }

  /** The latest CRL of a kind (of a partition, if given), with its DER, or undefined if none has been built. */
  async currentCrl(ca: CrlIssuerId, kind: 'full' | 'delta', partition?: number) {
    const scope = partition === undefined ? ca : crlScopeId(ca as CaId, partition);
    const row = await latestCrl(this.store.db, scope, kind);
    if (!row) return undefined;
    const der = await crlDer(this.store.db, scope, row.number);
    return der ? { ...row, der } : undefined;
  }

  /**
   * Answers an RFC 3161 time-stamp request with a token signed by the authority's TSA (its
   * certificate under the root, id-kp-timeStamping critical). Bad requests get a rejection
   * response, never an exception.
   */
  async timeStamp(requestDer: Uint8Array) {
    if (!this.tsa) throw new AuthorityError('this authority has no time-stamping authority');
    return respondToTimeStampRequest(requestDer, {
      signer: this.tsa.signer,
      tsaCertificate: this.tsa.certDer,
      chain: [this.root.certDer],
      policy: this.config.tsa.policy,
      accuracySeconds: this.config.tsa.accuracySeconds,
      serial: randomBytes(16),
      genTime: this.now(),
    });
  }

  /**
   * Answers an OCSP request (RFC 6960). A single CertID without a nonce is answered with its
   * pre-signed response when the store holds a fresh one (through the memory cache on PostgreSQL,
   * see docs/ocsp.md). Otherwise the store gives the status and the response is signed here;
   * such responses are reused while the status they state is still the status in the store and
   * they are younger than the refresh interval.
   */
  /**
   * `opts.cas`: the issuing CAs the requester may ask about (an authorised verifier's kinds); a request
   * about another CA's certificates gets `unauthorized`. Default: both.
   */
  async ocsp(requestDer: Uint8Array, opts: { cas?: readonly ('sign' | 'auth')[] } = {}): Promise<OcspAnswer> {
    let req: ReturnType<typeof parseOcspRequest>;
    try {
      req = parseOcspRequest(requestDer);
    } catch (e) {
      if (e instanceof OcspRequestError)
        return { der: errorResponse('malformedRequest'), cacheable: false, status: 'malformedRequest' };
      throw e;
    }
    const cas = req.certIds.map((id) =>
      (['sign', 'auth'] as const).find((c) => matchesIssuer(id, this.issuing[c].hashes)),
    );
    const ca = cas[0];
    if (!ca || cas.some((c) => c !== ca) || (opts.cas && !opts.cas.includes(ca)))
      return { der: errorResponse('unauthorized'), cacheable: false, status: 'unauthorized' };
    const issuing = this.issuing[ca];
    const now = this.now();
    const nowMs = now.getTime();
    if (req.certIds.length === 1 && !req.nonce) {
      // The pre-signed response, if there is a fresh one (docs/ocsp.md); else signed below.
      const stored = await this.ocspResponses.lookup(ca, req.certIds[0]!, nowMs);
      if (stored)
        return {
          der: stored.der,
          cacheable: true,
          producedAt: new Date(stored.thisUpdate),
          nextUpdate: new Date(stored.nextUpdate),
          status: 'successful',
        };
    }
    const statuses: CertStatus[] = [];
    for (const id of req.certIds) {
      const row = await certificateStatus(this.store.db, serialHex(id.serial));
      if (!row || row.ca !== ca) statuses.push({ status: 'unknown' });
      else if (row.revocation)
        statuses.push({
          status: 'revoked',
          revokedAt: new Date(row.revocation.revokedAt),
          reason: row.revocation.reason || undefined,
        });
      else statuses.push({ status: 'good' });
    }
    const single = req.certIds.length === 1 && !req.nonce;
    const cacheKey = single ? `${ca}:${req.certIds[0]!.der.toString('hex')}` : '';
    const statusKey = statuses.map(statusKeyOf).join('|');
    if (single) {
      const hit = this.ocspCache.get(cacheKey);
      if (
        hit &&
        hit.statusKey === statusKey &&
        nowMs - hit.producedAt < this.config.ocsp.refreshMinutes * 60_000
      )
        return {
          der: hit.der,
          cacheable: true,
          producedAt: new Date(hit.producedAt),
          nextUpdate: new Date(hit.nextUpdate),
          status: 'successful',
        };
    }
    const producedAt = truncateToSecond(now);
    const nextUpdate = new Date(producedAt.getTime() + this.config.ocsp.validityMinutes * 60_000);
    const der = await buildBasicResponse(
      issuing.responder,
      req.certIds.map((certId, i) => ({ certId, status: statuses[i]!, thisUpdate: producedAt, nextUpdate })),
      { producedAt, nonce: req.nonce },
    );
    if (single) {
      if (this.ocspCache.size >= OCSP_CACHE_LIMIT) this.ocspCache.delete(this.ocspCache.keys().next().value!);
      this.ocspCache.set(cacheKey, {
        der,
        statusKey,
        producedAt: producedAt.getTime(),
        nextUpdate: nextUpdate.getTime(),
      });
    }
    return { der, cacheable: !req.nonce, producedAt, nextUpdate, status: 'successful' };
  }
}

async function issueWith(
  signer: Signer,
  t: CertificateTemplate,
  issuer: IssuerInfo | null,
  spki: Buffer,
): Promise<Buffer> {
  return signCertificate(signer, {
    serial: newSerial(),
    issuer: issuer ? issuer.name : t.subject,
    subject: t.subject,
    notBefore: t.validity.notBefore,
    notAfter: t.validity.notAfter,
    spki,
    extensions: t.extensions,
  });
}

function writeCert(path: string, der: Buffer) {
  writeFileSync(path, encodePem('CERTIFICATE', der), { flag: 'wx' });
}

function readCertFile(path: string): Buffer {
  return decodePem(readFileSync(path, 'utf8'), ['CERTIFICATE']);
}

function infoOf(der: Buffer): IssuerInfo {
  const p = certificateParts(der);
  return { name: p.subject, spki: p.spki };
}

function offThread(signer: Signer): Signer | undefined {
  if (!(signer instanceof SoftwareSigner)) return undefined;
  return {
    algorithm: signer.algorithm,
    publicKeySpki: signer.publicKeySpki,
    sign: (data) => signer.signOffThread(data),
  };
}

/** The URLs the end-entity certificates of issuing CA `ca` carry. */
export function publicationPoints(
  baseUrl: string,
  ca: CertificateKind,
  crlPartitions = 1,
): PublicationPoints {
  const u = urls(baseUrl);
  return {
    crl: u.crl(ca),
    deltaCrl: u.deltaCrl(ca),
    ocsp: u.ocsp,
    caIssuers: u.caCert(ca),
    cps: u.cps,
    ...(crlPartitions > 1
      ? {
          crlPartitions: {
            count: crlPartitions,
            crl: (p: number) => u.partitionCrl(ca, p),
            deltaCrl: (p: number) => u.partitionDeltaCrl(ca, p),
          },
        }
      : {}),
  };
}

function truncateToSecond(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function certificateNotAfter(der: Buffer): Date {
  return new Date(new X509Certificate(der).validTo);
}

/**
 * The opaque issuance identifier used as the subject CN: issuance time (JST, to the second), the
 * counter id, and the first bytes of the serial so two issuances in one second at one counter differ.
 */
function issuanceId(at: Date, counterId: string, serial: Buffer): string {
  const jst = new Date(at.getTime() + 9 * 3600_000).toISOString().replace(/\D/g, '').slice(0, 14);
  return `${jst}${counterId}${serial
    .subarray(serial[0] === 0 ? 1 : 0, 6)
    .toString('hex')
    .toUpperCase()}`;
}
