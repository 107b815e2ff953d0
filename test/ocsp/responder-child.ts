// An OCSP responder process for test/ocsp/responders.test.ts: opens the authority in argv[2] (PostgreSQL
// when argv[3] is a URL), serves it on 127.0.0.1 on a free port, prints "port <n>", and stops when
// stdin closes.
//
//   node --import tsx test/ocsp/responder-child.ts DATA_DIR [DATABASE_URL]

import { Authority } from '../../src/authority/authority.ts';
import { buildServer } from '../../src/http/server.ts';

const [dir, databaseUrl] = process.argv.slice(2);
const authority = await Authority.open(dir!, { databaseUrl: databaseUrl || undefined });
const app = await buildServer({ authority, operatorToken: 'x'.repeat(32), logger: false });
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address() as { port: number };
process.stdout.write(`port ${address.port}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await app.close();
  await authority.close();
  process.exit(0);
});
