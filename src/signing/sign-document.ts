import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  addSignatureTimeStamp,
  signatureTimeStampImprint as cmsImprint,
  signCms,
} from '../core/cms/index.ts';
import { decodePem, decodePemAll } from '../core/pem.ts';
import type { Signer } from '../core/signer.ts';
import {
  addXadesSignatureTimeStamp,
  type Canonicalization,
  signXml,
  signatureTimeStampImprint as xmlImprint,
} from '../core/xml/index.ts';
import type { KeyStore } from '../keys/keystore.ts';
import { SoftwareSigner } from '../keys/software.ts';
import { requestTimeStamp, TimeStampUnavailableError } from './tsa-client.ts';

export type SignatureFormat = 'cms' | 'xml';

/** Where the signing key is: a PEM file, or a PKCS#11 token (an IC card through OpenSC, SoftHSM2 in tests). */
export type KeySource =
  | { type: 'file'; keyPath: string; passphrase?: string }
  | { type: 'pkcs11'; module: string; tokenLabel: string; pin: string; keyLabel?: string };

export interface OpenedKey {
  signer: Signer;
  close(): Promise<void>;
}

/** Opens the signing key. For PKCS#11 without a key label, the token must hold exactly one private key. */
export async function openSigningKey(source: KeySource): Promise<OpenedKey> {
  if (source.type === 'file') {
    let key: KeyObject;
    const pem = readFileSync(source.keyPath, 'utf8');
    try {
      key = createPrivateKey({ key: pem, format: 'pem', passphrase: source.passphrase });
    } catch {
      throw new Error(`cannot read the private key in ${source.keyPath} (wrong passphrase or not a PEM key)`);
    }
    return { signer: SoftwareSigner.fromKeyObject(key), close: async () => {} };
  }
  const { Pkcs11KeyStore } = await import('../keys/pkcs11.ts');
  const store: KeyStore & { privateKeyLabels(): Promise<string[]> } = new Pkcs11KeyStore({
    module: source.module,
    tokenLabel: source.tokenLabel,
    pin: source.pin,
  });
  try {
    let label = source.keyLabel;
    if (!label) {
      const labels = await store.privateKeyLabels();
      if (labels.length !== 1)
        throw new Error(
          `the token holds ${labels.length} private keys (${labels.join(', ') || 'none'}); choose one with --key-label`,
        );
      label = labels[0]!;
    }
    return { signer: await store.open(label), close: () => store.close() };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** The signer's certificate (first CERTIFICATE block) and any further ones (the chain). */
export function readCertificates(path: string): { certificate: Buffer; chain: Buffer[] } {
  const text = readFileSync(path, 'utf8');
  const all = decodePemAll(text, 'CERTIFICATE');
  if (all.length === 0) return { certificate: decodePem(text, ['CERTIFICATE']), chain: [] };
  return { certificate: all[0]!, chain: all.slice(1) };
}

export interface SignDocumentInput {
  format: SignatureFormat;
  signer: Signer;
  certificate: Buffer;
  chain?: Buffer[];
  content: Buffer;
  /** CMS only: leave the content out of the signature file. */
  detached?: boolean;
  /** XML only. */
  canonicalization?: Canonicalization;
  /** RFC 3161 TSA URL: makes the signature CAdES-T / XAdES-T. */
  timestampUrl?: string;
}

export interface SignedDocument {
  output: Buffer;
  /** Set when a time stamp was asked for but could not be added; the signature is still written. */
  timestampMissing?: string;
}

/**
 * Signs a document (CMS/CAdES or enveloped XML-DSig/XAdES). With a TSA URL the signature is time
 * stamped; if the TSA is down the signature is still made and `timestampMissing` says why, so
 * the caller can queue `jpki timestamp` for later instead of stopping the filing.
 */
export async function signDocument(input: SignDocumentInput): Promise<SignedDocument> {
  let output: Buffer;
  if (input.format === 'cms') {
    output = await signCms({
      signer: input.signer,
      certificate: input.certificate,
      chain: input.chain,
      content: input.content,
      detached: !!input.detached,
    });
  } else {
    if (input.detached) throw new Error('XML signatures are enveloped; --detached applies to CMS only');
    output = Buffer.from(
      await signXml({
        xml: input.content.toString('utf8'),
        signer: input.signer,
        certificate: input.certificate,
        canonicalization: input.canonicalization ?? 'exclusive',
      }),
      'utf8',
    );
  }
  if (!input.timestampUrl) return { output };
  try {
    return { output: await addTimeStamp(input.format, output, input.timestampUrl) };
  } catch (e) {
    if (e instanceof TimeStampUnavailableError) return { output, timestampMissing: e.message };
    throw e;
  }
}

/** Adds a signature time stamp to an existing signature (CAdES-T / XAdES-T). */
export async function addTimeStamp(format: SignatureFormat, signed: Buffer, url: string): Promise<Buffer> {
  if (format === 'cms') {
    const token = await requestTimeStamp(url, cmsImprint(signed));
    return addSignatureTimeStamp(signed, token);
  }
  const xml = signed.toString('utf8');
  const token = await requestTimeStamp(url, { algorithm: 'sha256', digest: xmlImprint(xml) });
  return Buffer.from(addXadesSignatureTimeStamp(xml, token), 'utf8');
}

/** Guesses the format of a signature file: XML starts with '<' (after a BOM/whitespace), CMS with a DER SEQUENCE. */
export function detectFormat(data: Buffer): SignatureFormat {
  const head = data
    .subarray(0, 64)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trimStart();
  return head.startsWith('<') ? 'xml' : 'cms';
}
