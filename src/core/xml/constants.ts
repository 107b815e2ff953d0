// Namespaces and algorithm identifiers of XML Signature (XMLDSig 1.0 / RFC 6931) and XAdES 1.3.2.

export const NS = {
  ds: 'http://www.w3.org/2000/09/xmldsig#',
  xades: 'http://uri.etsi.org/01903/v1.3.2#',
  xades141: 'http://uri.etsi.org/01903/v1.4.1#',
  xmlns: 'http://www.w3.org/2000/xmlns/',
  xml: 'http://www.w3.org/XML/1998/namespace',
} as const;

export const C14N = {
  exclusive: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  inclusive: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315',
} as const;

export type Canonicalization = keyof typeof C14N;

export const ENVELOPED_SIGNATURE = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

export const SIGNATURE_METHOD = {
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'ecdsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
} as const;

export const DIGEST_METHOD = {
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  sha384: 'http://www.w3.org/2001/04/xmldsig-more#sha384',
  sha512: 'http://www.w3.org/2001/04/xmlenc#sha512',
} as const;

/** Reference Type of the XAdES SignedProperties reference. */
export const SIGNED_PROPERTIES_TYPE = 'http://uri.etsi.org/01903#SignedProperties';

/**
 * Algorithms that are recognised but refused: SHA-1 and MD5 based methods, and MACs (which would let
 * anyone holding the "key" — here, the public certificate — forge a signature).
 */
export const REFUSED_ALGORITHMS: Readonly<Record<string, string>> = {
  'http://www.w3.org/2000/09/xmldsig#rsa-sha1': 'RSA with SHA-1',
  'http://www.w3.org/2000/09/xmldsig#dsa-sha1': 'DSA with SHA-1',
  'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1': 'ECDSA with SHA-1',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-md5': 'RSA with MD5',
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'HMAC-SHA1 (a MAC, not a signature)',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'HMAC-SHA256 (a MAC, not a signature)',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha384': 'HMAC-SHA384 (a MAC, not a signature)',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha512': 'HMAC-SHA512 (a MAC, not a signature)',
  'http://www.w3.org/2000/09/xmldsig#sha1': 'SHA-1',
  'http://www.w3.org/2001/04/xmldsig-more#md5': 'MD5',
};
