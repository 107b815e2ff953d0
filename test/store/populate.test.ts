// jpki dev populate: synthetic certificates for the national-scale benchmark, on both stores.

import { X509Certificate } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataPaths } from '../../src/authority/config.ts';
import { certificateStatus, insertCertificate } from '../../src/store/certificates.ts';
import { PopulateError, populate, SYNTHETIC_PROFILE } from '../../src/store/populate.ts';
import { createTestAuthority, type TestAuthority } from '../helpers/authority.ts';
import { testStores } from '../helpers/db.ts';

describe.each(testStores())('populate (%s)', (backend) => {
  let ta: TestAuthority;
  const target = () =>
    ta.databaseUrl ? { databaseUrl: ta.databaseUrl } : { sqlitePath: dataPaths(ta.dir).sqlite };
  const db = () => ta.authority.store.db;

  beforeAll(async () => {
    ta = await createTestAuthority({ backend });
  });
  afterAll(async () => {
    await ta?.close();
  });

  it('refuses bad counts and fractions before touching the store', async () => {
    await expect(populate(target(), ta.authority, { count: -1 })).rejects.toThrow(PopulateError);
    await expect(populate(target(), ta.authority, { count: 1.5 })).rejects.toThrow(/whole number/);
    await expect(populate(target(), ta.authority, { count: 10, revokedFraction: 2 })).rejects.toThrow(
      /between 0 and 1/,
    );
    const n = await db()
      .selectFrom('certificates')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    expect(Number(n!.n)).toBe(0);
  });

  it('fills the store with certificates of both CAs, 5 % of them revoked, that OCSP and CRLs see', async () => {
    const seen: number[] = [];
    const r = await populate(target(), ta.authority, {
      count: 3000,
      batchSize: 1000,
      onProgress: (p) => seen.push(p.certificates),
    });
    expect(r.after).toEqual({ certificates: 3000, revoked: 150 });
    expect(seen).toEqual([0, 1000, 2000, 3000]);
    const byCa = await db()
      .selectFrom('certificates')
      .select(['ca', (eb) => eb.fn.countAll<number>().as('n')])
      .where('profile', '=', SYNTHETIC_PROFILE)
      .groupBy('ca')
      .orderBy('ca')
      .execute();
    expect(byCa.map((x) => x.ca)).toEqual(['auth', 'sign']);
    // Random halves: each CA holds roughly 1,500.
    for (const x of byCa) expect(Number(x.n)).toBeGreaterThan(1200);

    const revoked = await db().selectFrom('revocations').select(['serial', 'ca', 'reason']).execute();
    expect(revoked).toHaveLength(150);
    const status = await certificateStatus(db(), revoked[0]!.serial);
    expect(status?.revocation?.reason).toBe(revoked[0]!.reason);
    const good = await db()
      .selectFrom('certificates')
      .select('serial')
      .where(
        'serial',
        'not in',
        revoked.map((x) => x.serial),
      )
      .limit(1)
      .executeTakeFirstOrThrow();
    const goodStatus = await certificateStatus(db(), good.serial);
    expect(goodStatus).toBeDefined();
    expect(goodStatus!.revocation).toBeUndefined();
    expect(goodStatus!.notAfter).toBeGreaterThan(Date.now());

    // Serials spread as real ones do: half of them with the 0x00 sign octet (the upper CRL partitions).
    const serials = await db().selectFrom('certificates').select('serial').execute();
    const signed = serials.filter((x) => x.serial.startsWith('00')).length;
    expect(signed).toBeGreaterThan(1200);
    expect(signed).toBeLessThan(1800);

    // The CRL of the sign CA lists exactly the sign CA's revocations.
    const crl = await ta.authority.generateCrl('sign');
    expect(crl.entries).toBe(revoked.filter((x) => x.ca === 'sign').length);
  });

  it('stores a certificate DER with the row serial that does not verify under the CA', async () => {
    const row = await db()
      .selectFrom('certificates')
      .select(['serial', 'ca', 'der'])
      .where('profile', '=', SYNTHETIC_PROFILE)
      .limit(1)
      .executeTakeFirstOrThrow();
    const cert = new X509Certificate(row.der);
    expect(cert.serialNumber.toLowerCase().replace(/^00/, '')).toBe(row.serial.replace(/^00/, ''));
    const caCert = new X509Certificate(ta.authority.certificate(row.ca as 'sign' | 'auth'));
    expect(cert.issuer).toBe(caCert.subject);
    expect(cert.subject).toContain('SYNTHETIC');
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(false);
  });

  it('running again with the same count adds nothing; a larger count tops the store up', async () => {
    const again = await populate(target(), ta.authority, { count: 3000 });
    expect(again.after).toEqual(again.before);
    const more = await populate(target(), ta.authority, { count: 4000, revokedFraction: 0.1 });
    expect(more.before).toEqual({ certificates: 3000, revoked: 150 });
    expect(more.after).toEqual({ certificates: 4000, revoked: 250 });
  });

  it.runIf(backend === 'postgres')(
    'rebuilding the keys after the load leaves every foreign key on certificates in place',
    async () => {
      const keys = async () =>
        (
          await sql<{ conname: string }>`select conname from pg_constraint
            where confrelid = 'certificates'::regclass or conname = 'certificates_pkey' order by conname`.execute(
            db(),
          )
        ).rows.map((r) => r.conname);
      const before = await keys();
      expect(before.length).toBeGreaterThan(0);
      const r = await populate(target(), ta.authority, { count: 6000, rebuildIndexes: true });
      expect(r.indexSeconds).toBeGreaterThanOrEqual(0);
      expect(await keys()).toEqual(before);
      // The primary key is back: a duplicate serial is refused.
      const row = await db().selectFrom('certificates').selectAll().limit(1).executeTakeFirstOrThrow();
      await expect(db().insertInto('certificates').values(row).execute()).rejects.toThrow(/duplicate key/);
    },
  );

  it('refuses a store holding real certificates unless forced', async () => {
    const real = await db().selectFrom('certificates').selectAll().limit(1).executeTakeFirstOrThrow();
    await insertCertificate(db(), { ...real, serial: '7f01', profile: 'sign' });
    const before = await populate(target(), ta.authority, { count: 0, force: true });
    await expect(populate(target(), ta.authority, { count: before.after.certificates + 10 })).rejects.toThrow(
      /holds 1 real certificates.*--force/,
    );
    const after = await populate(target(), ta.authority, {
      count: before.after.certificates + 10,
      force: true,
    });
    expect(after.after.certificates).toBe(before.after.certificates + 10);
  });
});
