import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ImportFormatError } from '../../src/register/errors.ts';
import { type ImportProgress, importResidents } from '../../src/register/import.ts';
import { factsAt, getResident, recordEvent, residentHistory } from '../../src/register/register.ts';
import { forEachStore } from '../helpers/db.ts';
import { generatedCsv, HEADER, newSourceId } from './helpers.ts';

forEachStore(
  (current) => {
    const eventCount = async () =>
      Number(
        (
          await current()
            .db.selectFrom('register_events')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );

    it('imports good rows, reports bad ones by row and column, and goes on', async () => {
      const store = current();
      const csv = [
        HEADER,
        '10000000001,131016,山田 太郎,ヤマダ タロウ,1980-04-01,M,東京都千代田区霞が関2丁目1番2号', // row 2 ok
        '10000000002,131017,佐藤 花子,,1985-02-30,F,東京都千代田区', // row 3: two errors
        '10000000003,131016,鈴木 一郎,,,U,東京都千代田区永田町1丁目', // row 4 ok (unknown date of birth)
        '10000000004,131016,田中 美咲,,1990-01-01,F', // row 5: 6 fields
        '1234,131016,高橋 健太,,1990-01-01,M,東京都千代田区', // row 6: bad resident id
        '10000000001,131016,山田 次郎,,1981-04-01,M,東京都千代田区', // row 7: duplicate of row 2
        '10000000005,131016,"伊藤 ""陽菜",,2000-01-01,F,東京都千代田区', // row 8 ok (quote in name)
        '10000000006,131016,渡辺 x"y,,2000-01-01,F,東京都千代田区', // row 9: stray quote
        '10000000007,131041,"中村\u0007陽菜",,2000-01-01,F,東京都新宿区', // row 10: control character
      ].join('\n');
      const progress: ImportProgress[] = [];
      const seen: number[] = [];
      const result = await importResidents(store, Readable.from([Buffer.from(csv)]), {
        batchSize: 2,
        onProgress: (p) => progress.push(p),
        onError: (e) => seen.push(e.row),
      });
      expect(result).toMatchObject({ rows: 9, imported: 3, unchanged: 0, failed: 6 });
      const byRow = result.errors.map((e) => [e.row, e.field]).sort((a, b) => Number(a[0]) - Number(b[0]));
      expect(byRow).toEqual([
        [3, 'municipality_code'],
        [3, 'date_of_birth'],
        [5, ''],
        [6, 'resident_id'],
        [7, 'resident_id'],
        [9, ''],
        [10, 'name'],
      ]);
      expect(result.errors.find((e) => e.row === 7)?.message).toMatch(
        /duplicate resident id: already on row 2/,
      );
      expect(result.errors.find((e) => e.row === 5)?.message).toMatch(/6 fields, the header 7/);
      expect(seen.length).toBe(7);
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(progress.at(-1)).toMatchObject({ imported: 3, failed: 6 });

      expect(await getResident(store, '10000000003')).toMatchObject({ dateOfBirth: null, sex: 'unknown' });
      expect(await getResident(store, '10000000005')).toMatchObject({ name: '伊藤\u3000"陽菜' });
      const [reg] = await residentHistory(store, '10000000001');
      expect(reg).toMatchObject({ type: 'registered', importId: result.importId, importRow: 2 });

      // The same file again: nothing new, the same errors except that the duplicate now meets the
      // earlier import's registration (different facts).
      const events = await eventCount();
      const again = await importResidents(store, Readable.from([csv]), { batchSize: 2 });
      expect(again).toMatchObject({ rows: 9, imported: 0, unchanged: 3, failed: 6 });
      expect(again.errors.find((e) => e.row === 7)?.message).toMatch(
        /already registered with different facts \(register event \d+, row 2 of import [0-9a-f]+\)/,
      );
      expect(await eventCount()).toBe(events);
    });

    it('never overwrites a resident changed since: re-import compares with the registration', async () => {
      const store = current();
      const csv = `${HEADER}\n20000000001,131016,山田 太郎,,1980-04-01,M,東京都千代田区霞が関2丁目1番2号\n`;
      await importResidents(store, [csv], { effectiveDate: '2020-01-01' });
      await recordEvent(store, {
        sourceEventId: newSourceId(),
        residentId: '20000000001',
        type: 'moved-within',
        effectiveDate: '2021-01-01',
        facts: { address: '東京都千代田区永田町1丁目' },
      });
      const again = await importResidents(store, [csv]);
      expect(again).toMatchObject({ imported: 0, unchanged: 1, failed: 0 });
      expect(await getResident(store, '20000000001')).toMatchObject({ address: '東京都千代田区永田町1丁目' });
      expect(await factsAt(store, '20000000001', '2020-06-01')).toMatchObject({
        address: '東京都千代田区霞が関2丁目1番2号',
      });
    });

    it('accepts Japanese column names in any order and an effective_date column', async () => {
      const store = current();
      const csv =
        '\ufeff住所,氏名,性別,生年月日,住民票コード,団体コード,異動日\r\n東京都新宿区西新宿,佐藤 花子,2,1990-05-05,30000000001,131041,2019-04-01\r\n';
      const r = await importResidents(store, [csv]);
      expect(r).toMatchObject({ imported: 1, failed: 0 });
      expect(await getResident(store, '30000000001')).toMatchObject({
        sex: 'female',
        effectiveDate: '2019-04-01',
      });
    });

    it('refuses a bad header before writing anything', async () => {
      const store = current();
      const events = await eventCount();
      await expect(importResidents(store, ['resident_id,nmae\n1,2\n'])).rejects.toThrow(
        /unknown column\(s\) "nmae"/,
      );
      await expect(importResidents(store, ['resident_id,name\n'])).rejects.toThrow(
        /missing column\(s\): municipality_code/,
      );
      await expect(importResidents(store, [`${HEADER},name\n`])).rejects.toThrow(/given twice: name/);
      await expect(importResidents(store, [''])).rejects.toBeInstanceOf(ImportFormatError);
      expect(await eventCount()).toBe(events);
    });

    it('imports a generated 20,000-row file in batches', async () => {
      const store = current();
      let calls = 0;
      const result = await importResidents(store, Readable.from(generatedCsv(20_000, 40_000_000_000)), {
        onProgress: () => calls++,
      });
      expect(result).toMatchObject({ rows: 20_000, imported: 20_000, failed: 0 });
      expect(calls).toBe(20);
      console.log(
        `[register import] ${store.backend}: 20,000 rows in ${Math.round(result.elapsedMs)} ms = ${result.rowsPerSecond} rows/s`,
      );
      expect(await getResident(store, '40000019999')).toMatchObject({ status: 'resident', version: 1 });
      const again = await importResidents(store, Readable.from(generatedCsv(20_000, 40_000_000_000)));
      expect(again).toMatchObject({ imported: 0, unchanged: 20_000, failed: 0 });
      console.log(
        `[register import] ${store.backend}: re-import (all unchanged) ${again.rowsPerSecond} rows/s`,
      );
    });
  },
  { scope: 'suite' },
);

describe('generatedCsv', () => {
  it('makes valid rows', () => {
    const text = [...generatedCsv(3, 50_000_000_000)].join('');
    expect(text.split('\r\n')[1]).toMatch(
      /^50000000000,131016,山田 太郎,,1930-01-01,M,"東京都千代田区一丁目0番地"$/,
    );
  });
});
