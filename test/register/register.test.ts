import { describe, expect, it } from 'vitest';
import {
  municipalityCheckDigit,
  municipalityCodeProblem,
  residentIdProblem,
} from '../../src/register/codes.ts';
import {
  EventConflictError,
  RegisterStateError,
  RegisterValidationError,
  UnknownResidentError,
} from '../../src/register/errors.ts';
import {
  factsAt,
  getResident,
  type RegisterEventInput,
  recordEvent,
  residentHistory,
} from '../../src/register/register.ts';
import { forEachStore } from '../helpers/db.ts';
import { CHIYODA, newResidentId, newSourceId, registration, SHINJUKU, TARO } from './helpers.ts';

describe('register codes', () => {
  it('computes the local government code check digit, including the 10 and 11 cases', () => {
    expect(municipalityCheckDigit('13101')).toBe(6); // 千代田区 131016
    expect(municipalityCheckDigit('13104')).toBe(1); // 新宿区 131041: remainder 0 -> 11 -> 1
    expect(municipalityCheckDigit('13113')).toBe(0); // 渋谷区 131130: remainder 1 -> 10 -> 0
    expect(municipalityCheckDigit('01100')).toBe(2); // 札幌市 011002
    expect(municipalityCheckDigit('27100')).toBe(4); // 大阪市 271004
    expect(municipalityCodeProblem('131016')).toBeUndefined();
    expect(municipalityCodeProblem('131017')).toMatch(/check digit is wrong \(expected 131016\)/);
    expect(municipalityCodeProblem('13101')).toMatch(/6 digits/);
    expect(municipalityCodeProblem('481002')).toMatch(/prefecture 48/);
    expect(municipalityCodeProblem('130001')).toMatch(/prefecture, not a municipality/);
  });

  it('accepts 11-digit resident ids only', () => {
    expect(residentIdProblem('12345678901')).toBeUndefined();
    for (const bad of ['1234567890', '123456789012', '1234567890a', '１２３４５６７８９０１', ''])
      expect(residentIdProblem(bad)).toMatch(/11 digits/);
  });
});

