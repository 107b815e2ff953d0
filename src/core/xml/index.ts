// XML signatures as e-Tax uses them: enveloped XMLDSig with XAdES-BES/-T, hardened parsing.
export { C14N, type Canonicalization, NS, SIGNATURE_METHOD } from './constants.ts';
export {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_DEPTH,
  type ParseLimits,
  parseXml,
  XmlSignatureError,
  type XmlSubIndication,
} from './dom.ts';
export { type SignXmlOptions, signXml } from './sign.ts';
export { addXadesSignatureTimeStamp, signatureTimeStampImprint } from './timestamp.ts';
export { type VerifyXmlOptions, verifyXml, type XmlVerificationResult } from './verify.ts';
