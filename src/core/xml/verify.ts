// Verification of enveloped XML signatures (XMLDSig) with optional XAdES-BES/-T properties.
//
// The profile is deliberately narrow, because every freedom XMLDSig allows is a way to make a
// verifier check one thing while the application reads another (signature wrapping):
// - exactly one ds:Signature, a child of the document element;
// - it must sign the WHOLE document: a Reference URI="" with the enveloped-signature transform
//   (and optionally one C14N transform). Apart from it, only a Reference to the XAdES
//   SignedProperties of this very signature is allowed, and its Id must occur once in the document;
// - nothing but XMLDSig/XAdES elements inside the signature (it is the one part of the document the
//   whole-document reference does not cover), and no XMLDSig/XAdES elements outside it;
// - algorithms: RSA-SHA256 and ECDSA-SHA256 signatures, SHA-2 digests, C14N 1.0 and exclusive
//   C14N 1.0 without comments. SHA-1, MD5 and MACs are refused (CRYPTO_CONSTRAINTS_FAILURE), also for
//   legacy documents: a SHA-1 signature cannot prove today what it claims;
// - RSA keys of fewer than 2048 bits are refused (CRYPTO_CONSTRAINTS_FAILURE).
// What was verified is returned as `signedElement` (the canonical octets the digest covers) and
// `signedDocument` (a DOM parsed from exactly those octets): applications read data from there,
// never from the input, which may hold comments or unsigned content that were not signed.
// Certificate path validation and revocation are the caller's job; time-stamp tokens are returned
// for someone else to verify.
import { createHash, verify as cryptoVerify, timingSafeEqual } from 'node:crypto';
import { canonicalizationOf, canonicalizeDocumentWithoutSignature, canonicalizeElement } from './c14n.ts';
import {
  type CertificateInfo,
  certificateInfo,
  issuerSerialDer,
  normalizeDistinguishedName,
} from './cert.ts';
import {
  type Canonicalization,
  DIGEST_METHOD,
  ENVELOPED_SIGNATURE,
  NS,
  REFUSED_ALGORITHMS,
  SIGNATURE_METHOD,
  SIGNED_PROPERTIES_TYPE,
} from './constants.ts';
import {
  DEFAULT_MAX_BYTES,
  decodeBase64,
  decodeUtf8,
  elementChildren,
  formatError,
  is,
  leafText,
  type ParseLimits,
  parseXml,
  XmlSignatureError,
  type XmlSubIndication,
} from './dom.ts';

export interface VerifyXmlOptions extends ParseLimits {
  /** Candidate signer certificate (DER) for signatures whose KeyInfo carries none. */
  certificate?: Buffer;
}

export interface XmlVerificationResult {
  /** 'valid' only when the signature is mathematically correct and covers the whole document. */
  status: 'valid' | 'invalid';
  subIndication?: XmlSubIndication;
  message: string;
  /** The certificate whose key verified the signature (or, if none did, the first candidate). */
  signerCertificate?: Buffer;
  /** Every certificate in KeyInfo/X509Data, DER, in document order. */
  certificates: Buffer[];
  /** XAdES SigningTime, when the signature is valid and carries one. */
  signingTime?: Date;
  /** ds:SignatureMethod Algorithm. */
  signatureMethod?: string;
  /** ds:SignedInfo canonicalisation. */
  canonicalization?: Canonicalization;
  /** Whether the signature has signed XAdES qualifying properties. */
  xades: boolean;
  /**
   * When valid: exactly what the document reference covers, the canonical form of the document
   * element without the signature (comments removed).
   */
  signedElement?: string;
  /** When valid: `signedElement` parsed. Read the signed data from here and nowhere else. */
  signedDocument?: Document;
  /** The decoded ds:SignatureValue (for ECDSA: r || s). */
  signatureValue: Buffer;
  /** XAdES-T: the DER RFC 3161 tokens of xades:SignatureTimeStamp/EncapsulatedTimeStamp. */
  signatureTimeStamps: Buffer[];
  /**
   * For each token in `signatureTimeStamps`: the octets whose hash its messageImprint must be (the
   * canonicalised ds:SignatureValue element, per the time-stamp's CanonicalizationMethod).
   */
  signatureTimeStampInputs: Buffer[];
}

