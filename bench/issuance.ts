// Issuance: certificates per second through the whole Authority.issue path (CSR check, profile,
// sign, store), one request after the other, against raw RSA-2048 signatures per second on one
// thread measured just before and just after it. Also with CONCURRENCY issuances in flight, against
// raw signatures on the libuv thread pool at the same concurrency (what those issuances sign with).

import { createHash, createPublicKey, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { loadavg } from 'node:os';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Authority, certificateParts, publicationPoints } from '../src/authority/authority.ts';
import { checkSubjectKey, verifyCsr } from '../src/core/csr.ts';
import { readChildren, readTlv } from '../src/core/der.ts';
import {
  type CertificateKind,
  type EndEntityRequest,
  endEntityProfile,
  endEntityTemplate,
  type IssuerInfo,
} from '../src/core/profiles.ts';
import { newSerial, serialHex } from '../src/core/serial.ts';
import { insertCertificate, insertCertificates } from '../src/store/certificates.ts';
import {
  adminQuery,
  type BenchDatabase,
  createAuthority,
  createPostgresDatabase,
  decryptKey,
  ENV,
  FACTS,
  log,
  makeCsrs,
  median,
  postgresAvailable,
  printTable,
  readCertDer,
  round,
} from './util.ts';

export interface IssuanceOptions {
  rounds: number;
  /** Length of one timed issuance loop. */
  seconds: number;
  /** Length of one raw-signature loop (one before and one after each case). */
  rawSeconds: number;
  csrs: number;
}

export const ISSUANCE_DEFAULTS: IssuanceOptions = { rounds: 5, seconds: 1.5, rawSeconds: 0.5, csrs: 200 };
export const ISSUANCE_TARGET_RATIO = 0.6;
/** Issuances in flight in the concurrent cases, and raw signatures in flight in their reference. */
export const CONCURRENCY = 8;

export interface IssuanceCase {
  store: 'sqlite' | 'postgres';
  kind: CertificateKind;
  /**
   * 1: one issuance after the other, compared with raw signatures on one thread (crypto.sign,
   * synchronous). CONCURRENCY: that many in flight, compared with raw signatures at the same
   * concurrency on the libuv thread pool (crypto.sign with a callback).
   */
  concurrency: number;
  /** Certificates per second, one per round. */
  rates: number[];
  /** This case's rate divided by the raw signature rate of the same round. */
  ratios: number[];
  medianRate: number;
  medianRatio: number;
  /** Mean wall time of one issuance at the median rate, in ms. */
  msPerCertificate: number;
  meetsTarget: boolean;
}

export interface IssuanceResult {
  options: IssuanceOptions;
  target: string;
  raw: { what: string; rates: number[]; medianRate: number };
  /** The reference of the concurrent cases. */
  rawConcurrent: { what: string; rates: number[]; medianRate: number };
  cases: IssuanceCase[];
  /** Where the time of one issuance goes: microseconds per call of its parts, measured alone. */
  breakdown: { part: string; microseconds: number }[];
  /** 1-minute load average at the start and the end (other work on a shared machine shows here). */
  loadAverage: { start: number; end: number };
  postgresSkipped?: string;
}

