export type { HashAlgorithm } from './asn1.ts';
export { Asn1FormatError } from './asn1.ts';
export { addSignatureTimeStamp, type SignCmsInput, signatureTimeStampImprint, signCms } from './sign.ts';
export { CmsError, type CmsSubIndication, MAX_CMS_BYTES } from './signed-data.ts';
export {
  type CmsFailed,
  type CmsValid,
  type CmsVerification,
  type SignatureTimeStamp,
  type VerifyCmsOptions,
  verifyCms,
} from './verify.ts';
