#!/usr/bin/env node
// Entry point of `npm run bench`: registers tsx like bin/jpki.js and runs bench/main.ts.
//   npm run bench                  every benchmark, results in bench/results/latest.json
//   npm run bench -- issuance      one of: issuance, crl, ocsp
// (bench/main.ts also uses this entry point to start its child processes.)
import { register } from 'tsx/esm/api';

register();
await import('../bench/main.ts');
