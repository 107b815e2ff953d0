// `jpki validate` (a certificate) and `jpki verify` (a signed document), from the command line.
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
        const { validateCertificate, reportToJson } = await import('../verifier/validate-certificate.ts');
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

interface VerifyOptions {
  in: string;
  content?: string;
  trust: string[];
  untrusted: string[];
  crl: string[];
  ocsp: string[];
  online?: boolean;
  at?: string;
  json?: boolean;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      'verify a signed document (CMS/CAdES .p7s or signed XML): the signature, the time stamps, the signer’s certificate path and revocation; exit 0 passed, 1 failed, 2 indeterminate, 3 usage error',
    )
    .requiredOption('--in <file>', 'the signature (.p7s, DER or PEM) or the signed XML document')
    .option('--content <file>', 'the signed content, for a detached CMS signature')
    .option('--trust <file>', 'trust anchor certificate(s) (repeatable; at least one)', collect, [])
    .option('--untrusted <file>', 'intermediate certificate(s) (repeatable)', collect, [])
    .option('--crl <file>', 'a CRL, PEM or DER (repeatable)', collect, [])
    .option('--ocsp <file>', 'an OCSP response, DER (repeatable)', collect, [])
    .option('--online', 'fetch CRLs and OCSP responses named in the certificates (http only)')
    .option('--at <time>', 'validation time, ISO 8601 (default: now)')
    .option('--json', 'print the whole report as JSON')
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0) throw err; // --help
      process.exit(EXIT_CODE.USAGE);
    })
    .action(async (o: VerifyOptions) => {
      try {
        if (o.trust.length === 0) throw new UsageError('at least one --trust certificate is needed');
        const at = o.at ? parseTime(o.at) : new Date();
        const { verifySignature } = await import('../verifier/verify-signature.ts');
        const report = await verifySignature({
          signature: read(o.in, 'signature'),
          content: o.content ? read(o.content, 'content') : undefined,
          trust: o.trust.map((f) => read(f, 'trust anchor')),
          untrusted: o.untrusted.map((f) => read(f, 'certificate')),
          crls: o.crl.map((f) => read(f, 'CRL')),
          ocsp: o.ocsp.map((f) => read(f, 'OCSP response')),
          at,
          online: !!o.online,
        });
        const { signedContent, ...printable } = report;
        if (o.json) process.stdout.write(`${JSON.stringify(printable, null, 2)}\n`);
        else {
          const f = report.signer?.basicFacts;
          const lines = [
            `${report.indication}${report.subIndication ? `/${report.subIndication}` : ''} (${report.format})`,
            report.summary.ja,
            report.summary.en,
          ];
          if (report.signer) lines.push(`signer: ${report.signer.subject} (serial ${report.signer.serial})`);
          if (f)
            lines.push(
              `  name ${f.name}, born ${f.dateOfBirth ?? 'unknown'}, sex ${f.sex}, address ${f.address}`,
            );
          if (report.signingTime) lines.push(`signing time (claimed): ${report.signingTime}`);
          if (report.timestampTime) lines.push(`time stamp: ${report.timestampTime}`);
          for (const m of report.messages) lines.push(`- ${m}`);
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        void signedContent;
        process.exitCode = EXIT_CODE[report.indication];
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(`jpki verify: ${e.message}\n`);
        process.exitCode = EXIT_CODE.USAGE;
      }
    });
}
