import { randomBytes } from 'node:crypto';
import { integerContent } from './der.ts';

/**
 * A new certificate serial number: 16 bytes from the CSPRNG, as the content octets of a positive DER
 * INTEGER (a 0x00 is prefixed when the top bit is set, so all 128 bits stay random). Uniqueness is
 * guaranteed by the store's primary key, not by chance alone.
 */
export function newSerial(): Buffer {
  return integerContent(randomBytes(16));
}

export class SerialFormatError extends Error {
  override name = 'SerialFormatError';
}

/**
 * Normalises a serial as a person types it (hex, any case, optional colons/spaces, optional
 * leading zeros, optional 0x) to the canonical form used as a key: lowercase hex of the DER
 * INTEGER content octets.
 */
export function canonicalSerial(input: string): string {
  const hex = input.trim().replace(/^0x/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex) || hex.length > 42)
    throw new SerialFormatError(`not a serial number: "${input}"`);
  return integerContent(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')).toString('hex');
}

/**
 * Key of INTEGER content octets received on the wire (an OCSP CertID, a certificate). Taken as is:
 * our serials are minimal DER, so a non-minimal or negative encoding simply matches nothing.
 */
export function serialHex(content: Buffer): string {
  return content.toString('hex');
}
