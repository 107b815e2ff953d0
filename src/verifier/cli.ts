// `jpki validate`: certificate path validation with revocation checking, from the command line.
//
//   jpki validate --trust root.pem [--untrusted CA.pem]… cert.pem [--crl FILE]… [--ocsp FILE]…
//                 [--online] [--at TIME] [--no-revocation-check] [--json]
//
// Exit status: 0 TOTAL_PASSED, 1 TOTAL_FAILED, 2 INDETERMINATE, 3 usage error (core/report.ts).

import { readFileSync } from 'node:fs';
import type { Command, CommanderError } from 'commander';
import { EXIT_CODE } from '../core/report.ts';

interface ValidateOptions {
  trust: string[];
  untrusted: string[];
  crl: string[];
  ocsp: string[];
  online?: boolean;
  at?: string;
  revocationCheck: boolean;
  json?: boolean;
}

class UsageError extends Error {
  override name = 'UsageError';
}

const collect = (value: string, previous: string[]) => [...previous, value];

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    throw new UsageError(
      `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

function parseTime(s: string): Date {
  const d = new Date(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s) || Number.isNaN(d.getTime()))
    throw new UsageError(`--at: not an ISO 8601 time: ${s}`);
  return d;
}

export function registerValidateCommand(program: Command): void {
  program
    .command('validate')
    .description(
      'validate a certificate: its path to a trust anchor (RFC 5280) and the revocation of every certificate (CRL/OCSP); exit 0 passed, 1 failed, 2 indeterminate, 3 usage error',
    )
    .argument('<cert>', 'the certificate to validate (PEM or DER; - for stdin)')
    .option(
      '--trust <file>',
      'trust anchor certificate(s), PEM or DER (repeatable; at least one)',
      collect,
      [],
    )
    .option('--untrusted <file>', 'intermediate certificate(s), PEM or DER (repeatable)', collect, [])
    .option('--crl <file>', 'a CRL, PEM or DER (repeatable)', collect, [])
    .option('--ocsp <file>', 'an OCSP response, DER (repeatable)', collect, [])
    .option('--online', 'fetch CRLs and OCSP responses named in the certificates (http only)')
    .option('--at <time>', 'validation time, ISO 8601 (default: now)')
    .option('--no-revocation-check', 'do not check revocation (the report says it was skipped)')
    .option('--json', 'print the whole report as JSON')
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0) throw err; // --help
      process.exit(EXIT_CODE.USAGE);
    })
    .action(async (certPath: string, o: ValidateOptions) => {
      try {
        if (o.trust.length === 0) throw new UsageError('at least one --trust certificate is needed');
        const at = o.at ? parseTime(o.at) : new Date();
        const { validateCertificate, reportToJson } = await import('./validate-certificate.ts');
        const report = await validateCertificate({
          target: read(certPath, 'certificate'),
          trust: o.trust.map((f) => read(f, 'trust anchor')),
          untrusted: o.untrusted.map((f) => read(f, 'certificate')),
          crls: o.crl.map((f) => read(f, 'CRL')),
          ocsp: o.ocsp.map((f) => read(f, 'OCSP response')),
          at,
          online: !!o.online,
          revocationCheck: o.revocationCheck,
        });
        if (o.json) process.stdout.write(`${JSON.stringify(reportToJson(report), null, 2)}\n`);
        else {
          const lines = [
            `${report.indication}${report.subIndication ? `/${report.subIndication}` : ''}`,
            report.message,
          ];
          for (const r of report.revocation)
            lines.push(
              `  #${r.index} ${r.subject}: ${r.status}${r.source !== 'none' ? ` (${r.source}${r.crlNumber ? ` #${r.crlNumber}` : ''})` : ''}`,
            );
          for (const w of report.warnings) lines.push(`warning: ${w}`);
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        process.exitCode = EXIT_CODE[report.indication];
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(`jpki validate: ${e.message}\n`);
        process.exitCode = EXIT_CODE.USAGE;
      }
    });
}
