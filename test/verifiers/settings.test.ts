// verifiers.json: defaults, overrides, and a clear refusal of bad values (the server does not start).

import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_SETTINGS,
  loadVerifierSettings,
  VerifierSettingsError,
} from '../../src/verifiers/settings.ts';
import { tempDir } from '../helpers/openssl.ts';

const tmp = tempDir('jpki-verifier-settings-');
afterAll(() => tmp.cleanup());

describe('verifier settings', () => {
  it('uses the defaults without a file, and file values over them, and overrides over both', () => {
    expect(loadVerifierSettings(tmp.path('none'))).toEqual(DEFAULT_SETTINGS);
    writeFileSync(
      tmp.path('verifiers.json'),
      JSON.stringify({ tariff: { ocspYen: 5 }, clientCa: 'certs/v.pem' }),
    );
    const s = loadVerifierSettings(tmp.dir, { rateLimit: { burst: 7 } });
    expect(s.tariff).toEqual({ ...DEFAULT_SETTINGS.tariff, ocspYen: 5 });
    expect(s.rateLimit).toEqual({ requestsPerSecond: 1000, burst: 7 });
    expect(s.clientCa).toBe(tmp.path('certs/v.pem'));
  });

  it('refuses bad values, naming the setting', () => {
    const bad: [string, RegExp][] = [
      ['{ "tariff": { "ocspYen": -1 } }', /tariff.ocspYen must be a whole number of at least 0/],
      ['{ "tariff": { "crlYen": 2.5 } }', /tariff.crlYen/],
      ['{ "rateLimit": { "burst": 0 } }', /rateLimit.burst/],
      ['{ "metering": { "flushCount": "10" } }', /metering.flushCount/],
      ['{ "clientCa": "" }', /clientCa/],
      ['[1]', /must hold a JSON object/],
      ['{ nope', /not valid JSON/],
    ];
    for (const [text, message] of bad) {
      writeFileSync(tmp.path('verifiers.json'), text);
      expect(() => loadVerifierSettings(tmp.dir), text).toThrow(VerifierSettingsError);
      expect(() => loadVerifierSettings(tmp.dir), text).toThrow(message);
    }
  });
});
