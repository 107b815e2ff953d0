import { describe, expect, it } from 'vitest';
import {
  BasicFactsError,
  basicFactsGeneralNames,
  decodeBasicFactsSan,
  encodeBasicFactsSan,
  encodeDateOfBirth,
  localitiesOf,
  normaliseBasicFacts,
  parseSex,
} from '../../src/core/basic-facts.ts';
import { sequence } from '../../src/core/der.ts';

const taro = {
  name: '山田 太郎',
  dateOfBirth: '1980-04-01',
  sex: 'male' as const,
  address: '東京都千代田区霞が関2丁目1番2号',
};

describe('the four basic facts', () => {
  it('puts each era on the right side of its first day', () => {
    expect(encodeDateOfBirth('1912-07-29')).toBe('119120729'); // last day of Meiji
    expect(encodeDateOfBirth('1912-07-30')).toBe('219120730'); // Taisho
    expect(encodeDateOfBirth('1926-12-24')).toBe('219261224');
    expect(encodeDateOfBirth('1926-12-25')).toBe('319261225'); // Showa
    expect(encodeDateOfBirth('1989-01-07')).toBe('319890107');
    expect(encodeDateOfBirth('1989-01-08')).toBe('419890108'); // Heisei
    expect(encodeDateOfBirth('2019-04-30')).toBe('420190430');
    expect(encodeDateOfBirth('2019-05-01')).toBe('520190501'); // Reiwa
    expect(encodeDateOfBirth(null)).toBe('000000000');
  });

  it('joins family and given name with one full-width space and flags no substitutes', () => {
    const f = normaliseBasicFacts({ ...taro, name: '  山田   太郎 ' });
    expect(f.name).toBe('山田\u3000太郎');
    expect(f.nameSubstitutes).toBe('00000');
    expect(f.addressSubstitutes).toBe('0'.repeat([...taro.address].length));
  });

  it('round-trips through subjectAltName', () => {
    const san = encodeBasicFactsSan({ ...taro, nameSubstitutes: '10000' });
    const back = decodeBasicFactsSan(san);
    expect(back).toEqual({
      name: '山田\u3000太郎',
      dateOfBirth: '1980-04-01',
      sex: 'male',
      address: taro.address,
      nameSubstitutes: '10000',
      addressSubstitutes: '0'.repeat([...taro.address].length),
    });
  });

  it.each([
    [{ ...taro, name: ' ' }, /name is empty/],
    [{ ...taro, dateOfBirth: '1980-02-30' }, /real date/],
    [{ ...taro, dateOfBirth: '3000-01-01' }, /future/],
    [{ ...taro, address: '〒100-8926 東京都千代田区' }, /postcode/],
    [{ ...taro, address: 'あ'.repeat(201) }, /200/],
    [{ ...taro, nameSubstitutes: '0101' }, /one 0\/1 per character/],
    [{ ...taro, name: '山田\u0007太郎' }, /control/],
  ])('refuses facts a certificate must not carry (%#)', (facts, msg) => {
    expect(() => normaliseBasicFacts(facts)).toThrow(BasicFactsError);
    expect(() => normaliseBasicFacts(facts)).toThrow(msg);
  });

  it('reads sex as the register and the CLI write it', () => {
    expect(parseSex('M')).toBe('male');
    expect(parseSex('f')).toBe('female');
    expect(parseSex('3')).toBe('unknown');
    expect(() => parseSex('x')).toThrow(/M, F or U/);
  });

  it('finds prefecture and city for the subject locality', () => {
    expect(localitiesOf('東京都千代田区霞が関2丁目')).toEqual({ prefecture: '東京都', city: '千代田区' });
    expect(localitiesOf('神奈川県横浜市中区山下町1')).toEqual({ prefecture: '神奈川県', city: '横浜市中区' });
    expect(localitiesOf('北海道札幌市北区北8条')).toEqual({ prefecture: '北海道', city: '札幌市北区' });
    expect(localitiesOf('長野県北佐久郡軽井沢町大字軽井沢')).toEqual({
      prefecture: '長野県',
      city: '北佐久郡軽井沢町',
    });
    expect(localitiesOf('Somewhere 1-2')).toEqual({});
  });

  it('reports an authentication certificate SAN as carrying no facts', () => {
    // GeneralNames with one dNSName
    const san = Buffer.from([0x30, 0x0d, 0x82, 0x0b, ...Buffer.from('example.jp1')]);
    expect(decodeBasicFactsSan(san)).toBeNull();
  });

  it('refuses a SAN that states a fact twice, an empty SAN and trailing bytes', () => {
    const names = basicFactsGeneralNames(taro);
    const twice = sequence(...names, names[0]!);
    expect(() => decodeBasicFactsSan(twice)).toThrow(/repeats 1\.2\.392\.200149\.8\.5\.5\.1/);
    expect(() => decodeBasicFactsSan(Buffer.from([0x30, 0x00]))).toThrow(BasicFactsError);
    const trailing = Buffer.concat([encodeBasicFactsSan(taro), Buffer.from([0x00])]);
    expect(() => decodeBasicFactsSan(trailing)).toThrow('malformed subjectAltName');
  });
});

describe('reading facts from untrusted certificates', () => {
  it('never fails with anything but BasicFactsError on random or mutated input', async () => {
    const fc = await import('fast-check');
    const valid = encodeBasicFactsSan(taro);
    const mutated = fc
      .tuple(
        fc.nat({ max: valid.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.nat({ max: valid.length }),
      )
      .map(([i, b, cut]) => {
        const copy = Buffer.from(valid);
        copy[i] = b;
        return copy.subarray(0, Math.max(cut, 1));
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
          mutated,
        ),
        (input) => {
          try {
            decodeBasicFactsSan(input);
          } catch (e) {
            if (!(e instanceof BasicFactsError)) throw e;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
