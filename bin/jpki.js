#!/usr/bin/env node
// Entry point of the `jpki` command. The sources are TypeScript; tsx loads them directly so that
// `npx jpki` works from a clean clone after `npm install`, with no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
