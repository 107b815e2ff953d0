// Verification: detached CAdES-T signatures over a 10 KB document verified per second through the
// whole verifySignature path (CMS signature, time-stamp token and its TSA path, the signer's RFC
// 5280 path with revocation from a warm cache), against raw RSA-2048 verifications per second of
// node:crypto on one thread, measured in the same rounds.

import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { Authority } from '../src/authority/authority.ts';
import {
  addSignatureTimeStamp,
  signatureTimeStampImprint,
  signCms,
  verifyCms,
} from '../src/core/cms/index.ts';
import { parseSignedData } from '../src/core/cms/signed-data.ts';
import { bitString, explicit, integer, NULL, oid, sequence, set, utf8String } from '../src/core/der.ts';
import { OID } from '../src/core/oids.ts';
import {
  buildTimeStampRequest,
  verifyTimeStampResponse,
  verifyTimeStampToken,
} from '../src/core/tsp/index.ts';
import { SoftwareSigner } from '../src/keys/software.ts';
import { RevocationSource } from '../src/verifier/revocation-source.ts';
import { validateCertificate } from '../src/verifier/validate-certificate.ts';
import { verifySignature } from '../src/verifier/verify-signature.ts';
import { createAuthority, ENV, FACTS, log, median, printTable, readCertDer, round } from './util.ts';

export const VERIFY_TARGET_RATIO = 0.5;

export interface VerifyResult {
  target: string;
  options: {
    rounds: number;
    seconds: number;
    documentBytes: number;
    signatures: number;
    freshSigners: number;
  };
  raw: { what: string; rates: number[]; medianRate: number };
  verify: {
    what: string;
    rates: number[];
    ratios: number[];
    medianRate: number;
    medianRatio: number;
    /** The rate against half the raw rate: each verification needs two RSA verifications. */
    medianRatioToTwoVerifies: number;
  };
  freshSigner: { what: string; rawRate: number; rate: number; ratio: number };
  /** µs per call of the parts of a verification, each timed alone. */
  partsMicroseconds: Record<string, number>;
  meetsTarget: boolean;
  notes: string[];
}

function csrFor(privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'], spki: Buffer): Buffer {
  const info = sequence(
    integer(0),
    sequence(set(sequence(oid('2.5.4.3'), utf8String('bench')))),
    spki,
    explicit(0),
  );
  return sequence(
    info,
    sequence(oid(OID.sha256WithRSAEncryption), NULL),
    bitString(sign('sha256', info, privateKey)),
  );
}

