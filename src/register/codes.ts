// Identifiers of the register: the resident id (住民票コード) and the local government code
// (全国地方公共団体コード, JIS X 0401 prefecture + JIS X 0402 municipality + check digit).

/**
 * 住民票コード: 11 digits (10 random digits and a check digit, 住民基本台帳法施行規則 第1条). The formula of
 * the check digit is set by a ministerial notice we could not confirm from a primary source, so only
 * the form (exactly 11 ASCII digits) is checked. Returns an error message, or undefined when valid.
 */
export function residentIdProblem(id: string): string | undefined {
  if (!/^\d{11}$/.test(id)) return 'the resident id (住民票コード) must be exactly 11 digits';
  return undefined;
}

/**
 * The check digit of a 5-digit local government code: weights 6,5,4,3,2 from the left,
 * r = sum mod 11, check = (11 - r) mod 10. So r = 0 gives 1 (11 → 1: 新宿区 13104 → 131041) and
 * r = 1 gives 0 (10 → 0: 渋谷区 13113 → 131130), otherwise 11 - r (千代田区 13101 → 131016).
 */
export function municipalityCheckDigit(five: string): number {
  if (!/^\d{5}$/.test(five))
    throw new RangeError('a local government code has 5 digits before its check digit');
  const weights = [6, 5, 4, 3, 2];
  let sum = 0;
  for (let i = 0; i < 5; i++) sum += (five.charCodeAt(i) - 48) * weights[i]!;
  return (11 - (sum % 11)) % 10;
}

/**
 * 全国地方公共団体コード of a municipality (市区町村, including the wards of Tokyo and of designated cities):
 * 6 digits, prefecture 01–47, a municipality part other than 000 (000 is the prefecture itself, which
 * keeps no register), and a correct check digit. Returns an error message, or undefined when valid.
 */
export function municipalityCodeProblem(code: string): string | undefined {
  if (!/^\d{6}$/.test(code)) return 'the municipality code must be 6 digits (5-digit code and check digit)';
  const pref = Number(code.slice(0, 2));
  if (pref < 1 || pref > 47) return `the municipality code's prefecture ${code.slice(0, 2)} is not 01-47`;
  if (code.slice(2, 5) === '000') return 'the municipality code names a prefecture, not a municipality';
  const expected = municipalityCheckDigit(code.slice(0, 5));
  if (Number(code[5]) !== expected)
    return `the municipality code's check digit is wrong (expected ${code.slice(0, 5)}${expected})`;
  return undefined;
}
