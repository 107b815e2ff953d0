// Validate one certificate: the single code path behind `jpki validate` and the conformance tests.
//
// Inputs are bytes (DER or PEM); the result is the core's report (core/path/validate.ts) plus what
// fetching revocation data did. Offline, the CRLs and OCSP responses given are all there is. Online,
// the certificates whose status stays unknown are looked up at their CRL distribution points and
// OCSP responders and the path is validated again (at most three rounds: the chain, then the
// signers of the CRLs, then theirs).

import {
  certificateFrom,
  PathParseError,
  type PathValidationOptions,
  type PathValidationResult,
  validatePath,
} from '../core/path/index.ts';
import { encodePem, PemError } from '../core/pem.ts';
import { derBlocks, RevocationSource } from './revocation-source.ts';

export interface ValidateCertificateInput {
  /** The certificate to validate, DER or PEM. */
  target: Uint8Array;
  /** Untrusted certificates that may serve as intermediates: DER, or PEM with one or more certificates. */
  untrusted?: readonly Uint8Array[];
  /** Trust anchors: DER, or PEM with one or more certificates. */
  trust: readonly Uint8Array[];
  /** CRLs, DER or PEM. */
  crls?: readonly Uint8Array[];
  /** OCSP responses, DER. */
  ocsp?: readonly Uint8Array[];
  /** Validation time; default now. */
  at?: Date;
  /** Fetch CRLs and OCSP responses named in the certificates. Default false. */
  online?: boolean;
  /** Check revocation at all. Default true (and then it is required). */
  revocationCheck?: boolean;
  /**
   * A long-lived source (keeps fetched CRLs and OCSP responses across calls). When given, its
   * `online` setting applies and the CRLs/OCSP above are added to it.
   */
  source?: RevocationSource;
  /** Policy and key usage settings, path length; revocation settings come from the fields above. */
  options?: Omit<PathValidationOptions, 'checkRevocation' | 'revocationRequired'>;
}

export interface CertificateValidationReport extends Omit<PathValidationResult, 'unresolved'> {
  /** Whether revocation was checked (false with revocationCheck: false). */
  revocationChecked: boolean;
  /** Revocation data that could not be fetched (online only). */
  fetchErrors: string[];
}

const MAX_ROUNDS = 3;

export async function validateCertificate(
  input: ValidateCertificateInput,
): Promise<CertificateValidationReport> {
  const at = input.at ?? new Date();
  const checkRevocation = input.revocationCheck ?? true;
  const source = input.source ?? new RevocationSource({ online: input.online ?? false });
  const cache = input.options?.cache ?? source.cache;
  const warnings: string[] = [];
  const fetchErrors: string[] = [];

  const certs = (list: readonly Uint8Array[] | undefined, what: string): Buffer[] => {
    const out: Buffer[] = [];
    (list ?? []).forEach((data, i) => {
      try {
        out.push(...derBlocks(data, 'CERTIFICATE'));
      } catch (e) {
        if (!(e instanceof PathParseError || e instanceof PemError)) throw e;
        warnings.push(`${what} #${i + 1} ignored: ${e.message}`);
      }
    });
    return out;
  };

  let target: Buffer;
  try {
    target = derBlocks(input.target, 'CERTIFICATE')[0]!;
  } catch (e) {
    if (!(e instanceof PathParseError || e instanceof PemError)) throw e;
    return {
      indication: 'TOTAL_FAILED',
      subIndication: 'FORMAT_FAILURE',
      chain: [],
      failedAt: 0,
      message: `The certificate cannot be read: ${e.message}.`,
      revocation: [],
      validationTime: at,
      warnings,
      revocationChecked: checkRevocation,
      fetchErrors,
    };
  }
  const trust = certs(input.trust, 'trust anchor');
  const untrusted = certs(input.untrusted, 'untrusted certificate');
  (input.crls ?? []).forEach((data, i) => {
    try {
      source.addCrl(data);
    } catch (e) {
      if (!(e instanceof PathParseError || e instanceof PemError)) throw e;
      warnings.push(`CRL #${i + 1} ignored: ${e.message}`);
    }
  });
  (input.ocsp ?? []).forEach((data, i) => {
    try {
      source.addOcspResponse(data);
    } catch (e) {
      if (!(e instanceof PathParseError)) throw e;
      warnings.push(`OCSP response #${i + 1} ignored: ${e.message}`);
    }
  });

  // Parse once; the rounds below reuse the parsed objects.
  const parsed = (ders: Buffer[], what: string) =>
    ders.flatMap((d, i) => {
      try {
        return [certificateFrom(d, cache)];
      } catch (e) {
        if (!(e instanceof PathParseError)) throw e;
        warnings.push(`${what} #${i + 1} ignored: ${e.message}`);
        return [];
      }
    });
  const trustAnchors = parsed(trust, 'trust anchor');
  const intermediates = parsed(untrusted, 'untrusted certificate');
  let targetInput: Buffer | ReturnType<typeof certificateFrom> = target;
  try {
    targetInput = certificateFrom(target, cache);
  } catch (e) {
    if (!(e instanceof PathParseError)) throw e; // validatePath reports FORMAT_FAILURE
  }

  const run = () =>
    validatePath({
      target: targetInput,
      intermediates,
      trustAnchors,
      crls: source.crls(),
      ocspResponses: source.ocspResponses(),
      at,
      options: {
        ...input.options,
        cache,
        checkRevocation,
        revocationRequired: checkRevocation,
      },
    });

  let result = run();
  for (
    let round = 0;
    checkRevocation && source.online && result.unresolved.length && round < MAX_ROUNDS;
    round++
  ) {
    const { fetched, errors } = await source.fetchFor(result.unresolved);
    for (const e of errors) if (!fetchErrors.includes(e)) fetchErrors.push(e);
    if (fetched === 0) break;
    result = run();
  }

  const { unresolved: _unresolved, ...rest } = result;
  let message = rest.message;
  if (rest.subIndication === 'TRY_LATER' || rest.subIndication === 'REVOCATION_OUT_OF_BOUNDS') {
    if (fetchErrors.length)
      message = `${message} Fetching revocation data failed: ${fetchErrors.join('; ')}.`;
    else if (!source.online)
      message = `${message} (Offline: only the CRLs and OCSP responses given were used.)`;
  }
  if (!checkRevocation && rest.indication === 'TOTAL_PASSED')
    message = `${message} Revocation checking was skipped on request.`;
  return {
    ...rest,
    message,
    warnings: [...warnings, ...rest.warnings],
    revocationChecked: checkRevocation,
    fetchErrors,
  };
}

/** The report as plain JSON: certificates as PEM, times as ISO strings. */
export function reportToJson(report: CertificateValidationReport): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({ ...report, chain: report.chain.map((der) => encodePem('CERTIFICATE', der)) }),
  ) as Record<string, unknown>;
}
