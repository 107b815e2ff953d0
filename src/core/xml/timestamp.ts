// XAdES-T: a signature time-stamp over the signature value, as an unsigned property.
import { createHash } from 'node:crypto';
import { canonicalizeElement } from './c14n.ts';
import { C14N, NS } from './constants.ts';
import {
  elementChildren,
  formatError,
  is,
  type ParseLimits,
  parseXml,
  serializeXml,
  XmlSignatureError,
} from './dom.ts';
import { verifyXml } from './verify.ts';

/** The canonicalisation used for the time-stamped ds:SignatureValue (declared in the time-stamp). */
const TIMESTAMP_C14N = 'exclusive' as const;

function locate(doc: Document): { signature: Element; signatureValue: Element } {
  const signatures = doc.getElementsByTagNameNS(NS.ds, 'Signature');
  if (signatures.length !== 1)
    throw formatError(`exactly one ds:Signature is expected, the document has ${signatures.length}`);
  const signature = signatures[0]!;
  const signatureValue = elementChildren(signature).find((e) => is(e, NS.ds, 'SignatureValue'));
  if (!signatureValue) throw formatError('the ds:Signature has no ds:SignatureValue');
  return { signature, signatureValue };
}

/**
 * The SHA-256 digest to have time-stamped (the messageImprint of the RFC 3161 request) for a XAdES
 * SignatureTimeStamp: the hash of the exclusive canonical form of ds:SignatureValue.
 */
export function signatureTimeStampImprint(signedXml: string, limits?: ParseLimits): Buffer {
  const { signatureValue } = locate(parseXml(signedXml, limits));
  return createHash('sha256').update(canonicalizeElement(signatureValue, TIMESTAMP_C14N), 'utf8').digest();
}

/**
 * Adds xades:UnsignedProperties/UnsignedSignatureProperties/SignatureTimeStamp carrying `tokenDer`
 * (an RFC 3161 TimeStampToken over `signatureTimeStampImprint(signedXml)`, whose validity is not
 * checked here) to a valid XAdES signature. The signed content is untouched; the result is verified
 * before it is returned.
 */
export function addXadesSignatureTimeStamp(
  signedXml: string,
  tokenDer: Buffer,
  limits?: ParseLimits,
): string {
  if (!Buffer.isBuffer(tokenDer) || tokenDer.length === 0)
    throw new TypeError('tokenDer must be a non-empty Buffer');
  const before = verifyXml(signedXml, limits);
  if (before.status !== 'valid')
    throw new XmlSignatureError(
      before.subIndication ?? 'FORMAT_FAILURE',
      `refusing to time-stamp a signature that does not verify: ${before.message}`,
    );
  if (!before.xades) throw formatError('not a XAdES signature (no signed xades:QualifyingProperties)');
  const doc = parseXml(signedXml, limits);
  const { signature } = locate(doc);
  const qp = elementChildren(signature)
    .filter((e) => is(e, NS.ds, 'Object'))
    .flatMap((o) => elementChildren(o))
    .find((e) => is(e, NS.xades, 'QualifyingProperties'))!;

  const xa = (local: string) => doc.createElementNS(NS.xades, qp.prefix ? `${qp.prefix}:${local}` : local);
  let unsigned = elementChildren(qp).find((e) => is(e, NS.xades, 'UnsignedProperties'));
  if (!unsigned) unsigned = qp.appendChild(xa('UnsignedProperties')) as Element;
  let usp = elementChildren(unsigned).find((e) => is(e, NS.xades, 'UnsignedSignatureProperties'));
  if (!usp) usp = unsigned.insertBefore(xa('UnsignedSignatureProperties'), unsigned.firstChild) as Element;

  const id = `SignatureTimeStamp-${createHash('sha256').update(tokenDer).digest('hex').slice(0, 24)}`;
  const ts = xa('SignatureTimeStamp');
  ts.setAttribute('Id', id);
  const c14n = doc.createElementNS(
    NS.ds,
    signature.prefix ? `${signature.prefix}:CanonicalizationMethod` : 'CanonicalizationMethod',
  );
  c14n.setAttribute('Algorithm', C14N[TIMESTAMP_C14N]);
  const token = xa('EncapsulatedTimeStamp');
  token.appendChild(doc.createTextNode(tokenDer.toString('base64')));
  ts.appendChild(c14n);
  ts.appendChild(token);
  usp.appendChild(ts);

  const out = serializeXml(doc);
  const after = verifyXml(out, { ...limits, maxBytes: Number.MAX_SAFE_INTEGER });
  if (after.status !== 'valid' || !after.signatureTimeStamps.some((t) => t.equals(tokenDer)))
    throw new Error(`the time-stamped signature does not verify (${after.subIndication}: ${after.message})`);
  return out;
}