export async function benchIssuance(o: IssuanceOptions = ISSUANCE_DEFAULTS): Promise<IssuanceResult> {
  log(
    `issuance: ${o.rounds} rounds of ${o.seconds} s per case, raw RSA signatures ${o.rawSeconds} s per round`,
  );
  const loadAtStart = round(loadavg()[0]!, 2);
  const ca = await createAuthority('jpki-bench-issue-');
  let pgDb: BenchDatabase | undefined;
  const authorities: { store: 'sqlite' | 'postgres'; authority: Authority }[] = [];
  let postgresSkipped: string | undefined;
  try {
    authorities.push({ store: 'sqlite', authority: await Authority.open(ca.dir, { env: ENV }) });
    if (await postgresAvailable()) {
      pgDb = await createPostgresDatabase();
      authorities.push({
        store: 'postgres',
        authority: await Authority.open(ca.dir, { env: ENV, databaseUrl: pgDb.url }),
      });
    } else {
      postgresSkipped = 'PostgreSQL not reachable';
      log(`issuance: ${postgresSkipped}; SQLite only`);
    }
    const csrs = makeCsrs(o.csrs);
    // The same kind of key and data as the issuing CA signs: an RSA-2048 key, a ~1.2 KB TBSCertificate.
    const caKey = decryptKey(ca.dir, 'sign');
    const tbs = randomBytes(1200);

    let next = 0;
    const issueOne = (authority: Authority, kind: CertificateKind) =>
      authority.issue({
        kind,
        csr: csrs[next++ % csrs.length]!,
        facts: kind === 'sign' ? FACTS : undefined,
        counterId: 'BENCH',
      });
    /** Operations per second of `op`, with `concurrency` of them in flight, for `ms`. */
    const rateOf = async (op: () => Promise<unknown>, concurrency: number, ms: number) => {
      let n = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            await op();
            n++;
          }
        }),
      );
      return n / ((performance.now() - t0) / 1000);
    };
    const issueFor = (authority: Authority, kind: CertificateKind, ms: number, concurrency = 1) =>
      rateOf(() => issueOne(authority, kind), concurrency, ms);
    const rawFor = (ms: number) => {
      let n = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      let now = t0;
      while (now < end) {
        for (let i = 0; i < 10; i++) sign('sha256', tbs, caKey);
        n += 10;
        now = performance.now();
      }
      return n / ((now - t0) / 1000);
    };
    const signOnPool = () =>
      new Promise<Buffer>((resolve, reject) =>
        sign('sha256', tbs, caKey, (err, signature) => (err ? reject(err) : resolve(signature))),
      );
    const rawConcurrentFor = (ms: number) => rateOf(signOnPool, CONCURRENCY, ms);

    // Warm-up: JIT, statement caches, the PostgreSQL pool.
    rawFor(300);
    await rawConcurrentFor(300);
    for (const { authority } of authorities) {
      for (const kind of ['auth', 'sign'] as const) {
        await issueFor(authority, kind, 300);
        await issueFor(authority, kind, 300, CONCURRENCY);
      }
    }

    const blank = (store: 'sqlite' | 'postgres', kind: CertificateKind, concurrency: number) => ({
      store,
      kind,
      concurrency,
      rates: [] as number[],
      ratios: [] as number[],
      medianRate: 0,
      medianRatio: 0,
      msPerCertificate: 0,
      meetsTarget: false,
    });
    const cases: IssuanceCase[] = [
      ...authorities.flatMap(({ store }) => (['auth', 'sign'] as const).map((kind) => blank(store, kind, 1))),
      ...authorities.flatMap(({ store }) =>
        (['auth', 'sign'] as const).map((kind) => blank(store, kind, CONCURRENCY)),
      ),
    ];
    const rawRates: number[] = [];
    const rawConcurrentRates: number[] = [];
    // Each case is bracketed by its reference, measured just before and just after it: on a shared
    // machine the load moves within seconds, and a reference taken a quarter of a minute earlier
    // would compare the case with another machine.
    const referenceFor = async (concurrency: number, rates: number[]) => {
      const rate =
        concurrency === 1 ? rawFor(o.rawSeconds * 1000) : await rawConcurrentFor(o.rawSeconds * 1000);
      rates.push(rate);
      return rate;
    };
    for (let r = 0; r < o.rounds; r++) {
      const parts: string[] = [];
      for (const c of cases) {
        const { authority } = authorities.find((a) => a.store === c.store)!;
        const rates = c.concurrency === 1 ? rawRates : rawConcurrentRates;
        const before = await referenceFor(c.concurrency, rates);
        const rate = await issueFor(authority, c.kind, o.seconds * 1000, c.concurrency);
        const after = await referenceFor(c.concurrency, rates);
        const reference = (before + after) / 2;
        c.rates.push(rate);
        c.ratios.push(rate / reference);
        parts.push(
          `${c.store}/${c.kind}${c.concurrency > 1 ? ` x${c.concurrency}` : ''} ${round(rate)}/s (raw ${round(reference)}/s: ${round(rate / reference, 2)})`,
        );
      }
      log(`issuance round ${r + 1}/${o.rounds}: ${parts.join(', ')}`);
    }
    for (const c of cases) {
      c.medianRate = round(median(c.rates), 1);
      c.medianRatio = round(median(c.ratios), 3);
      c.msPerCertificate = round(1000 / median(c.rates), 3);
      c.meetsTarget = c.medianRatio >= ISSUANCE_TARGET_RATIO;
      c.rates = c.rates.map((x) => round(x, 1));
      c.ratios = c.ratios.map((x) => round(x, 3));
    }
    const breakdown = await measureParts(authorities, csrs, ca.certPath('sign'), caKey, tbs, ca.dir);
    const result: IssuanceResult = {
      options: o,
      target: `issuance rate / raw RSA-2048 signature rate >= ${ISSUANCE_TARGET_RATIO}`,
      raw: {
        what: "crypto.sign('sha256', 1200 bytes, RSA-2048 KeyObject), synchronous, one thread",
        rates: rawRates.map((x) => round(x, 1)),
        medianRate: round(median(rawRates), 1),
      },
      rawConcurrent: {
        what: `crypto.sign('sha256', 1200 bytes, RSA-2048 KeyObject, callback): ${CONCURRENCY} in flight on the libuv thread pool`,
        rates: rawConcurrentRates.map((x) => round(x, 1)),
        medianRate: round(median(rawConcurrentRates), 1),
      },
      cases,
      breakdown,
      loadAverage: { start: loadAtStart, end: round(loadavg()[0]!, 2) },
      ...(postgresSkipped ? { postgresSkipped } : {}),
    };
    const row = (c: IssuanceCase) => [
      c.store,
      c.kind,
      c.concurrency === 1 ? '1 (sequential)' : String(c.concurrency),
      c.medianRate,
      c.concurrency === 1 ? c.msPerCertificate : '-',
      c.medianRatio,
      c.meetsTarget ? 'met' : 'NOT met',
    ];
    printTable(
      `Issuance (Authority.issue; median of ${o.rounds} rounds of ${o.seconds} s)`,
      [
        'store',
        'kind',
        'in flight',
        'certs/s',
        'ms/cert',
        'ratio to its raw reference',
        `>= ${ISSUANCE_TARGET_RATIO}`,
      ],
      [
        [
          'raw RSA-2048 sign, one thread',
          '-',
          '1',
          result.raw.medianRate,
          round(1000 / result.raw.medianRate, 3),
          1,
          '-',
        ],
        ...cases.filter((c) => c.concurrency === 1).map(row),
        [
          `raw RSA-2048 sign, thread pool`,
          '-',
          String(CONCURRENCY),
          result.rawConcurrent.medianRate,
          '-',
          1,
          '-',
        ],
        ...cases.filter((c) => c.concurrency > 1).map(row),
      ],
    );
    log(
      `issuance: 1-minute load average ${result.loadAverage.start} at the start, ${result.loadAverage.end} at the end`,
    );
    printTable(
      'Issuance: parts of the path, each measured alone (median of 3 x 1,000 calls)',
      ['part', 'µs per call'],
      breakdown.map((b) => [b.part, b.microseconds]),
    );
    return result;
  } finally {
    for (const { authority } of authorities) await authority.close().catch(() => {});
    await pgDb?.drop().catch((e) => log(`could not drop ${pgDb?.name}: ${e}`));
    ca.cleanup();
  }
}

