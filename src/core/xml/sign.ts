// Enveloped XML signatures (XMLDSig) with XAdES-BES qualifying properties, as e-Tax uses them.
import { randomBytes } from 'node:crypto';
import type { Signer } from '../signer.ts';
import { canonicalizeDocumentWithoutSignature, canonicalizeElement } from './c14n.ts';
import { certificateInfo, ecdsaDerToRaw, issuerSerialDer, sha256 } from './cert.ts';
import {
  C14N,
  type Canonicalization,
  DIGEST_METHOD,
  ENVELOPED_SIGNATURE,
  NS,
  SIGNATURE_METHOD,
  SIGNED_PROPERTIES_TYPE,
} from './constants.ts';
import { formatError, type ParseLimits, parseXml, serializeXml } from './dom.ts';
import { verifyXml } from './verify.ts';

export interface SignXmlOptions {
  /** The document to sign (a string: an XML declaration, if any, must say UTF-8 or nothing). */
  xml: string;
  /** The key: software, HSM or IC card. It signs the canonical SignedInfo once. */
  signer: Signer;
  /** The signer's certificate, DER; it must hold the signer's public key. */
  certificate: Buffer;
  /** For SignedInfo, the document reference and the SignedProperties reference. */
  canonicalization: Canonicalization;
  /** Add XAdES-BES qualifying properties (SigningTime, SigningCertificate). Default true. */
  xades?: boolean;
  /** XAdES SigningTime. Default: now. */
  signingTime?: Date;
  /**
   * Which XAdES signing-certificate property to write: 'v1' SigningCertificate (CertDigest SHA-256 +
   * IssuerSerial; XAdES 1.3.2/1.4.1 BES, the default) or 'v2' SigningCertificateV2 (EN 319 132-1).
   */
  signingCertificate?: 'v1' | 'v2';
  /** Parsing limits for the input (default 10 MiB, depth 256). */
  limits?: ParseLimits;
}

/**
 * Signs the whole document: an enveloped ds:Signature is appended as the last child of the document
 * element, with one Reference URI="" (enveloped-signature + the chosen C14N, SHA-256) and, for
 * XAdES, a second Reference to the SignedProperties. The signature is checked with `verifyXml`
 * before it is returned. Throws XmlSignatureError (FORMAT_FAILURE) for documents that are refused.
 */