function loop(seconds: number, fn: () => void): number {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < end) {
    fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

async function loopAsync(seconds: number, fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

export interface VerifyFixture {
  docs: { content: Buffer; signature: Buffer }[];
  /** Signatures each by a signer certificate that no other signature uses, never verified before. */
  freshDocs: { content: Buffer; signature: Buffer }[];
  trust: Buffer[];
  untrusted: Buffer[];
  source: RevocationSource;
  /** The resident's key pair, for the raw-verify reference. */
  publicKey: KeyObject;
  privateKey: KeyObject;
  close(): Promise<void>;
}

/**
 * An authority, one resident with a signature certificate, `signatures` different documents signed
 * and time-stamped by the authority's TSA, CRLs of both CAs in a warm RevocationSource; every
 * signature is verified once (caches warm) and must pass.
 */
export async function verifyFixture(
  signatures: number,
  documentBytes: number,
  freshSigners = 0,
): Promise<VerifyFixture> {
  const ba = await createAuthority();
  const authority = await Authority.open(ba.dir, { env: ENV });
  const close = async () => {
    await authority.close();
    ba.cleanup();
  };
  try {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const cert = await authority.issue({ kind: 'sign', csr: csrFor(privateKey, spki), facts: FACTS });
    const signer = SoftwareSigner.fromKeyObject(
      createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' })),
    );
    const signed = async (certificate: Buffer) => {
      const content = randomBytes(documentBytes);
      const cms = await signCms({ signer, certificate, content, detached: true });
      const imprint = signatureTimeStampImprint(cms);
      const req = buildTimeStampRequest({
        digest: imprint.digest,
        hashAlgorithm: imprint.algorithm,
        certReq: true,
      });
      const resp = await authority.timeStamp(req);
      const v = verifyTimeStampResponse(resp.der, req);
      if (!v.token) throw new Error(`time stamp failed: ${v.message}`);
      return { content, signature: addSignatureTimeStamp(cms, v.token) };
    };
    // Different documents and signatures, one signer: as a verifier sees a day of filings.
    const docs: { content: Buffer; signature: Buffer }[] = [];
    for (let i = 0; i < signatures; i++) docs.push(await signed(cert.der));
    // And signatures whose signer certificate the verifier meets for the first time (one key pair,
    // a new certificate each: the certificate is what is parsed, checked and looked up).
    const freshDocs: { content: Buffer; signature: Buffer }[] = [];
    const csr = csrFor(privateKey, spki);
    for (let i = 0; i < freshSigners; i++) {
      const c = await authority.issue({ kind: 'sign', csr, facts: FACTS });
      freshDocs.push(await signed(c.der));
    }
    await authority.generateCrl('root');
    await authority.generateCrl('sign');
    const source = new RevocationSource({ online: false });
    for (const ca of ['root', 'sign'] as const) source.addCrl((await authority.currentCrl(ca, 'full'))!.der);
    const trust = [readCertDer(ba.certPath('root'))];
    const untrusted = [readCertDer(ba.certPath('sign'))];

    // Warm the caches and check that every signature passes.
    for (const d of docs) {
      const r = await verifySignature({
        signature: d.signature,
        content: d.content,
        trust,
        untrusted,
        source,
      });
      if (r.indication !== 'TOTAL_PASSED' || r.format !== 'CAdES-T')
        throw new Error(
          `benchmark signature does not pass: ${r.indication}/${r.subIndication}: ${r.messages.join('; ')}`,
        );
    }
    return { docs, freshDocs, trust, untrusted, source, publicKey, privateKey, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Microseconds per call of `fn`, median of `rounds` runs of `seconds` each. */
async function microseconds(fn: (i: number) => unknown, rounds = 3, seconds = 0.3): Promise<number> {
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    let n = 0;
    while (performance.now() - start < seconds * 1000) await fn(n++);
    out.push(((performance.now() - start) * 1000) / n);
  }
  return median(out);
}

export async function benchVerify(
  opts = { rounds: 5, seconds: 2, documentBytes: 10 * 1024, signatures: 50, freshSigners: 1500 },
) {
  log('verification: setting up an authority, a resident and time-stamped signatures');
  const fx = await verifyFixture(opts.signatures, opts.documentBytes, opts.freshSigners);
  const { docs, trust, untrusted, source, publicKey, privateKey } = fx;
  try {
    const data = randomBytes(32);
    const sig = sign('sha256', data, privateKey);
    const rawVerify = () => {
      verify('sha256', data, publicKey, sig);
    };
    const rawRates: number[] = [];
    const rates: number[] = [];
    const ratios: number[] = [];
    let i = 0;
    const once = (d: { content: Buffer; signature: Buffer }) =>
      verifySignature({ signature: d.signature, content: d.content, trust, untrusted, source });
    for (let round_ = 0; round_ < opts.rounds; round_++) {
      const raw = loop(1, rawVerify);
      const rate = await loopAsync(opts.seconds, async () => {
        await once(docs[i++ % docs.length]!);
      });
      rawRates.push(raw);
      rates.push(rate);
      ratios.push(rate / raw);
    }

    // A signer certificate never seen before, every time: one pass over the fresh signatures.
    log(`verification: ${fx.freshDocs.length} signatures by signer certificates seen for the first time`);
    const freshRaw = loop(1, rawVerify);
    const start = performance.now();
    for (const d of fx.freshDocs) {
      const r = await once(d);
      if (r.indication !== 'TOTAL_PASSED') throw new Error(`fresh signature does not pass: ${r.messages[0]}`);
    }
    const freshRate = fx.freshDocs.length / ((performance.now() - start) / 1000);

    // Where the time goes: the parts of one verification, timed alone (warm caches).
    const d0 = docs[0]!;
    const cms = verifyCms(d0.signature, { detachedContent: d0.content, certificates: untrusted });
    if (cms.status !== 'valid' || !cms.timeStamps[0]?.tsaCertificate) throw new Error('no valid CMS');
    const ts = cms.timeStamps[0];
    const parts = {
      rawVerify: await microseconds(rawVerify),
      verifySignature: await microseconds((k) => once(docs[k % docs.length]!)),
      verifyCms: await microseconds((k) => {
        const d = docs[k % docs.length]!;
        return verifyCms(d.signature, { detachedContent: d.content, certificates: untrusted });
      }),
      parseSignedData: await microseconds((k) => parseSignedData(docs[k % docs.length]!.signature)),
      verifyTimeStampToken: await microseconds(() =>
        verifyTimeStampToken(ts.token, { data: cms.signatureValue, certificates: untrusted }),
      ),
      sha256OfDocument: await microseconds(() => createHash('sha256').update(d0.content).digest()),
      validateTsaCertificate: await microseconds(() =>
        validateCertificate({
          target: ts.tsaCertificate!,
          untrusted: [...ts.certificates, ...cms.certificates, ...untrusted],
          trust,
          at: ts.genTime,
          source,
        }),
      ),
      validateSignerCertificate: await microseconds(() =>
        validateCertificate({
          target: cms.signerCertificate,
          untrusted: [...cms.certificates, ...untrusted],
          trust,
          source,
        }),
      ),
    };

    const result: VerifyResult = {
      target: `verifications/s of a detached CAdES-T over ${opts.documentBytes / 1024} KB ÷ raw RSA-2048 verifications/s >= ${VERIFY_TARGET_RATIO}`,
      options: opts,
      raw: {
        what: 'crypto.verify sha256 RSA-2048, one thread',
        rates: rawRates,
        medianRate: median(rawRates),
      },
      verify: {
        what: 'verifySignature: CMS + time-stamp token + TSA path + signer path with CRLs from a warm cache',
        rates,
        ratios,
        medianRate: median(rates),
        medianRatio: median(ratios),
        medianRatioToTwoVerifies: 2 * median(ratios),
      },
      freshSigner: {
        what: `verifySignature of ${fx.freshDocs.length} signatures, each by a signer certificate seen for the first time (one pass)`,
        rawRate: freshRaw,
        rate: freshRate,
        ratio: freshRate / freshRaw,
      },
      partsMicroseconds: parts,
      meetsTarget: median(ratios) >= VERIFY_TARGET_RATIO,
      notes: [
        'Each verification checks at least two RSA signatures that no cache can answer (the CMS signature and the time-stamp token), so the ratio cannot exceed 0.5 unless the other work is free; medianRatioToTwoVerifies is the rate against half the raw rate.',
      ],
    };
    printTable(
      'Verification (detached CAdES-T, 10 KB)',
      ['what', 'per second (median)', 'ratio to raw verify', 'ratio to 2 raw verifies'],
      [
        ['raw RSA-2048 verify', round(result.raw.medianRate), '1', '–'],
        [
          'verifySignature',
          round(result.verify.medianRate),
          round(result.verify.medianRatio, 3),
          round(2 * result.verify.medianRatio, 3),
        ],
        [
          'verifySignature, new signer certificate each time',
          round(freshRate),
          round(freshRate / freshRaw, 3),
          round((2 * freshRate) / freshRaw, 3),
        ],
      ],
    );
    printTable(
      'Where the time goes (µs per call, warm caches)',
      ['part', 'µs'],
      Object.entries(parts).map(([k, v]) => [k, round(v, 1)]),
    );
    return result;
  } finally {
    await fx.close();
  }
}