/** Times the parts of Authority.issue one by one (median of 3 batches of `n` calls, in µs per call). */
async function measureParts(
  authorities: { store: 'sqlite' | 'postgres'; authority: Authority }[],
  csrs: Buffer[],
  signCaPem: string,
  caKey: ReturnType<typeof decryptKey>,
  tbs: Buffer,
  dataDir: string,
): Promise<{ part: string; microseconds: number }[]> {
  const n = 1000;
  const time = async (f: (i: number) => unknown, calls = n) => {
    for (let i = 0; i < Math.min(200, calls); i++) await f(i);
    const per: number[] = [];
    for (let b = 0; b < 3; b++) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) await f(i);
      per.push(((performance.now() - t0) * 1000) / calls);
    }
    return round(median(per), 1);
  };
  const caDer = readCertDer(signCaPem);
  const { spki } = verifyCsr(csrs[0]!);
  const der = randomBytes(1400);
  const spkiSha256 = createHash('sha256').update(spki).digest('hex');
  const row = () => ({
    serial: serialHex(newSerial()),
    ca: 'auth',
    profile: 'auth',
    subject: 'C=JP,CN=bench',
    not_before: 0,
    not_after: 1,
    issued_at: 0,
    der,
    resident_ref: null,
    spki_sha256: spkiSha256,
  });
  const insert = (authority: Authority) => () => insertCertificate(authority.store.db, row());
  const sqlite = authorities.find((a) => a.store === 'sqlite')!.authority;
  // The request's own signature, as verifyCsr checks it (proof of possession).
  const req = csrs[0]!;
  const [info, , sigBits] = readChildren(req, readTlv(req, 0));
  const reqTbs = req.subarray(info!.start, info!.end);
  const reqSig = req.subarray(sigBits!.contentStart + 1, sigBits!.end);
  const { publicKey } = verifyCsr(req);
  // The profile as the authority applies it, with the issuing CA's prepared extensions.
  const caParts = certificateParts(caDer);
  const issuer: IssuerInfo = { name: caParts.subject, spki: caParts.spki };
  const points = publicationPoints(sqlite.config.baseUrl, 'sign', sqlite.config.crl.partitions);
  // Before: the constant extensions (one CRL distribution point) were built for every certificate.
  const onePoint = publicationPoints(sqlite.config.baseUrl, 'sign');
  const profiles = {
    sign: endEntityProfile('sign', issuer, points),
    auth: endEntityProfile('auth', issuer, points),
  };
  const request = (kind: CertificateKind): EndEntityRequest => ({
    kind,
    spki,
    serial: newSerial(),
    issuanceId: '20261125120000BENCH0123456789',
    facts: kind === 'sign' ? FACTS : undefined,
    notBefore: new Date(),
    years: 3,
  });
  const parts: { part: string; microseconds: number }[] = [
    {
      part: 'Authority.issue, kind auth, SQLite (the whole path)',
      microseconds: await time((i) => sqlite.issue({ kind: 'auth', csr: csrs[i % csrs.length]! })),
    },
    {
      part: "crypto.sign('sha256', 1200 B, RSA-2048): the CA signature",
      microseconds: await time(() => sign('sha256', tbs, caKey)),
    },
    {
      part: 'verifyCsr (PKCS#10 parse + proof of possession + key policy)',
      microseconds: await time((i) => verifyCsr(csrs[i % csrs.length]!)),
    },
    {
      part: '  of which crypto.verify of the request signature',
      microseconds: await time(() => verify('sha256', reqTbs, publicKey, reqSig)),
    },
    {
      part: '  of which checkSubjectKey (SPKI parts -> JWK import, DER check, key policy)',
      microseconds: await time(() => checkSubjectKey(spki)),
    },
    {
      part: 'endEntityTemplate, auth (constant extensions prepared once per CA)',
      microseconds: await time(() => endEntityTemplate(request('auth'), profiles.auth)),
    },
    { part: 'insertCertificate, SQLite', microseconds: await time(insert(sqlite)) },
  ];
  // Whole path minus the top-level parts above (sign, verifyCsr, template, insert).
  const [whole, signUs, verifyUs, , , templateUs, insertUs] = parts.map((p) => p.microseconds);
  parts.push(
    {
      part: 'rest: DER assembly, PEM, serial, hashes, promises, GC (whole - parts above)',
      microseconds: round(whole! - signUs! - verifyUs! - templateUs! - insertUs!, 1),
    },
    {
      part: 'endEntityTemplate, sign (with the four basic facts)',
      microseconds: await time(() => endEntityTemplate(request('sign'), profiles.sign)),
    },
  );
  // What the path used to pay, and no longer does (for comparison with earlier runs).
  parts.push(
    {
      part: 'before: endEntityTemplate, auth, rebuilding the constant extensions every time',
      microseconds: await time(() =>
        endEntityTemplate(request('auth'), endEntityProfile('auth', issuer, onePoint)),
      ),
    },
    {
      part: 'before: endEntityTemplate, sign, rebuilding the constant extensions every time',
      microseconds: await time(() =>
        endEntityTemplate(request('sign'), endEntityProfile('sign', issuer, onePoint)),
      ),
    },
    {
      part: "no longer on the path: createPublicKey({format: 'der', type: 'spki'})",
      microseconds: await time(() => createPublicKey({ key: spki, format: 'der', type: 'spki' })),
    },
    {
      part: 'no longer on the path: AsnConvert.parse(CertificationRequest)',
      microseconds: await time((i) => AsnConvert.parse(csrs[i % csrs.length]!, CertificationRequest)),
    },
    {
      part: 'no longer on the path: new X509Certificate(CA certificate).validTo (now once, at open)',
      microseconds: await time(() => new X509Certificate(caDer).validTo),
    },
  );
  const pgAuthority = authorities.find((a) => a.store === 'postgres')?.authority;
  if (pgAuthority) {
    parts.push(
      {
        part: 'Authority.issue, kind auth, PostgreSQL (the whole path)',
        microseconds: await time((i) => pgAuthority.issue({ kind: 'auth', csr: csrs[i % csrs.length]! })),
      },
      {
        part: 'insertCertificate, PostgreSQL (one statement, one commit: waits for the WAL flush)',
        microseconds: await time(insert(pgAuthority)),
      },
      {
        part: 'insertCertificates, 8 rows in one statement and commit, PostgreSQL, per certificate',
        microseconds: round(
          (await time(
            () => insertCertificates(pgAuthority.store.db, Array.from({ length: 8 }, row)),
            n / 8,
          )) / 8,
          1,
        ),
      },
    );
    // What the WAL flush costs: the same with commits that do not wait for it. Not durable, so
    // not how the authority runs, and not counted toward the target.
    const asyncDb = await createPostgresDatabase();
    let asyncAuthority: Authority | undefined;
    try {
      await adminQuery(`alter database ${asyncDb.name} set synchronous_commit = off`);
      asyncAuthority = await Authority.open(dataDir, { env: ENV, databaseUrl: asyncDb.url });
      const a = asyncAuthority;
      parts.push(
        {
          part: 'not counted: Authority.issue, kind auth, PostgreSQL with synchronous_commit = off',
          microseconds: await time((i) => a.issue({ kind: 'auth', csr: csrs[i % csrs.length]! })),
        },
        {
          part: 'not counted: insertCertificate, PostgreSQL with synchronous_commit = off',
          microseconds: await time(insert(a)),
        },
      );
    } finally {
      await asyncAuthority?.close();
      await asyncDb.drop().catch((e) => log(`could not drop ${asyncDb.name}: ${e}`));
    }
  }
  return parts;
}