export async function signXml(opts: SignXmlOptions): Promise<string> {
  const { signer, canonicalization: c14n } = opts;
  const xades = opts.xades ?? true;
  if (c14n !== 'exclusive' && c14n !== 'inclusive')
    throw new TypeError(`canonicalization must be 'exclusive' or 'inclusive'`);
  const doc = parseXml(opts.xml, opts.limits);
  const decl = doc.firstChild;
  if (decl?.nodeType === 7 && (decl as ProcessingInstruction).target === 'xml') {
    const enc = /\bencoding\s*=\s*(['"])([^'"]*)\1/.exec((decl as ProcessingInstruction).data)?.[2];
    if (enc !== undefined && !/^utf-?8$/i.test(enc))
      throw formatError(`the XML declaration says encoding="${enc}"; only UTF-8 documents are signed`);
  }
  if (doc.getElementsByTagNameNS(NS.ds, 'Signature').length > 0)
    throw formatError('the document already contains a ds:Signature');

  const cert = certificateInfo(opts.certificate);
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(signer.publicKeySpki))
    throw new Error("the certificate does not hold the signer's public key");
  const ecdsa = signer.algorithm === 'ecdsa-p256';
  if (ecdsa !== (cert.publicKey.asymmetricKeyType === 'ec')) throw new Error('key type mismatch');

  const suffix = randomBytes(12).toString('hex');
  const id = {
    signature: `Signature-${suffix}`,
    signatureValue: `SignatureValue-${suffix}`,
    documentReference: `Reference-${suffix}`,
    signedProperties: `SignedProperties-${suffix}`,
  };

  const build = (
    ns: string,
    qname: string,
    attrs: Record<string, string> = {},
    children: (Element | string)[] = [],
  ): Element => {
    const e = doc.createElementNS(ns, qname);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith('xmlns:')) e.setAttributeNS(NS.xmlns, k, v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.appendChild(typeof c === 'string' ? doc.createTextNode(c) : c);
    return e;
  };
  const ds = (local: string, attrs?: Record<string, string>, children?: (Element | string)[]) =>
    build(NS.ds, `ds:${local}`, attrs, children);
  const xa = (local: string, attrs?: Record<string, string>, children?: (Element | string)[]) =>
    build(NS.xades, `xades:${local}`, attrs, children);
  const c14nUri = C14N[c14n];
  const sha256Method = () => ds('DigestMethod', { Algorithm: DIGEST_METHOD.sha256 });

  const documentDigest = ds('DigestValue');
  const references = [
    ds('Reference', { Id: id.documentReference, URI: '' }, [
      ds('Transforms', {}, [
        ds('Transform', { Algorithm: ENVELOPED_SIGNATURE }),
        ds('Transform', { Algorithm: c14nUri }),
      ]),
      sha256Method(),
      documentDigest,
    ]),
  ];
  const propertiesDigest = ds('DigestValue');
  if (xades)
    references.push(
      ds('Reference', { Type: SIGNED_PROPERTIES_TYPE, URI: `#${id.signedProperties}` }, [
        ds('Transforms', {}, [ds('Transform', { Algorithm: c14nUri })]),
        sha256Method(),
        propertiesDigest,
      ]),
    );
  const signedInfo = ds('SignedInfo', {}, [
    ds('CanonicalizationMethod', { Algorithm: c14nUri }),
    ds('SignatureMethod', { Algorithm: SIGNATURE_METHOD[ecdsa ? 'ecdsa-sha256' : 'rsa-sha256'] }),
    ...references,
  ]);
  const signatureValue = ds('SignatureValue', { Id: id.signatureValue });
  const signature = ds('Signature', { 'xmlns:ds': NS.ds, Id: id.signature }, [
    signedInfo,
    signatureValue,
    ds('KeyInfo', {}, [ds('X509Data', {}, [ds('X509Certificate', {}, [cert.der.toString('base64')])])]),
  ]);

  let signedProperties: Element | undefined;
  if (xades) {
    const time = (opts.signingTime ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const certDigest = xa('CertDigest', {}, [
      sha256Method(),
      ds('DigestValue', {}, [sha256(cert.der).toString('base64')]),
    ]);
    const signingCertificate =
      opts.signingCertificate === 'v2'
        ? xa('SigningCertificateV2', {}, [
            xa('Cert', {}, [
              certDigest,
              xa('IssuerSerialV2', {}, [issuerSerialDer(cert).toString('base64')]),
            ]),
          ])
        : xa('SigningCertificate', {}, [
            xa('Cert', {}, [
              certDigest,
              xa('IssuerSerial', {}, [
                ds('X509IssuerName', {}, [cert.issuerRfc4514]),
                ds('X509SerialNumber', {}, [cert.serialDecimal]),
              ]),
            ]),
          ]);
    signedProperties = xa('SignedProperties', { Id: id.signedProperties }, [
      xa('SignedSignatureProperties', {}, [xa('SigningTime', {}, [time]), signingCertificate]),
      xa('SignedDataObjectProperties', {}, [
        xa('DataObjectFormat', { ObjectReference: `#${id.documentReference}` }, [
          xa('MimeType', {}, ['text/xml']),
        ]),
      ]),
    ]);
    signature.appendChild(
      ds('Object', {}, [
        xa('QualifyingProperties', { 'xmlns:xades': NS.xades, Target: `#${id.signature}` }, [
          signedProperties,
        ]),
      ]),
    );
  }

  doc.documentElement.appendChild(signature);
  documentDigest.appendChild(
    doc.createTextNode(sha256(canonicalizeDocumentWithoutSignature(doc, signature, c14n)).toString('base64')),
  );
  if (signedProperties)
    propertiesDigest.appendChild(
      doc.createTextNode(sha256(canonicalizeElement(signedProperties, c14n)).toString('base64')),
    );

  let value = await signer.sign(Buffer.from(canonicalizeElement(signedInfo, c14n), 'utf8'));
  if (ecdsa) value = ecdsaDerToRaw(value, 32);
  signatureValue.appendChild(doc.createTextNode(value.toString('base64')));

  const out = serializeXml(doc);
  const check = verifyXml(out, { maxBytes: Number.MAX_SAFE_INTEGER, maxDepth: opts.limits?.maxDepth });
  if (check.status !== 'valid')
    throw new Error(`the signature just made does not verify (${check.subIndication}: ${check.message})`);
  return out;
}
