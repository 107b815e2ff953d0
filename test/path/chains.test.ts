// Path building and the structural rules on chains made with the project's certificate builder.
import { beforeAll, describe, expect, it } from 'vitest';
import { validatePath } from '../../src/core/path/index.ts';
import { extension, makeCert, type TestCert } from './helpers.ts';

const noRevocation = { checkRevocation: false } as const;

describe('path building and structural checks', () => {
  let root: TestCert;
  let ca: TestCert;

  beforeAll(async () => {
    root = await makeCert({
      subject: [
        ['C', 'JP'],
        ['O', 'Test'],
        ['CN', 'Root'],
      ],
      ca: true,
    });
    ca = await makeCert({
      subject: [
        ['C', 'JP'],
        ['O', 'Test'],
        ['CN', 'Issuing CA'],
      ],
      issuer: root,
      ca: true,
    });
  });

  it('a simple chain passes, intermediates in any order, duplicates and junk ignored', async () => {
    const ee = await makeCert({ subject: [['CN', 'leaf']], issuer: ca });
    const r = validatePath({
      target: ee.der,
      intermediates: [Buffer.from('junk'), ca.der, ca.der, root.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.indication, r.message).toBe('TOTAL_PASSED');
    expect(r.chain.map((d) => d.length)).toEqual([ee.der.length, ca.der.length, root.der.length]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/certificate #1 ignored/);
  });

  it('the trust anchor itself validates as a chain of one', () => {
    const r = validatePath({ target: root.der, trustAnchors: [root.der], at: new Date() });
    expect(r.indication).toBe('TOTAL_PASSED');
    expect(r.chain).toHaveLength(1);
    expect(r.revocation).toEqual([]);
  });

  it('no issuer: NO_CERTIFICATE_CHAIN_FOUND naming the missing issuer', async () => {
    const ee = await makeCert({ subject: [['CN', 'orphan']], issuer: ca });
    const r = validatePath({
      target: ee.der,
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.subIndication).toBe('NO_CERTIFICATE_CHAIN_FOUND');
    expect(r.message).toContain('CN=Issuing CA');
  });

  it('a loop of CAs issuing each other ends, NO_CERTIFICATE_CHAIN_FOUND', async () => {
    const a0 = await makeCert({ subject: [['CN', 'Loop A']], ca: true });
    const b = await makeCert({ subject: [['CN', 'Loop B']], issuer: a0, ca: true });
    // A again, with the same key, now issued by B: A -> B -> A -> …
    const a = await makeCert({ subject: [['CN', 'Loop A']], issuer: b, signer: a0.signer, ca: true });
    const ee = await makeCert({ subject: [['CN', 'in the loop']], issuer: a });
    const r = validatePath({
      target: ee.der,
      intermediates: [a.der, b.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('NO_CERTIFICATE_CHAIN_FOUND');
    expect(r.message).toContain('loop');
  });

  it('a chain of absurd length is refused; a longer limit accepts it', async () => {
    const chain: TestCert[] = [root];
    for (let i = 0; i < 14; i++)
      chain.push(
        await makeCert({ subject: [['CN', `Level ${i + 1}`]], issuer: chain[chain.length - 1]!, ca: true }),
      );
    const ee = await makeCert({ subject: [['CN', 'deep leaf']], issuer: chain[chain.length - 1]! });
    const input = {
      target: ee.der,
      intermediates: chain.slice(1).map((c) => c.der),
      trustAnchors: [root.der],
      at: new Date(),
    };
    const r = validatePath({ ...input, options: noRevocation });
    expect(r.subIndication).toBe('NO_CERTIFICATE_CHAIN_FOUND');
    expect(r.message).toContain('longer than 10');
    const ok = validatePath({ ...input, options: { ...noRevocation, maxPathLength: 20 } });
    expect(ok.indication, ok.message).toBe('TOTAL_PASSED');
    expect(ok.chain).toHaveLength(16);
  });

  it('pathLenConstraint is enforced', async () => {
    const ca0 = await makeCert({ subject: [['CN', 'pathLen 0 CA']], issuer: root, ca: true, pathLen: 0 });
    const sub = await makeCert({ subject: [['CN', 'sub CA']], issuer: ca0, ca: true });
    const ee = await makeCert({ subject: [['CN', 'too deep']], issuer: sub });
    const r = validatePath({
      target: ee.der,
      intermediates: [ca0.der, sub.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
    expect(r.failedAt).toBe(1);
    expect(r.message).toContain('path length');
  });

  it('an unknown critical extension fails; the same extension non-critical passes', async () => {
    const critical = await makeCert({
      subject: [['CN', 'critical']],
      issuer: ca,
      extensions: [extension('1.3.6.1.4.1.99999.1', true, Buffer.from([0x05, 0x00]))],
    });
    const input = {
      intermediates: [ca.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    };
    const r = validatePath({ ...input, target: critical.der });
    expect(r.indication).toBe('INDETERMINATE');
    expect(r.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
    expect(r.failedAt).toBe(0);
    expect(r.message).toContain('1.3.6.1.4.1.99999.1');
    const plain = await makeCert({
      subject: [['CN', 'non-critical']],
      issuer: ca,
      extensions: [extension('1.3.6.1.4.1.99999.1', false, Buffer.from([0x05, 0x00]))],
    });
    expect(validatePath({ ...input, target: plain.der }).indication).toBe('TOTAL_PASSED');
  });

  it('a CA without basicConstraints cannot issue', async () => {
    const notCa = await makeCert({ subject: [['CN', 'not a CA']], issuer: root });
    const ee = await makeCert({ subject: [['CN', 'leaf of a leaf']], issuer: notCa });
    const r = validatePath({
      target: ee.der,
      intermediates: [notCa.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.subIndication).toBe('CHAIN_CONSTRAINTS_FAILURE');
    expect(r.message).toContain('not a CA certificate');
  });

  it('a certificate signed by another key of the same name: CERTIFICATE_CHAIN_GENERAL_FAILURE', async () => {
    const impostor = await makeCert({
      subject: [
        ['C', 'JP'],
        ['O', 'Test'],
        ['CN', 'Issuing CA'],
      ],
      ca: true,
    });
    const ee = await makeCert({ subject: [['CN', 'forged']], issuer: impostor });
    const r = validatePath({
      target: ee.der,
      intermediates: [ca.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.subIndication).toBe('CERTIFICATE_CHAIN_GENERAL_FAILURE');
    expect(r.message).toContain('does not verify');
  });

  it('of two issuers with the same name, the one whose key verifies is chosen', async () => {
    const other = await makeCert({
      subject: [
        ['C', 'JP'],
        ['O', 'Test'],
        ['CN', 'Issuing CA'],
      ],
      issuer: root,
      ca: true,
    });
    const ee = await makeCert({ subject: [['CN', 'picky']], issuer: ca });
    const r = validatePath({
      target: ee.der,
      intermediates: [other.der, ca.der],
      trustAnchors: [root.der],
      at: new Date(),
      options: noRevocation,
    });
    expect(r.indication, r.message).toBe('TOTAL_PASSED');
    expect(r.chain[1]!.equals(ca.der)).toBe(true);
  });

  it('names compare case- and space-insensitively across string types', async () => {
    const { encodeName } = await import('../../src/core/name.ts');
    const { parseName } = await import('../../src/core/path/name.ts');
    const { node } = await import('../../src/core/path/asn1.ts');
    const a = encodeName([
      ['C', 'JP'],
      ['O', 'Example  Corp'],
      ['CN', 'Alice'],
    ]);
    // the same name with PrintableString values, other case and spacing
    const printable = (s: string) => Buffer.concat([Buffer.from([0x13, s.length]), Buffer.from(s, 'ascii')]);
    const set = (type: number[], v: Buffer) => {
      const atv = Buffer.concat([Buffer.from([0x06, type.length, ...type]), v]);
      const seq = Buffer.concat([Buffer.from([0x30, atv.length]), atv]);
      return Buffer.concat([Buffer.from([0x31, seq.length]), seq]);
    };
    const body = Buffer.concat([
      set([0x55, 0x04, 0x06], printable('jp')),
      set([0x55, 0x04, 0x0a], printable(' example corp ')),
      set([0x55, 0x04, 0x03], printable('ALICE')),
    ]);
    const b = Buffer.concat([Buffer.from([0x30, body.length]), body]);
    const pa = parseName(a, node(a, 0));
    const pb = parseName(b, node(b, 0));
    expect(pa.key).toBe(pb.key);
    expect(pa.display).toBe('C=JP, O=Example  Corp, CN=Alice');
  });
});
