// Builds the web pages (web/ → web/dist: the counter page and the verifier console) with Vite's API.
//   tsx web/build.ts              always build
//   tsx web/build.ts --if-stale   only when web/dist is missing or older than a source (npm start)
// The browser tests import buildCounterPage to build into a directory of their own.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import config from './vite.config.ts';

const WEB = fileURLToPath(new URL('.', import.meta.url));
export const DEFAULT_OUT_DIR = join(WEB, 'dist');

/** Builds both pages into `outDir` (default web/dist). */
export async function buildCounterPage(outDir = DEFAULT_OUT_DIR): Promise<void> {
  await build({ ...config, configFile: false, build: { ...config.build, outDir } });
}

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs;
  for (const name of readdirSync(path)) t = Math.max(t, newest(join(path, name)));
  return t;
}

/** True when `outDir` lacks a page or a source (or the lock file) changed after it was built. */
export function isStale(outDir = DEFAULT_OUT_DIR): boolean {
  const index = join(outDir, 'index.html');
  if (!existsSync(index) || !existsSync(join(outDir, 'verifier.html'))) return true;
  const sources = [
    'index.html',
    'verifier.html',
    'src',
    'vite.config.ts',
    'build.ts',
    '../package-lock.json',
  ].map((p) => join(WEB, p));
  const built = statSync(index).mtimeMs;
  return sources.some((p) => existsSync(p) && newest(p) > built);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--if-stale') && !isStale()) {
    process.stdout.write('web pages: web/dist is up to date\n');
  } else {
    const started = Date.now();
    await buildCounterPage();
    process.stdout.write(`web pages: built web/dist in ${Date.now() - started} ms\n`);
  }
}
