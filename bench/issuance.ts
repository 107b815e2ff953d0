// Issuance: certificates per second through the whole Authority.issue path (CSR check, profile,
// sign, store), one request after the other, against raw RSA-2048 signatures per second on one
// thread measured in the same rounds.

import { createHash, createPublicKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Authority } from '../src/authority/authority.ts';
import { verifyCsr } from '../src/core/csr.ts';
import type { CertificateKind } from '../src/core/profiles.ts';
import { newSerial, serialHex } from '../src/core/serial.ts';
import { insertCertificate } from '../src/store/certificates.ts';
import {
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
  /** Length of one raw-signature loop. */
  rawSeconds: number;
  csrs: number;
}

export const ISSUANCE_DEFAULTS: IssuanceOptions = { rounds: 5, seconds: 2, rawSeconds: 1, csrs: 200 };
export const ISSUANCE_TARGET_RATIO = 0.6;

export interface IssuanceCase {
  store: 'sqlite' | 'postgres';
  kind: CertificateKind;
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
  cases: IssuanceCase[];
  /** Where the time of one issuance goes: microseconds per call of its parts, measured alone. */
  breakdown: { part: string; microseconds: number }[];
  postgresSkipped?: string;
}

export async function benchIssuance(o: IssuanceOptions = ISSUANCE_DEFAULTS): Promise<IssuanceResult> {
  log(
    `issuance: ${o.rounds} rounds of ${o.seconds} s per case, raw RSA signatures ${o.rawSeconds} s per round`,
  );
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
    const issueFor = async (authority: Authority, kind: CertificateKind, ms: number) => {
      let n = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      let now = t0;
      while (now < end) {
        await issueOne(authority, kind);
        n++;
        now = performance.now();
      }
      return n / ((now - t0) / 1000);
    };
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

    // Warm-up: JIT, statement caches, the PostgreSQL pool.
    rawFor(300);
    for (const { authority } of authorities)
      for (const kind of ['auth', 'sign'] as const) await issueFor(authority, kind, 300);

    const cases: IssuanceCase[] = authorities.flatMap(({ store }) =>
      (['auth', 'sign'] as const).map((kind) => ({
        store,
        kind,
        rates: [] as number[],
        ratios: [] as number[],
        medianRate: 0,
        medianRatio: 0,
        msPerCertificate: 0,
        meetsTarget: false,
      })),
    );
    const rawRates: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const raw = rawFor(o.rawSeconds * 1000);
      rawRates.push(raw);
      const parts = [`raw ${round(raw)}/s`];
      for (const c of cases) {
        const { authority } = authorities.find((a) => a.store === c.store)!;
        const rate = await issueFor(authority, c.kind, o.seconds * 1000);
        c.rates.push(rate);
        c.ratios.push(rate / raw);
        parts.push(`${c.store}/${c.kind} ${round(rate)}/s`);
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
    const breakdown = await measureParts(authorities, csrs, ca.certPath('sign'), caKey, tbs);
    const result: IssuanceResult = {
      options: o,
      target: `issuance rate / raw RSA-2048 signature rate >= ${ISSUANCE_TARGET_RATIO}`,
      raw: {
        what: "crypto.sign('sha256', 1200 bytes, RSA-2048 KeyObject), synchronous, one thread",
        rates: rawRates.map((x) => round(x, 1)),
        medianRate: round(median(rawRates), 1),
      },
      cases,
      breakdown,
      ...(postgresSkipped ? { postgresSkipped } : {}),
    };
    printTable(
      `Issuance (Authority.issue, sequential awaits; median of ${o.rounds} rounds of ${o.seconds} s)`,
      ['store', 'kind', 'certs/s', 'ms/cert', 'ratio to raw sign', `target >= ${ISSUANCE_TARGET_RATIO}`],
      [
        ['raw RSA-2048 sign', '-', result.raw.medianRate, round(1000 / result.raw.medianRate, 3), 1, '-'],
        ...cases.map((c) => [
          c.store,
          c.kind,
          c.medianRate,
          c.msPerCertificate,
          c.medianRatio,
          c.meetsTarget ? 'met' : 'NOT met',
        ]),
      ],
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
): Promise<{ part: string; microseconds: number }[]> {
  const n = 1000;
  const time = async (f: (i: number) => unknown) => {
    for (let i = 0; i < 200; i++) await f(i);
    const per: number[] = [];
    for (let b = 0; b < 3; b++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await f(i);
      per.push(((performance.now() - t0) * 1000) / n);
    }
    return round(median(per), 1);
  };
  const caDer = readCertDer(signCaPem);
  const { spki } = verifyCsr(csrs[0]!);
  const der = randomBytes(1400);
  const spkiSha256 = createHash('sha256').update(spki).digest('hex');
  const insert = (authority: Authority) => () =>
    insertCertificate(authority.store.db, {
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
  const sqlite = authorities.find((a) => a.store === 'sqlite')!.authority;
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
      part: "  of which createPublicKey({format: 'der', type: 'spki'})",
      microseconds: await time(() => createPublicKey({ key: spki, format: 'der', type: 'spki' })),
    },
    {
      part: '  of which AsnConvert.parse(CertificationRequest)',
      microseconds: await time((i) => AsnConvert.parse(csrs[i % csrs.length]!, CertificationRequest)),
    },
    {
      part: 'new X509Certificate(CA certificate).validTo (certificateNotAfter, on every issue)',
      microseconds: await time(() => new X509Certificate(caDer).validTo),
    },
    { part: 'insertCertificate, SQLite', microseconds: await time(insert(sqlite)) },
  ];
  // Whole path minus the top-level parts above (sign, verifyCsr, X509Certificate, insert).
  const [whole, signUs, verifyUs, , , x509Us, insertUs] = parts.map((p) => p.microseconds);
  parts.push({
    part: 'rest: profile template, DER assembly, PEM, hashes, Kysely, GC (whole - parts above)',
    microseconds: round(whole! - signUs! - verifyUs! - x509Us! - insertUs!, 1),
  });
  const pgAuthority = authorities.find((a) => a.store === 'postgres')?.authority;
  if (pgAuthority)
    parts.push({ part: 'insertCertificate, PostgreSQL', microseconds: await time(insert(pgAuthority)) });
  return parts;
}