interface ParsedReference {
  element: Element;
  uri: string;
  type: string | null;
  transforms: string[];
  digestAlgorithm: string;
  digestValue: Buffer;
}

const DIGEST_SIZES: Record<string, [string, number]> = {
  [DIGEST_METHOD.sha256]: ['sha256', 32],
  [DIGEST_METHOD.sha384]: ['sha384', 48],
  [DIGEST_METHOD.sha512]: ['sha512', 64],
};

const ID_ATTRIBUTES = new Set(['Id', 'ID', 'id']);

const fail = (sub: XmlSubIndication, message: string) => new XmlSignatureError(sub, message);

/**
 * Verifies the one enveloped signature of `xml`. Never throws for bad input: every failure is a
 * result with a sub-indication (FORMAT_FAILURE for documents that are refused, e.g. with a DTD).
 */
export function verifyXml(xml: string | Uint8Array, opts: VerifyXmlOptions = {}): XmlVerificationResult {
  const result: XmlVerificationResult = {
    status: 'invalid',
    message: '',
    certificates: [],
    xades: false,
    signatureValue: Buffer.alloc(0),
    signatureTimeStamps: [],
    signatureTimeStampInputs: [],
  };
  try {
    verifyInto(result, xml, opts);
    return result;
  } catch (e) {
    const sub: XmlSubIndication = e instanceof XmlSignatureError ? e.subIndication : 'FORMAT_FAILURE';
    const message =
      e instanceof XmlSignatureError
        ? e.message
        : `the signature cannot be processed: ${(e as Error)?.message}`;
    return {
      status: 'invalid',
      subIndication: sub,
      message,
      certificates: result.certificates,
      xades: result.xades,
      signatureValue: result.signatureValue,
      signatureTimeStamps: result.signatureTimeStamps,
      signatureTimeStampInputs: result.signatureTimeStampInputs,
      ...(result.signerCertificate ? { signerCertificate: result.signerCertificate } : {}),
      ...(result.signatureMethod ? { signatureMethod: result.signatureMethod } : {}),
      ...(result.canonicalization ? { canonicalization: result.canonicalization } : {}),
    };
  }
}

