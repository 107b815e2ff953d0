// A CRL of a million entries streams for about a second; OCSP lookups on the same store must not
// wait for it (on SQLite the stream gets its own read-only connection).
import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import {
  certificateStatus,
  insertCertificate,
  revoke,
  streamRevocations,
} from '../../src/store/certificates.ts';
import { forEachStore } from '../helpers/db.ts';

forEachStore((current) => {
  it('answers a status lookup while a revocation stream is open', async () => {
    const { db, reader } = current();
    const serials: string[] = [];
    for (let i = 0; i < 3; i++) {
      const b = randomBytes(8);
      b[0] = (b[0]! & 0x7f) | 0x01;
      const serial = b.toString('hex');
      serials.push(serial);
      await insertCertificate(db, {
        serial,
        ca: 'sign',
        profile: 'sign',
        subject: 'CN=x',
        not_before: 0,
        not_after: Date.now() + 86_400_000,
        issued_at: 0,
        der: randomBytes(100),
        resident_ref: null,
        spki_sha256: createHash('sha256').update(serial).digest('hex'),
      });
      await revoke(db, { serial, reason: 1, revokedAt: Date.now(), recordedAt: Date.now() });
    }
    const stream = streamRevocations(reader, { ca: 'sign', notAfterFrom: 0, chunkSize: 1 });
    const first = await stream.next();
    expect(first.done).toBe(false);
    // With the stream still open, a lookup on the main connection completes.
    const status = await Promise.race([
      certificateStatus(db, serials[2]!),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('lookup blocked by the open stream')), 3000),
      ),
    ]);
    expect(status).toMatchObject({ ca: 'sign', revocation: { reason: 1 } });
    const rest = [];
    for await (const r of { [Symbol.asyncIterator]: () => stream }) rest.push(r.serial);
    expect([(first.value as { serial: string }).serial, ...rest]).toEqual(serials);
  });
});
