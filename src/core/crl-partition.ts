// CRL partitions: which partitioned CRL of its CA a certificate is listed on.
//
// A certificate's partition is decided by its serial number alone, at issuance, and named in its
// CRL distribution point. The partition is a range of the serial's leading bits: with N partitions
// (a power of two), partition p holds the serials whose first 16 bits of magnitude m satisfy
// floor(m × N / 65536) = p. Serials are 128 random bits, so the partitions are equally full, and
// a partition is one contiguous range of the serial as the store keeps it (lowercase hex of the
// DER INTEGER content octets): the revocations of a partition are an index range scan, with no
// partition column anywhere.
//
// The DER form puts a 0x00 sign octet before a magnitude whose top bit is set, so the upper half of
// the magnitudes sorts first as text ('00' + …); a partition never straddles that boundary (N ≥ 2 is
// a power of two), so each partition is still one range.

/** Most partitions per CA: 4096 keeps 16 bits of serial per partition boundary meaningful. */
export const MAX_CRL_PARTITIONS = 4096;

export class CrlPartitionError extends Error {
  override name = 'CrlPartitionError';
}

/** Throws unless `n` is a valid number of partitions: a power of two from 1 to 4096. */
export function checkPartitionCount(n: unknown): asserts n is number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CRL_PARTITIONS || (n & (n - 1)) !== 0)
    throw new CrlPartitionError(
      `the number of CRL partitions must be a power of two from 1 to ${MAX_CRL_PARTITIONS}, not ${JSON.stringify(n)}`,
    );
}

/**
 * The partition of a serial: its DER INTEGER content octets (a Buffer), or the same as lowercase
 * hex (the store's form). The sign octet 0x00 is skipped; a one-octet magnitude counts as m = b << 8.
 */
export function crlPartitionOf(serial: Uint8Array | string, count: number): number {
  checkPartitionCount(count);
  if (count === 1) return 0;
  const octet = (i: number): number => {
    if (typeof serial !== 'string') return serial[i] ?? 0;
    if (2 * i + 2 > serial.length) return 0;
    const v = Number.parseInt(serial.slice(2 * i, 2 * i + 2), 16);
    if (Number.isNaN(v)) throw new CrlPartitionError(`not a hex serial: ${serial}`);
    return v;
  };
  const length = typeof serial === 'string' ? serial.length >> 1 : serial.length;
  if (length === 0) throw new CrlPartitionError('empty serial');
  const skip = length > 1 && octet(0) === 0 ? 1 : 0;
  const m = (octet(skip) << 8) | octet(skip + 1);
  return Math.floor((m * count) / 65536);
}

/**
 * The serials of partition `p` as a half-open range of the store's hex text: `from <= serial <
 * below` (byte-wise comparison, which SQLite's default and PostgreSQL's "C" collation give).
 * Undefined when there is one partition (every serial).
 */
export function partitionSerialRange(p: number, count: number): { from: string; below: string } | undefined {
  checkPartitionCount(count);
  checkPartition(p, count);
  if (count === 1) return undefined;
  const width = 65536 / count;
  const lo = p * width;
  const hi = lo + width;
  if (lo >= 0x8000) return { from: `00${bound(lo)}`, below: hi === 0x10000 ? '01' : `00${bound(hi)}` };
  // Canonical serials without the sign octet start at 01 (a magnitude never starts with 00).
  return { from: lo < 0x100 ? '01' : bound(lo), below: bound(hi) };
}

/**
 * The 16-bit magnitude prefix as hex, without a trailing 00 octet: then a serial whose magnitude is
 * that one octet still compares as inside (its m is b << 8).
 */
function bound(m: number): string {
  const hex = m.toString(16).padStart(4, '0');
  return hex.endsWith('00') ? hex.slice(0, 2) : hex;
}

export function checkPartition(p: unknown, count: number): asserts p is number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p >= count)
    throw new CrlPartitionError(
      `CRL partition ${JSON.stringify(p)} does not exist: this CA has partitions 0 to ${count - 1}`,
    );
}

/**
 * The id of a CRL series (its scope): the CA id for the CA's complete CRLs, `<ca>-p<n>` for a
 * partition. It is also the CRL file name without `.crl` and the `ca` column of the stored CRLs,
 * so each scope has its own CRL numbering (RFC 5280 5.2.3: increasing per issuer and scope).
 */
export function crlScopeId(ca: string, partition?: number): string {
  return partition === undefined ? ca : `${ca}-p${partition}`;
}