function verifyInto(result: XmlVerificationResult, input: string | Uint8Array, opts: VerifyXmlOptions): void {
  let xml: string;
  if (typeof input === 'string') xml = input;
  else if (input instanceof Uint8Array) {
    if (input.length > (opts.maxBytes ?? DEFAULT_MAX_BYTES))
      throw formatError(`the document is larger than ${opts.maxBytes ?? DEFAULT_MAX_BYTES} bytes`);
    xml = decodeUtf8(input);
    const enc = /^\uFEFF?<\?xml[^>]*?\bencoding\s*=\s*(['"])([^'"]*)\1/.exec(xml)?.[2];
    if (enc !== undefined && !/^utf-?8$/i.test(enc))
      throw formatError(`encoding="${enc}" is not supported: documents must be UTF-8`);
  } else throw formatError('the document must be a string or bytes');
  const doc = parseXml(xml, opts);
  const root = doc.documentElement;

  // --- where the signature is, and that it is the only one -------------------------------------
  const signatures = doc.getElementsByTagNameNS(NS.ds, 'Signature');
  if (signatures.length === 0) throw formatError('the document has no ds:Signature');
  if (signatures.length > 1)
    throw formatError(`exactly one ds:Signature is expected, the document has ${signatures.length}`);
  const signature = signatures[0]!;
  if (signature.parentNode !== root)
    throw formatError('the ds:Signature must be a child of the document element (enveloped signature)');
  for (const ns of [NS.ds, NS.xades, NS.xades141]) {
    const all = doc.getElementsByTagNameNS(ns, '*');
    for (let i = 0; i < all.length; i++)
      if (!isInside(all[i]!, signature))
        throw formatError(
          `<${all[i]!.tagName}> outside the ds:Signature: XMLDSig/XAdES elements belong inside it`,
        );
  }
  const inside = signature.getElementsByTagName('*');
  for (let i = 0; i < inside.length; i++) {
    const ns = inside[i]!.namespaceURI;
    if (ns !== NS.ds && ns !== NS.xades && ns !== NS.xades141)
      throw formatError(
        `<${inside[i]!.tagName}> inside the ds:Signature: only XMLDSig and XAdES elements may be there (it is not covered by the signature)`,
      );
  }

  // --- ds:Signature structure ---------------------------------------------------------------------
  const parts = elementChildren(signature);
  const [signedInfo, signatureValueEl] = parts;
  if (!signedInfo || !is(signedInfo, NS.ds, 'SignedInfo'))
    throw formatError('ds:Signature must start with ds:SignedInfo');
  if (!signatureValueEl || !is(signatureValueEl, NS.ds, 'SignatureValue'))
    throw formatError('ds:SignedInfo must be followed by ds:SignatureValue');
  result.signatureValue = decodeBase64(leafText(signatureValueEl), 'ds:SignatureValue');
  let rest = parts.slice(2);
  let keyInfo: Element | undefined;
  if (rest[0] && is(rest[0], NS.ds, 'KeyInfo')) {
    keyInfo = rest[0];
    rest = rest.slice(1);
  }
  const objects = rest;
  for (const o of objects)
    if (!is(o, NS.ds, 'Object')) throw formatError(`unexpected <${o.tagName}> in ds:Signature`);

  // --- SignedInfo -----------------------------------------------------------------------------------
  const [c14nEl, methodEl, ...referenceEls] = elementChildren(signedInfo);
  if (!c14nEl || !is(c14nEl, NS.ds, 'CanonicalizationMethod'))
    throw formatError('ds:SignedInfo must start with ds:CanonicalizationMethod');
  const c14n = algorithmOnly(c14nEl, 'canonicalization');
  const canonicalization = canonicalizationOf(c14n);
  if (!canonicalization) throw refusedOrUnsupported(c14n, 'canonicalization method');
  result.canonicalization = canonicalization;
  if (!methodEl || !is(methodEl, NS.ds, 'SignatureMethod'))
    throw formatError('ds:CanonicalizationMethod must be followed by ds:SignatureMethod');
  const method = algorithmOnly(methodEl, 'signature method');
  result.signatureMethod = method;
  if (method !== SIGNATURE_METHOD['rsa-sha256'] && method !== SIGNATURE_METHOD['ecdsa-sha256'])
    throw refusedOrUnsupported(method, 'signature method');
  if (referenceEls.length === 0) throw formatError('ds:SignedInfo has no ds:Reference');
  const references = referenceEls.map(parseReference);

  const documentReferences = references.filter((r) => r.uri === '');
  if (documentReferences.length === 0)
    throw fail(
      'SIGNED_DATA_NOT_FOUND',
      'the signature does not cover the whole document: a Reference URI="" with the enveloped-signature transform is required',
    );
  if (documentReferences.length > 1) throw formatError('more than one Reference URI=""');
  const documentReference = documentReferences[0]!;
  if (documentReference.type === SIGNED_PROPERTIES_TYPE)
    throw formatError('the Reference URI="" cannot be typed SignedProperties');
  const [enveloped, docC14n, ...moreTransforms] = documentReference.transforms;
  if (enveloped !== ENVELOPED_SIGNATURE || moreTransforms.length > 0)
    throw formatError(
      'the Reference URI="" must have exactly the transforms enveloped-signature and (optionally) one canonicalization',
    );
  const documentC14n: Canonicalization =
    docC14n === undefined ? 'inclusive' : (canonicalizationOf(docC14n) ?? unsupportedTransform(docC14n));

  const propertyReferences = references.filter((r) => r.type === SIGNED_PROPERTIES_TYPE);
  for (const r of references)
    if (r !== documentReference && r.type !== SIGNED_PROPERTIES_TYPE)
      throw formatError(
        `unsupported Reference URI="${r.uri}": only the whole document (URI="") and the XAdES SignedProperties may be signed`,
      );
  if (propertyReferences.length > 1) throw formatError('more than one SignedProperties Reference');
  const propertiesReference = propertyReferences[0];

  // --- KeyInfo ----------------------------------------------------------------------------------------
  if (keyInfo) {
    for (const k of elementChildren(keyInfo)) {
      if (is(k, NS.ds, 'X509Data')) {
        for (const x of elementChildren(k)) {
          if (is(x, NS.ds, 'X509Certificate'))
            result.certificates.push(decodeBase64(leafText(x), 'ds:X509Certificate'));
          else if (
            !['X509IssuerSerial', 'X509SubjectName', 'X509SKI'].includes(x.localName ?? '') ||
            x.namespaceURI !== NS.ds
          )
            throw formatError(`unsupported <${x.tagName}> in ds:X509Data`);
        }
      } else if (!is(k, NS.ds, 'KeyName') && !is(k, NS.ds, 'KeyValue')) {
        throw formatError(`unsupported <${k.tagName}> in ds:KeyInfo (no key is fetched from elsewhere)`);
      }
    }
  }

  // --- XAdES qualifying properties ------------------------------------------------------------------
  const qp = qualifyingProperties(objects, signature);
  if (qp?.signedProperties && !propertiesReference)
    throw formatError('xades:SignedProperties are present but not signed (no SignedProperties Reference)');
  let propertiesC14n: Canonicalization | undefined;
  if (propertiesReference) {
    if (!qp?.signedProperties)
      throw fail(
        'SIGNED_DATA_NOT_FOUND',
        'the SignedProperties Reference has no xades:SignedProperties to point to',
      );
    const m = /^#([^#\s]+)$/.exec(propertiesReference.uri);
    if (!m)
      throw formatError(`the SignedProperties Reference URI="${propertiesReference.uri}" must be "#Id"`);
    const targets = elementsWithId(doc, m[1]!);
    if (targets.length > 1)
      throw formatError(`Id "${m[1]}" occurs ${targets.length} times in the document (signature wrapping?)`);
    if (targets[0] !== qp.signedProperties)
      throw fail(
        'SIGNED_DATA_NOT_FOUND',
        `the SignedProperties Reference URI="${propertiesReference.uri}" does not resolve to this signature's xades:SignedProperties`,
      );
    const [pc14n, ...more] = propertiesReference.transforms;
    if (more.length > 0)
      throw formatError('the SignedProperties Reference may only have one canonicalization');
    propertiesC14n =
      pc14n === undefined ? 'inclusive' : (canonicalizationOf(pc14n) ?? unsupportedTransform(pc14n));
    if (!qp.signingCertificate)
      throw formatError(
        'XAdES-BES requires xades:SigningCertificate or xades:SigningCertificateV2 among the signed properties',
      );
    result.xades = true;
  }
  if (qp) {
    for (const ts of qp.signatureTimeStamps) {
      result.signatureTimeStamps.push(ts.token);
      result.signatureTimeStampInputs.push(
        Buffer.from(canonicalizeElement(signatureValueEl, ts.canonicalization), 'utf8'),
      );
    }
  }

  // --- the signer's certificate ---------------------------------------------------------------------
  const infos = result.certificates.map(certificateInfo);
  let candidates: CertificateInfo[] =
    infos.length > 0 ? infos : opts.certificate ? [certificateInfo(opts.certificate)] : [];
  if (candidates.length === 0)
    throw fail('NO_SIGNING_CERTIFICATE_FOUND', 'the signature carries no certificate (ds:X509Certificate)');
  result.signerCertificate = candidates[0]!.der;
  if (qp?.signingCertificate) {
    const refs = qp.signingCertificate;
    candidates = candidates.filter((c) => refs.some((ref) => matchesCertRef(c, ref)));
    if (candidates.length === 0)
      throw fail(
        'NO_SIGNING_CERTIFICATE_FOUND',
        'no certificate in ds:KeyInfo matches the XAdES signing-certificate property (digest, issuer and serial number)',
      );
    result.signerCertificate = candidates[0]!.der;
  }

  // --- the digests (ETSI EN 319 102-1: data integrity before the signature value) -----------------
  const signedElement = canonicalizeDocumentWithoutSignature(doc, signature, documentC14n);
  if (!digestMatches(documentReference, signedElement))
    throw fail(
      'HASH_FAILURE',
      'the document has been altered: the digest of the Reference URI="" does not match',
    );
  if (propertiesReference && qp?.signedProperties && propertiesC14n)
    if (!digestMatches(propertiesReference, canonicalizeElement(qp.signedProperties, propertiesC14n)))
      throw fail(
        'HASH_FAILURE',
        'the XAdES signed properties have been altered: their digest does not match',
      );

  // --- the signature value ----------------------------------------------------------------------------
  const signedInfoOctets = Buffer.from(canonicalizeElement(signedInfo, canonicalization), 'utf8');
  const ecdsa = method === SIGNATURE_METHOD['ecdsa-sha256'];
  const usable = candidates.filter((c) => c.publicKey.asymmetricKeyType === (ecdsa ? 'ec' : 'rsa'));
  if (usable.length === 0)
    throw fail(
      'SIG_CRYPTO_FAILURE',
      `the certificate's key cannot make ${ecdsa ? 'ECDSA' : 'RSA'} signatures`,
    );
  const weak = usable.find((c) => !ecdsa && (c.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048);
  if (weak)
    throw fail(
      'CRYPTO_CONSTRAINTS_FAILURE',
      `RSA keys of fewer than 2048 bits are refused (${weak.publicKey.asymmetricKeyDetails?.modulusLength})`,
    );
  const signer = usable.find((c) => {
    try {
      return cryptoVerify(
        'sha256',
        signedInfoOctets,
        ecdsa ? { key: c.publicKey, dsaEncoding: 'ieee-p1363' } : c.publicKey,
        result.signatureValue,
      );
    } catch {
      return false;
    }
  });
  if (!signer) {
    result.signerCertificate = usable[0]!.der;
    throw fail('SIG_CRYPTO_FAILURE', 'the signature value does not verify with the certificate’s public key');
  }
  result.signerCertificate = signer.der;

  result.status = 'valid';
  result.signedElement = signedElement;
  result.signedDocument = parseXml(signedElement, {
    maxBytes: Number.MAX_SAFE_INTEGER,
    maxDepth: opts.maxDepth,
  });
  if (qp?.signingTime) result.signingTime = qp.signingTime;
  result.message = `the signature is valid and covers the whole <${root.tagName}> document${
    result.xades ? ' and its XAdES signed properties' : ''
  } (the certificate path is not validated here)`;
}

function isInside(el: Node, ancestor: Node): boolean {
  for (let n: Node | null = el; n; n = n.parentNode) if (n === ancestor) return true;
  return false;
}

/** The Algorithm of a *Method/Transform element that must have no content. */
function algorithmOnly(el: Element, what: string): string {
  if (elementChildren(el).length > 0)
    throw formatError(`<${el.tagName}> parameters (such as InclusiveNamespaces or XPath) are not supported`);
  const alg = el.getAttribute('Algorithm');
  if (!alg) throw formatError(`<${el.tagName}> has no ${what} Algorithm`);
  return alg;
}

function refusedOrUnsupported(uri: string, what: string): XmlSignatureError {
  const refused = REFUSED_ALGORITHMS[uri];
  if (refused) return fail('CRYPTO_CONSTRAINTS_FAILURE', `${what} ${refused} is refused (too weak): ${uri}`);
  return fail('CRYPTO_CONSTRAINTS_FAILURE', `${what} ${uri} is not supported`);
}

function unsupportedTransform(uri: string): never {
  throw formatError(`unsupported transform ${uri}`);
}

function parseReference(el: Element): ParsedReference {
  if (!is(el, NS.ds, 'Reference')) throw formatError(`unexpected <${el.tagName}> in ds:SignedInfo`);
  const uri = el.getAttribute('URI');
  if (uri === null || !el.hasAttribute('URI'))
    throw formatError('a ds:Reference without URI is not supported (the signed data would be implicit)');
  let children = elementChildren(el);
  const transforms: string[] = [];
  if (children[0] && is(children[0], NS.ds, 'Transforms')) {
    for (const t of elementChildren(children[0])) {
      if (!is(t, NS.ds, 'Transform')) throw formatError(`unexpected <${t.tagName}> in ds:Transforms`);
      const alg = algorithmOnly(t, 'transform');
      if (alg !== ENVELOPED_SIGNATURE && !canonicalizationOf(alg)) unsupportedTransform(alg);
      transforms.push(alg);
    }
    children = children.slice(1);
  }
  const [dm, dv, ...extra] = children;
  if (!dm || !is(dm, NS.ds, 'DigestMethod') || !dv || !is(dv, NS.ds, 'DigestValue') || extra.length > 0)
    throw formatError('a ds:Reference must end with ds:DigestMethod and ds:DigestValue');
  const digestAlgorithm = algorithmOnly(dm, 'digest method');
  const size = DIGEST_SIZES[digestAlgorithm];
  if (!size) throw refusedOrUnsupported(digestAlgorithm, 'digest method');
  const digestValue = decodeBase64(leafText(dv), 'ds:DigestValue');
  if (digestValue.length !== size[1]) throw formatError('a ds:DigestValue has the wrong length');
  return {
    element: el,
    uri,
    type: el.getAttribute('Type') || null,
    transforms,
    digestAlgorithm,
    digestValue,
  };
}

function digestMatches(ref: ParsedReference, octets: string): boolean {
  const [hash] = DIGEST_SIZES[ref.digestAlgorithm]!;
  const actual = createDigest(hash, octets);
  return actual.length === ref.digestValue.length && timingSafeEqual(actual, ref.digestValue);
}

const createDigest = (hash: string, data: string | Buffer): Buffer => createHash(hash).update(data).digest();

/** Elements carrying an Id/ID/id attribute (in any namespace, e.g. wsu:Id, xml:id) equal to `id`. */
function elementsWithId(doc: Document, id: string): Element[] {
  const out: Element[] = [];
  const all = doc.getElementsByTagName('*');
  for (let i = 0; i < all.length; i++) {
    const el = all[i]!;
    for (let j = 0; j < el.attributes.length; j++) {
      const a = el.attributes[j]!;
      if (ID_ATTRIBUTES.has(a.localName ?? a.name) && a.value === id) {
        out.push(el);
        break;
      }
    }
  }
  return out;
}

interface CertRef {
  digestAlgorithm: string;
  digest: Buffer;
  /** v1: X509IssuerName and X509SerialNumber. */
  issuerName?: string;
  serialNumber?: string;
  /** v2: DER IssuerSerial. */
  issuerSerialV2?: Buffer;
}

interface QualifyingProperties {
  signedProperties?: Element;
  signingTime?: Date;
  signingCertificate?: CertRef[];
  signatureTimeStamps: { token: Buffer; canonicalization: Canonicalization }[];
}

function qualifyingProperties(objects: Element[], signature: Element): QualifyingProperties | undefined {
  let found: Element | undefined;
  for (const o of objects) {
    const children = elementChildren(o);
    if (children.length !== 1 || !is(children[0]!, NS.xades, 'QualifyingProperties'))
      throw formatError('a ds:Object may only hold one xades:QualifyingProperties (XAdES 1.3.2)');
    if (found) throw formatError('more than one xades:QualifyingProperties');
    found = children[0];
  }
  if (!found) return undefined;
  const signatureId = signature.getAttribute('Id');
  if (!signatureId || found.getAttribute('Target') !== `#${signatureId}`)
    throw formatError('xades:QualifyingProperties Target must point to the Id of its ds:Signature');
  if (elementsWithId(signature.ownerDocument!, signatureId).length !== 1)
    throw formatError(`Id "${signatureId}" occurs more than once in the document (signature wrapping?)`);

  const out: QualifyingProperties = { signatureTimeStamps: [] };
  let children = elementChildren(found);
  if (children[0] && is(children[0], NS.xades, 'SignedProperties')) {
    out.signedProperties = children[0];
    children = children.slice(1);
    readSignedProperties(out.signedProperties, out);
  }
  if (children[0] && is(children[0], NS.xades, 'UnsignedProperties')) {
    readUnsignedProperties(children[0], out);
    children = children.slice(1);
  }
  if (children.length > 0)
    throw formatError(`unexpected <${children[0]!.tagName}> in xades:QualifyingProperties`);
  return out;
}

function readSignedProperties(sp: Element, out: QualifyingProperties): void {
  let children = elementChildren(sp);
  if (children[0] && is(children[0], NS.xades, 'SignedSignatureProperties')) {
    for (const p of elementChildren(children[0])) {
      if (is(p, NS.xades, 'SigningTime')) {
        if (out.signingTime) throw formatError('more than one xades:SigningTime');
        out.signingTime = parseDateTime(leafText(p));
      } else if (is(p, NS.xades, 'SigningCertificate') || is(p, NS.xades, 'SigningCertificateV2')) {
        if (out.signingCertificate) throw formatError('more than one XAdES signing-certificate property');
        out.signingCertificate = elementChildren(p).map((c) =>
          readCertRef(c, p.localName === 'SigningCertificateV2'),
        );
        if (out.signingCertificate.length === 0) throw formatError(`<${p.tagName}> is empty`);
      }
      // other signed signature properties (policy, production place, signer role) are not interpreted
    }
    children = children.slice(1);
  }
  if (children[0] && is(children[0], NS.xades, 'SignedDataObjectProperties')) children = children.slice(1);
  if (children.length > 0)
    throw formatError(`unexpected <${children[0]!.tagName}> in xades:SignedProperties`);
}

function readCertRef(cert: Element, v2: boolean): CertRef {
  if (!is(cert, NS.xades, 'Cert'))
    throw formatError(`unexpected <${cert.tagName}> in a signing-certificate property`);
  const [digestEl, issuerSerial, ...extra] = elementChildren(cert);
  if (!digestEl || !is(digestEl, NS.xades, 'CertDigest') || extra.length > 0)
    throw formatError('xades:Cert must hold xades:CertDigest and optionally the issuer and serial number');
  const [dm, dv, ...more] = elementChildren(digestEl);
  if (!dm || !is(dm, NS.ds, 'DigestMethod') || !dv || !is(dv, NS.ds, 'DigestValue') || more.length > 0)
    throw formatError('xades:CertDigest must hold ds:DigestMethod and ds:DigestValue');
  const digestAlgorithm = algorithmOnly(dm, 'digest method');
  if (!DIGEST_SIZES[digestAlgorithm])
    throw refusedOrUnsupported(digestAlgorithm, 'certificate digest method');
  const ref: CertRef = { digestAlgorithm, digest: decodeBase64(leafText(dv), 'xades:CertDigest') };
  if (issuerSerial) {
    if (v2 && is(issuerSerial, NS.xades, 'IssuerSerialV2')) {
      ref.issuerSerialV2 = decodeBase64(leafText(issuerSerial), 'xades:IssuerSerialV2');
    } else if (!v2 && is(issuerSerial, NS.xades, 'IssuerSerial')) {
      const [name, serial, ...x] = elementChildren(issuerSerial);
      if (
        !name ||
        !is(name, NS.ds, 'X509IssuerName') ||
        !serial ||
        !is(serial, NS.ds, 'X509SerialNumber') ||
        x.length
      )
        throw formatError('xades:IssuerSerial must hold ds:X509IssuerName and ds:X509SerialNumber');
      ref.issuerName = leafText(name);
      ref.serialNumber = leafText(serial).trim();
    } else throw formatError(`unexpected <${issuerSerial.tagName}> in xades:Cert`);
  }
  return ref;
}

function matchesCertRef(c: CertificateInfo, ref: CertRef): boolean {
  const [hash] = DIGEST_SIZES[ref.digestAlgorithm]!;
  if (!createDigest(hash, c.der).equals(ref.digest)) return false;
  if (ref.issuerSerialV2 && !ref.issuerSerialV2.equals(issuerSerialDer(c))) return false;
  if (ref.serialNumber !== undefined) {
    if (!/^-?\d+$/.test(ref.serialNumber) || BigInt(ref.serialNumber) !== BigInt(c.serialDecimal))
      return false;
    const given = normalizeDistinguishedName(ref.issuerName ?? '');
    if (given === undefined || given !== normalizeDistinguishedName(c.issuerRfc4514)) return false;
  }
  return true;
}

function readUnsignedProperties(up: Element, out: QualifyingProperties): void {
  for (const group of elementChildren(up)) {
    if (is(group, NS.xades, 'UnsignedSignatureProperties')) {
      for (const p of elementChildren(group)) {
        if (!is(p, NS.xades, 'SignatureTimeStamp')) continue; // other unsigned properties: not interpreted
        let canonicalization: Canonicalization = 'inclusive';
        const tokens: Buffer[] = [];
        for (const c of elementChildren(p)) {
          if (is(c, NS.ds, 'CanonicalizationMethod')) {
            const alg = algorithmOnly(c, 'canonicalization');
            canonicalization = canonicalizationOf(alg) ?? unsupportedTransform(alg);
          } else if (is(c, NS.xades, 'EncapsulatedTimeStamp')) {
            const encoding = c.getAttribute('Encoding');
            if (encoding && encoding !== 'http://uri.etsi.org/01903/v1.2.2#DER')
              throw formatError(`EncapsulatedTimeStamp Encoding ${encoding} is not supported`);
            tokens.push(decodeBase64(leafText(c), 'xades:EncapsulatedTimeStamp'));
          } else throw formatError(`unsupported <${c.tagName}> in xades:SignatureTimeStamp`);
        }
        if (tokens.length === 0)
          throw formatError('xades:SignatureTimeStamp without xades:EncapsulatedTimeStamp');
        for (const token of tokens) out.signatureTimeStamps.push({ token, canonicalization });
      }
    } else if (!is(group, NS.xades, 'UnsignedDataObjectProperties')) {
      throw formatError(`unexpected <${group.tagName}> in xades:UnsignedProperties`);
    }
  }
}

/** xs:dateTime with a time zone. */
function parseDateTime(text: string): Date {
  const s = text.trim();
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  const d = m ? new Date(s) : undefined;
  if (!d || Number.isNaN(d.getTime()))
    throw formatError(`xades:SigningTime "${s}" is not an xs:dateTime with a time zone`);
  return d;
}
