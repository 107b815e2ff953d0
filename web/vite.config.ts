// The web pages, one build into web/dist served by `jpki serve` (src/http/web.ts): the counter page
// (index.html) at /counter/ and the verifier console (verifier.html) at /verifier/. Both load their
// scripts from /counter/assets/ and share the chunks (React, messages, components).
// `npx vite web` runs a development server (/counter/, /counter/verifier.html) that sends /api and
// /verify to a `jpki serve` on port 8080.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/counter/',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No inline script or style: the page's content security policy allows 'self' only.
    assetsInlineLimit: 0,
    rolldownOptions: {
      input: {
        counter: fileURLToPath(new URL('index.html', import.meta.url)),
        verifier: fileURLToPath(new URL('verifier.html', import.meta.url)),
      },
    },
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/verify': 'http://127.0.0.1:8080' } },
});
