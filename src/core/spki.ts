import { createHash } from 'node:crypto';
import { DerError, readChildren, readTlv } from './der.ts';

/** The subjectPublicKey BIT STRING contents (without the unused-bits byte) of an SPKI. */
export function spkiKeyBits(spki: Uint8Array): Buffer {
  const outer = readTlv(spki, 0);
  const [, bits] = readChildren(spki, outer);
  if (bits?.tag !== 0x03) throw new DerError('SubjectPublicKeyInfo without a BIT STRING');
  return Buffer.from(spki.subarray(bits.contentStart + 1, bits.end));
}

/** Key identifier per RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Uint8Array): Buffer {
  return createHash('sha1').update(spkiKeyBits(spki)).digest();
}
