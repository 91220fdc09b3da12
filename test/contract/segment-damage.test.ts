import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { tempDir } from '../helpers/temp-dir.js';
import { DiskSpool } from '../../src/spool/index.js';
import type { QueueEntry } from '../../src/spool/index.js';
import { accept, draft, restart } from './spool-contract.js';

/**
 * Damage to a segment on real files: only an append a crash cut short at the very end
 * may be dropped unreported; a record that was written whole and does not read back
 * goes to corrupt/ wherever it sits.
 */
describe('DiskSpool segment damage', () => {
  const FIRST_SEGMENT = '00000001';
  const HEADER_LENGTH = 'TERNS1 '.length + 12 + 1 + 8 + 1 + 8 + 1;

  /** A queue with one segment of `words.length` small messages, in that order. */
  async function queued(words: string[]) {
    const key = join(tempDir('tern-segdamage-'), 'queue');
    const spool = new DiskSpool(key);
    await spool.open();
    const entries: QueueEntry[] = [];
    for (const word of words) entries.push(...(await accept(spool, `Subject: ${word}\r\n\r\n${word} body\r\n`, [draft('a.test', [`${word}@a.test`])])));
    await spool.close();
    const path = join(key, 'seg', FIRST_SEGMENT);
    return { key, path, entries, data: readFileSync(path) };
  }

  /** Where each record starts, by its header. */
  const recordStarts = (data: Buffer) => {
    const starts: number[] = [];
    for (let at = data.indexOf('TERNS1 '); at !== -1; at = data.indexOf('TERNS1 ', at + 1)) starts.push(at);
    return starts;
  };

  const ids = (entries: QueueEntry[]) => entries.map((e) => e.id).sort();

  it('moves a damaged last record aside: complete but damaged is not a torn tail', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo', 'charlie']);
    data[data.lastIndexOf('charlie body')] ^= 0x20;
    writeFileSync(path, data);
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(ids(back.entries), ids(entries.slice(0, 2)));
    assert.equal(back.corrupt.length, 1);
    assert.match(back.corrupt[0].file, /^00000001@\d+$/);
    assert.equal(back.corrupt[0].error, 'checksum mismatch');
    const kept = readFileSync(join(key, 'corrupt', back.corrupt[0].file));
    assert.ok(kept.includes('Charlie body'), 'the damaged record is kept whole for the operator');
    assert.equal(kept.length, data.length - recordStarts(data)[2], 'exactly the last record');
  });

  it('moves a damaged last record aside and still ignores a torn append after it', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo']);
    data[data.lastIndexOf('bravo body')] ^= 0x20;
    writeFileSync(path, data);
    appendFileSync(path, 'TERNS1 000000001000 00000100 0badc0de\nSubject: never acknow');
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(ids(back.entries), ids(entries.slice(0, 1)));
    assert.deepEqual(back.corrupt.map((c) => c.error), ['checksum mismatch']);
    assert.equal(readFileSync(join(key, 'corrupt', back.corrupt[0].file)).length, data.length - recordStarts(data)[1]);
  });

  it('treats a last record whose length field grew past the end of the file as damage, not a torn tail', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo']);
    const last = recordStarts(data)[1];
    // The body length's top hex digit: the record now claims gigabytes that the file lacks,
    // yet every byte of it is there, as its checksum shows.
    data[last + 'TERNS1 '.length] = '1'.charCodeAt(0);
    writeFileSync(path, data);
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(ids(back.entries), ids(entries.slice(0, 1)));
    assert.deepEqual(back.corrupt.map((c) => c.error), ['record cut short']);
    assert.equal(readFileSync(join(key, 'corrupt', back.corrupt[0].file)).length, data.length - last);
  });

  it('keeps the records after one whose length field points past the end of the file', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo', 'charlie', 'delta']);
    const second = recordStarts(data)[1];
    data[second + 'TERNS1 '.length] = 'f'.charCodeAt(0);
    writeFileSync(path, data);
    const reopened = new DiskSpool(key);
    const back = await restart(reopened);
    assert.deepEqual(ids(back.entries), ids([entries[0], entries[2], entries[3]]));
    assert.equal(back.corrupt.length, 1);
    assert.equal(back.corrupt[0].file, `00000001@${second}`);
    const delta = back.entries.find((e) => e.id === entries[3].id)!;
    assert.equal(await text(reopened.bodyStream(delta)), 'Subject: delta\r\n\r\ndelta body\r\n');
  });

  it('keeps the records after one whose length field shrank', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo', 'charlie']);
    const second = recordStarts(data)[1];
    // Body length 0x…1b becomes 0x…0b: the record now seems to end inside its own body.
    const digit = second + 'TERNS1 '.length + 10;
    data[digit] = data[digit] === '0'.charCodeAt(0) ? '1'.charCodeAt(0) : '0'.charCodeAt(0);
    writeFileSync(path, data);
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(ids(back.entries), ids([entries[0], entries[2]]));
    assert.equal(back.corrupt.length, 1);
    assert.equal(readFileSync(join(key, 'corrupt', back.corrupt[0].file)).length, recordStarts(data)[2] - second);
  });

  it('moves aside a last record whose header is damaged', async () => {
    const { key, path, entries, data } = await queued(['alpha', 'bravo']);
    data[recordStarts(data)[1] + 2] = 'X'.charCodeAt(0);
    writeFileSync(path, data);
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(ids(back.entries), ids(entries.slice(0, 1)));
    assert.deepEqual(back.corrupt.map((c) => c.error), ['no record header']);
  });

  it('ignores an append cut short after its header, or zeros where its data never arrived', async () => {
    for (const tail of [Buffer.from('TERNS1 0000000'), Buffer.alloc(HEADER_LENGTH + 40)]) {
      const { key, path, entries } = await queued(['alpha', 'bravo']);
      appendFileSync(path, tail);
      const back = await restart(new DiskSpool(key));
      assert.deepEqual(ids(back.entries), ids(entries));
      assert.deepEqual(back.corrupt, [], 'never acknowledged: not corruption');
    }
  });

  it('moves aside, never deletes, segment files that hold no readable record', async () => {
    const key = join(tempDir('tern-segdamage-'), 'queue');
    const seg = join(key, 'seg');
    await new DiskSpool(key).open();
    writeFileSync(join(seg, '00000001'), 'not a segment at all\n');
    writeFileSync(join(seg, '00000002'), 'TERNS1 000000001000 00000100 0badc0de\nSubject: cut');
    writeFileSync(join(seg, '00000003'), '');
    writeFileSync(join(seg, '00000003.done'), 'SOMEID\n');
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(back.entries, []);
    assert.deepEqual(back.corrupt.map((c) => c.file).sort(), ['00000001', '00000002', '00000003']);
    assert.deepEqual(readdirSync(join(key, 'corrupt')).sort(), ['00000001', '00000002', '00000003', '00000003.done']);
    assert.equal(readFileSync(join(key, 'corrupt', '00000001'), 'utf8'), 'not a segment at all\n');
    assert.ok(!existsSync(join(seg, '00000001')) && !existsSync(join(seg, '00000002')) && !existsSync(join(seg, '00000003')));
    // A later segment of the same number that is moved aside too keeps the earlier copy.
    writeFileSync(join(seg, '00000001'), 'again\n');
    const again = await restart(new DiskSpool(key));
    assert.deepEqual(again.corrupt.map((c) => c.file), ['00000001.1']);
    assert.equal(readFileSync(join(key, 'corrupt', '00000001'), 'utf8'), 'not a segment at all\n');
  });
});
