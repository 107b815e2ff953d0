import { randomBytes } from 'node:crypto';
import type { HashAlgorithm } from '../core/cms/index.ts';
import { buildTimeStampRequest, verifyTimeStampResponse } from '../core/tsp/index.ts';

export class TimeStampUnavailableError extends Error {
  override name = 'TimeStampUnavailableError';
}

/** Largest time-stamp response accepted: a token with a short chain is a few KB. */
const MAX_RESPONSE_BYTES = 256 * 1024;

/**
 * Asks an RFC 3161 TSA over HTTP for a token over `digest`, with a fresh nonce and the TSA
 * certificate requested, and checks the answer (status, imprint, nonce, signature). Throws
 * TimeStampUnavailableError when the TSA cannot be reached or answers badly: the caller decides
 * whether to go on without a time stamp (and say so) or stop.
 */
export async function requestTimeStamp(
  url: string,
  imprint: { algorithm: HashAlgorithm; digest: Buffer },
  opts: { timeoutMs?: number } = {},
): Promise<Buffer> {
  const request = buildTimeStampRequest({
    digest: imprint.digest,
    hashAlgorithm: imprint.algorithm,
    nonce: randomBytes(8),
    certReq: true,
  });
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/timestamp-query' },
      body: new Uint8Array(request),
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
  } catch (e) {
    throw new TimeStampUnavailableError(`time-stamp authority ${url} unreachable: ${(e as Error).message}`);
  }
  if (!res.ok) throw new TimeStampUnavailableError(`time-stamp authority ${url} answered HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > MAX_RESPONSE_BYTES) throw new TimeStampUnavailableError('time-stamp response too large');
  const v = verifyTimeStampResponse(body, request);
  if (!v.valid || !v.token) throw new TimeStampUnavailableError(`time-stamp authority ${url}: ${v.message}`);
  return v.token;
}