forEachStore(
  (current) => {
    async function counts() {
      const { db } = current();
      const n = async (t: 'residents' | 'register_events' | 'outbox') =>
        Number(
          (
            await db
              .selectFrom(t)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      return {
        residents: await n('residents'),
        events: await n('register_events'),
        outbox: await n('outbox'),
      };
    }

    describe('validation', () => {
      const bad: [string, Partial<typeof TARO> & Record<string, unknown>, string, RegExp][] = [
        ['impossible date', { dateOfBirth: '1990-02-30' }, 'dateOfBirth', /real date/],
        ['future birth', { dateOfBirth: '2999-01-01' }, 'dateOfBirth', /future/],
        ['empty name', { name: '  \u3000 ' }, 'name', /name is empty/],
        ['control character in name', { name: '山田\u0007太郎' }, 'name', /control characters in the name/],
        [
          'control character in address',
          { address: '東京都\u0000千代田区' },
          'address',
          /control characters in the address/,
        ],
        ['over-long name', { name: '山'.repeat(101) }, 'name', /longer than 100/],
        ['over-long address', { address: `東京都${'一'.repeat(200)}` }, 'address', /longer than 200/],
        ['postcode in address', { address: '〒100-0013 東京都千代田区' }, 'address', /postcode/],
        ['bad sex', { sex: 'X' }, 'sex', /M, F or U/],
        ['kana not katakana', { nameKana: 'やまだ' }, 'nameKana', /katakana/],
        ['bad municipality check digit', { municipalityCode: '131017' }, 'municipalityCode', /check digit/],
        [
          'name flags of the wrong length',
          { nameSubstitutes: '01' } as never,
          'nameSubstitutes',
          /one 0\/1 per character/,
        ],
      ];
      it.each(bad)(
        '%s: a clear error naming the field, nothing written',
        async (_, change, field, message) => {
          const store = current();
          const before = await counts();
          const input = registration(newResidentId(), '2020-01-01', { ...TARO, ...change } as typeof TARO);
          const err = await recordEvent(store, input).catch((e) => e);
          expect(err).toBeInstanceOf(RegisterValidationError);
          expect(err.issues).toContainEqual({ field, message: expect.stringMatching(message) });
          expect(await counts()).toEqual(before);
        },
      );

      it('refuses bad event envelopes', async () => {
        const store = current();
        const before = await counts();
        const base = registration(newResidentId());
        const cases: [Partial<RegisterEventInput>, string][] = [
          [{ residentId: '123' }, 'residentId'],
          [{ effectiveDate: '2020-13-01' }, 'effectiveDate'],
          [{ effectiveDate: '2999-01-01' }, 'effectiveDate'],
          [{ sourceEventId: '' }, 'sourceEventId'],
          [{ facts: { ...TARO, municipalityCode: undefined } }, 'municipalityCode'],
        ];
        for (const [change, field] of cases) {
          const err = await recordEvent(store, { ...base, ...change }).catch((e) => e);
          expect(err, field).toBeInstanceOf(RegisterValidationError);
          expect(err.field).toBe(field);
        }
        const wrongType = await recordEvent(store, { ...base, type: 'married' as never }).catch((e) => e);
        expect(wrongType.message).toMatch(/unknown event type/);
        expect(await counts()).toEqual(before);
      });

      it('refuses facts an event type cannot change, and events for unknown residents', async () => {
        const store = current();
        const id = newResidentId();
        await recordEvent(store, registration(id));
        const before = await counts();
        const err = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-within',
          effectiveDate: '2021-01-01',
          facts: { address: '東京都千代田区永田町1丁目', name: '別 名' },
        }).catch((e) => e);
        expect(err).toBeInstanceOf(RegisterValidationError);
        expect(err.issues).toContainEqual({
          field: 'name',
          message: 'a moved-within event cannot change the name',
        });
        await expect(
          recordEvent(store, {
            sourceEventId: newSourceId(),
            residentId: newResidentId(),
            type: 'died',
            effectiveDate: '2021-01-01',
          }),
        ).rejects.toBeInstanceOf(UnknownResidentError);
        await expect(recordEvent(store, registration(id))).rejects.toThrow(/already registered/);
        expect(await counts()).toEqual(before);
      });
    });

    describe('history', () => {
      it('keeps the past: facts at a time after a move and a name change', async () => {
        const store = current();
        const id = newResidentId();
        const reg = await recordEvent(store, registration(id, '2020-01-10'));
        expect(reg.resident).toMatchObject({
          name: '山田\u3000太郎',
          status: 'resident',
          version: 1,
          sex: 'male',
        });
        const move = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-in',
          effectiveDate: '2022-04-01',
          facts: { municipalityCode: SHINJUKU, address: '東京都新宿区西新宿2丁目8番1号' },
        });
        expect(move.outbox).toBe('revoke-sign');
        expect(move.applied).toEqual(['municipalityCode', 'address', 'addressSubstitutes']);
        const rename = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'name-changed',
          effectiveDate: '2023-06-15',
          facts: { name: '佐藤 太郎', nameKana: 'サトウ タロウ' },
        });
        expect(rename.resident).toMatchObject({
          name: '佐藤\u3000太郎',
          nameKana: 'サトウ\u3000タロウ',
          address: '東京都新宿区西新宿2丁目8番1号',
          municipalityCode: SHINJUKU,
          version: 3,
          effectiveDate: '2023-06-15',
        });

        expect(await factsAt(store, id, '2019-12-31')).toBeUndefined();
        expect(await factsAt(store, id, '2021-01-01')).toMatchObject({
          name: '山田\u3000太郎',
          address: TARO.address,
          municipalityCode: CHIYODA,
        });
        expect(await factsAt(store, id, '2022-04-01')).toMatchObject({
          name: '山田\u3000太郎',
          address: '東京都新宿区西新宿2丁目8番1号',
        });
        expect(await factsAt(store, id, '2024-01-01')).toMatchObject({ name: '佐藤\u3000太郎' });

        // The register event rows still hold the old values: nothing was overwritten.
        const history = await residentHistory(store, id);
        expect(history.map((e) => [e.type, e.snapshot.name, e.snapshot.address])).toEqual([
          ['registered', '山田\u3000太郎', TARO.address],
          ['moved-in', '山田\u3000太郎', '東京都新宿区西新宿2丁目8番1号'],
          ['name-changed', '佐藤\u3000太郎', '東京都新宿区西新宿2丁目8番1号'],
        ]);
        expect(history.map((e) => e.changed)).toEqual([
          expect.arrayContaining(['name', 'address', 'status']),
          ['municipalityCode', 'address', 'addressSubstitutes', 'status'],
          ['name', 'nameKana', 'nameSubstitutes'],
        ]);
      });

      it('a repeated event is a no-op returning the original; a reused id with other content is refused', async () => {
        const store = current();
        const id = newResidentId();
        await recordEvent(store, registration(id));
        const move: RegisterEventInput = {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-within',
          effectiveDate: '2021-05-01',
          facts: { address: '東京都千代田区永田町1丁目7番1号' },
        };
        const first = await recordEvent(store, move);
        const again = await recordEvent(store, move);
        expect(again.duplicate).toBe(true);
        expect(again.event).toEqual(first.event);
        expect(again.outbox).toBeNull();
        expect(again.resident.version).toBe(2);
        const before = await counts();
        await expect(
          recordEvent(store, { ...move, facts: { address: '東京都千代田区丸の内1丁目' } }),
        ).rejects.toBeInstanceOf(EventConflictError);
        // Concurrent repeats: still one event.
        const results = await Promise.all([1, 2, 3].map(() => recordEvent(store, move)));
        expect(results.every((r) => r.duplicate && r.event.id === first.event.id)).toBe(true);
        expect(await counts()).toEqual(before);
      });

      it('the event and its audit entry are one transaction: an audit entry that cannot be written leaves no event', async () => {
        const store = current();
        const id = newResidentId();
        const audited = await recordEvent(store, registration(id), {
          audit: (r) => ({
            actor: 'test',
            action: 'register.event',
            subject: `resident:${id}`,
            details: { event: r.event.id },
          }),
        });
        const entry = await store.db
          .selectFrom('audit_log')
          .select(['action', 'details'])
          .where('subject', '=', `resident:${id}`)
          .executeTakeFirstOrThrow();
        expect(entry.action).toBe('register.event');
        expect(String(entry.details)).toContain(String(audited.event.id));
        const before = await counts();
        const move: RegisterEventInput = {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-within',
          effectiveDate: '2021-05-01',
          facts: { address: '東京都千代田区永田町1丁目7番1号' },
        };
        await expect(
          recordEvent(store, move, {
            audit: () => {
              throw new Error('audit store unavailable');
            },
          }),
        ).rejects.toThrow('audit store unavailable');
        expect(await counts()).toEqual(before);
        expect((await getResident(store.db, id))!.version).toBe(1);
      });

      it('a late event goes into the history without rolling the current state back', async () => {
        const store = current();
        const id = newResidentId();
        await recordEvent(store, registration(id, '2020-01-01'));
        await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-within',
          effectiveDate: '2023-03-01',
          facts: { address: '東京都千代田区永田町2丁目' },
        });
        // Dated before the move, recorded after it: an older move.
        const lateMove = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'moved-within',
          effectiveDate: '2022-01-01',
          facts: { address: '東京都千代田区丸の内3丁目' },
        });
        expect(lateMove.event.late).toBe(true);
        expect(lateMove.applied).toEqual([]); // the address was set again later: the current state keeps it
        expect(lateMove.outbox).toBeNull();
        expect(lateMove.resident).toMatchObject({
          address: '東京都千代田区永田町2丁目',
          effectiveDate: '2023-03-01',
        });
        expect(lateMove.event.snapshot.address).toBe('東京都千代田区丸の内3丁目');
        expect(await factsAt(store, id, '2022-06-01')).toMatchObject({
          address: '東京都千代田区丸の内3丁目',
        });
        expect(await factsAt(store, id, '2023-06-01')).toMatchObject({
          address: '東京都千代田区永田町2丁目',
        });

        // A late name change: nothing later set the name, so it does reach the current state.
        const lateName = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'name-changed',
          effectiveDate: '2021-07-07',
          facts: { name: '鈴木 太郎' },
        });
        expect(lateName.event.late).toBe(true);
        expect(lateName.applied).toEqual(['name', 'nameKana']);
        expect(lateName.outbox).toBe('revoke-sign');
        expect(lateName.resident).toMatchObject({
          name: '鈴木\u3000太郎',
          address: '東京都千代田区永田町2丁目',
        });
        expect((await getResident(store, id))?.effectiveDate).toBe('2023-03-01');

        // Before the registration: refused.
        await expect(
          recordEvent(store, {
            sourceEventId: newSourceId(),
            residentId: id,
            type: 'moved-within',
            effectiveDate: '2019-01-01',
            facts: { address: '東京都千代田区' },
          }),
        ).rejects.toBeInstanceOf(RegisterStateError);
      });

      it('death is final: later events are refused, a late death still sets the status', async () => {
        const store = current();
        const id = newResidentId();
        await recordEvent(store, registration(id, '2020-01-01'));
        const died = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'died',
          effectiveDate: '2024-01-01',
        });
        expect(died.outbox).toBe('revoke-all');
        expect(died.resident.status).toBe('deceased');
        await expect(
          recordEvent(store, {
            sourceEventId: newSourceId(),
            residentId: id,
            type: 'moved-within',
            effectiveDate: '2024-02-01',
            facts: { address: '東京都千代田区' },
          }),
        ).rejects.toThrow(/not possible for a resident whose status on 2024-02-01 is deceased/);
        // A correction of a deceased resident's address is possible and keeps the status.
        const corrected = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: id,
          type: 'address-corrected',
          effectiveDate: '2024-01-01',
          facts: { address: '東京都千代田区霞が関2丁目1番3号' },
        });
        expect(corrected.resident.status).toBe('deceased');
        expect(corrected.outbox).toBe('revoke-sign'); // nothing valid is left; the processor will find nothing

        const other = newResidentId();
        await recordEvent(store, registration(other, '2020-01-01'));
        await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: other,
          type: 'moved-out',
          effectiveDate: '2023-01-01',
        });
        await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: other,
          type: 'moved-in',
          effectiveDate: '2023-06-01',
          facts: { municipalityCode: SHINJUKU, address: '東京都新宿区' },
        });
        const lateDeath = await recordEvent(store, {
          sourceEventId: newSourceId(),
          residentId: other,
          type: 'died',
          effectiveDate: '2023-03-01',
        });
        expect(lateDeath.event.late).toBe(true);
        expect(lateDeath.resident.status).toBe('deceased');
        expect(lateDeath.outbox).toBe('revoke-all');
      });
    });
  },
  { scope: 'suite' },
);
