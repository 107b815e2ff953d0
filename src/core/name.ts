import { oid, printableString, sequence, set, utf8String } from './der.ts';
import { OID } from './oids.ts';

/** One attribute of a distinguished name, in order from the root (C) downwards. */
export type NameAttribute = readonly [type: 'C' | 'O' | 'OU' | 'L' | 'CN', value: string];

const TYPES: Record<NameAttribute[0], string> = {
  C: OID.countryName,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
  L: OID.localityName,
  CN: OID.commonName,
};

/**
 * Encodes a Name (RDNSequence), one attribute per RDN. countryName is a PrintableString, everything
 * else UTF8String as RFC 5280 4.1.2.4 requires of new certificates.
 */
export function encodeName(attrs: readonly NameAttribute[]): Buffer {
  return sequence(
    ...attrs.map(([type, value]) => {
      if (value.length === 0) throw new Error(`empty ${type} in a name`);
      const v = type === 'C' ? printableString(value) : utf8String(value);
      return set(sequence(oid(TYPES[type]), v));
    }),
  );
}

/** A display form such as `C=JP, O=JPKI, OU=JPKI for digital signature`. */
export function formatName(attrs: readonly NameAttribute[]): string {
  return attrs.map(([t, v]) => `${t}=${v}`).join(', ');
}
