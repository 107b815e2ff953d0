// `jpki ocsp presign`: the batch signer of OCSP responses (docs/ocsp.md), with a progress bar on a
// terminal and one summary line.

import { SingleBar } from 'cli-progress';
import type { Authority } from '../authority/authority.ts';
import type { PresignResult } from '../authority/ocsp-responses.ts';

export async function presignWithProgress(
  authority: Authority,
  opts: { batchSize: number; concurrency: number },
): Promise<PresignResult> {
  const tty = process.stderr.isTTY === true;
  let bar: SingleBar | undefined;
  // Ctrl-C stops after the page being signed; what was written stays written.
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    const result = await authority.ocspResponses.presign({
      ...opts,
      total: true,
      signal: abort.signal,
      onProgress: (p) => {
        if (!tty) return;
        if (!bar) {
          bar = new SingleBar({
            format:
              '{percentage}% |{bar}| {value}/{total} certificates, {signed} signed, ETA {eta_formatted}',
            stream: process.stderr,
            barsize: 30,
            hideCursor: true,
            etaBuffer: 50,
          });
          bar.start(Math.max(p.total ?? p.examined, 1), 0, { signed: 0 });
        }
        bar.update(p.examined, { signed: p.signed });
      },
    });
    bar?.stop();
    const n = (x: number) => x.toLocaleString('en-US');
    process.stdout.write(
      `${abort.signal.aborted ? 'stopped: ' : ''}${n(result.examined)} certificates examined, ${n(result.signed)} responses signed (${n(result.good)} good, ${n(result.revoked)} revoked, ${n(result.superseded)} not stored: revoked meanwhile) in ${result.seconds.toFixed(1)} s (${n(Math.round(result.signed / Math.max(result.seconds, 1e-3)))}/s)\n`,
    );
    if (abort.signal.aborted) process.exitCode = 130;
    return result;
  } finally {
    bar?.stop();
    process.off('SIGINT', onSigint);
  }
}
