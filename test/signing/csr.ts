// A PKCS#10 request signed through the Signer interface (for keys that never leave their token).
// The one implementation is src/card/csr.ts; this re-export keeps the tests' import path.

export { buildCsr } from '../../src/card/csr.ts';
