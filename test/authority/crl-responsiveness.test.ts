// `jpki serve` builds CRLs in the process that answers OCSP. Building a large full CRL must leave
// the event loop free: a timer fires and an OCSP request is answered while it is being built.
// (Once, on SQLite, a full CRL blocked the event loop from start to end: better-sqlite3 reads
// synchronously, and the encoder never gave the loop a turn.) No timings are asserted: only the
// order in which things finish.
import { generateKeyPairSync, sign } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bitString,
  explicit,
  integer,
  NULL,
  octetString,
  oid,
  readChildren,
  readTlv,
  sequence,
  set,
  tlv,
  utf8String,
} from '../../src/core/der.ts';
import { issuerHashes } from '../../src/core/ocsp.ts';
import { OID } from '../../src/core/oids.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';

const REVOKED = 200_000;

/** Fills the store with REVOKED revoked signature certificates, in one statement per table. */
async function fill(ta: TestAuthority): Promise<void> {
  const db = ta.authority.store.db;
  const notAfter = Date.now() + 365 * 86_400_000;
  if (ta.backend === 'sqlite') {
    await sql`with recursive s(i) as (select 1 union all select i + 1 from s where i < ${REVOKED})
      insert into certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, spki_sha256)
      select printf('7f%014x', i), 'sign', 'sign', 'CN=fill', 0, ${notAfter}, 0, x'00', 'x' from s`.execute(
      db,
    );
    await sql`insert into revocations (serial, ca, reason, revoked_at, recorded_at, not_after)
      select serial, 'sign', 1, 1700000000000, 1700000000000, not_after from certificates
      where subject = 'CN=fill' order by serial`.execute(db);
  } else {
    await sql`insert into certificates (serial, ca, profile, subject, not_before, not_after, issued_at, der, spki_sha256)
      select '7f' || lpad(to_hex(i), 14, '0'), 'sign', 'sign', 'CN=fill', 0, ${notAfter}, 0, '\\x00'::bytea, 'x'
      from generate_series(1, ${REVOKED}) as i`.execute(db);
    await sql`insert into revocations (serial, ca, reason, revoked_at, recorded_at, not_after)
      select serial, 'sign', 1, 1700000000000, 1700000000000, not_after from certificates
      where subject = 'CN=fill' order by serial`.execute(db);
  }
}

/** revokedCertificates entries, counted by walking the DER. */
function countEntries(der: Buffer): number {
  const tbs = readChildren(der, readTlv(der, 0))[0]!;
  // version, signature, issuer, thisUpdate, nextUpdate, revokedCertificates
  const revoked = readChildren(der, tbs)[5]!;
  let n = 0;
  for (let p = revoked.contentStart; p < revoked.end; p = readTlv(der, p).end) n++;
  return n;
}

function csr(): Buffer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const info = sequence(
    integer(0),
    sequence(set(sequence(oid(OID.commonName), utf8String('responsive')))),
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(0),
  );
  return sequence(info, sequence(oid(OID.ecdsaWithSHA256)), bitString(sign('sha256', info, privateKey)));
}

describe.each(testStores())('a full CRL of 200,000 revocations (%s)', (backend) => {
  let ta: TestAuthority;
  let request: Buffer;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
    await fill(ta);
    const cert = await ta.authority.issue({ kind: 'auth', csr: csr() });
    const h = issuerHashes(ta.authority.certificate('auth')).sha1;
    const certId = sequence(
      sequence(oid(OID.sha1), NULL),
      octetString(h.name),
      octetString(h.key),
      tlv(0x02, Buffer.from(cert.serial, 'hex')),
    );
    request = sequence(sequence(sequence(sequence(certId))));
  }, 120_000);

  afterAll(async () => {
    await ta?.close();
  });

  it('is built while timers fire and OCSP answers', async () => {
    let built = false;
    const crl = ta.authority.generateCrl('sign').then((r) => {
      built = true;
      return r;
    });
    // A timer only fires if the event loop gets a turn while the CRL is being built.
    await new Promise((resolve) => setTimeout(resolve, 1));
    expect(built).toBe(false);
    const answer = await ta.authority.ocsp(request);
    expect(answer.status).toBe('successful');
    expect(built).toBe(false);

    const result = await crl;
    expect(result.entries).toBe(REVOKED);
    const stored = await ta.authority.currentCrl('sign', 'full');
    expect(stored?.number).toBe(result.number);
    expect(countEntries(stored!.der)).toBe(REVOKED);
  }, 120_000);
});
