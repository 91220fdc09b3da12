import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tempDir } from '../helpers/temp-dir.js';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { DiskSpool } from '../../src/spool/index.js';
import type { QueueEntry } from '../../src/spool/index.js';
import { accept, draft, restart } from './spool-contract.js';

/** What DiskSpool does with small messages: segments, their done logs, their removal. */
describe('DiskSpool segments', () => {
  const fresh = () => join(tempDir('tern-segments-'), 'queue');
  const FIRST_SEGMENT = '00000001';
  const one = (i: number) => [draft('a.test', [`r${i}@a.test`])];

  it('appends small messages to one segment and gives a large one a file of its own', async () => {
    const key = fresh();
    const spool = new DiskSpool(key);
    await spool.open();
    for (let i = 0; i < 3; i++) await accept(spool, `small ${i}\r\n`, one(i));
    const large = `${'x'.repeat(998)}\r\n`.repeat(300);
    const [big] = await accept(spool, large, one(9));
    assert.deepEqual(readdirSync(join(key, 'seg')), [FIRST_SEGMENT]);
    assert.deepEqual(readdirSync(join(key, 'msg')), [big.messageId]);
    const back = await restart(new DiskSpool(key));
    assert.equal(back.entries.length, 4);
    assert.equal(await text(new DiskSpool(key).bodyStream(big)), large);
  });

  it('ignores a record a crash cut short at the end, and appends to a new segment after', async () => {
    const key = fresh();
    const spool = new DiskSpool(key);
    await spool.open();
    const kept = [...(await accept(spool, 'one\r\n', one(1))), ...(await accept(spool, 'two\r\n', one(2)))];
    // The header and part of a body: what is on disk when the power goes mid-append.
    appendFileSync(join(key, 'seg', FIRST_SEGMENT), 'TERNS1 000000001000 00000100 0badc0de\nSubject: never acknow');
    const reopened = new DiskSpool(key);
    const back = await restart(reopened);
    assert.deepEqual(back.entries.map((e) => e.id).sort(), kept.map((e) => e.id).sort());
    assert.deepEqual(back.corrupt, [], 'a torn tail was never acknowledged: not corruption');
    const [third] = await accept(reopened, 'three\r\n', one(3));
    assert.deepEqual(readdirSync(join(key, 'seg')).sort(), [FIRST_SEGMENT, '00000002']);
    const again = await restart(new DiskSpool(key));
    assert.deepEqual(again.entries.map((e) => e.id).sort(), [...kept, third].map((e) => e.id).sort());
  });

  it('moves a damaged record aside and keeps the records after it', async () => {
    const key = fresh();
    const spool = new DiskSpool(key);
    await spool.open();
    const entries: QueueEntry[] = [];
    for (const word of ['alpha', 'bravo', 'charlie']) entries.push(...(await accept(spool, `Subject: ${word}\r\n`, one(entries.length))));
    const path = join(key, 'seg', FIRST_SEGMENT);
    const data = readFileSync(path);
    const at = data.indexOf('bravo');
    data[at] = 'B'.charCodeAt(0);
    writeFileSync(path, data);
    const reopened = new DiskSpool(key);
    const back = await restart(reopened);
    assert.deepEqual(back.entries.map((e) => e.id).sort(), [entries[0].id, entries[2].id].sort());
    assert.equal(back.corrupt.length, 1);
    assert.match(back.corrupt[0].file, /^00000001@\d+$/);
    assert.equal(back.corrupt[0].error, 'checksum mismatch');
    assert.ok(readFileSync(join(key, 'corrupt', back.corrupt[0].file)).includes('Bravo'), 'the damaged bytes are kept for the operator');
    assert.equal(await text(reopened.bodyStream(back.entries.find((e) => e.id === entries[2].id)!)), 'Subject: charlie\r\n');
  });

  it('starts a new segment when the current one is full, and removes a full one once it is empty', async () => {
    const key = fresh();
    const spool = new DiskSpool(key, { segmentBytes: 1024 });
    await spool.open();
    const entries: QueueEntry[] = [];
    for (let i = 0; i < 6; i++) entries.push(...(await accept(spool, `${'y'.repeat(400)} ${i}\r\n`, one(i))));
    const segments = readdirSync(join(key, 'seg')).sort();
    assert.ok(segments.length >= 3, `${segments.join(' ')}`);
    // The first segment holds the first messages; once they are gone, so is it.
    for (const e of entries.slice(0, 2)) await spool.remove(e);
    await spool.retireSparseSegments();
    assert.ok(!existsSync(join(key, 'seg', FIRST_SEGMENT)));
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(back.entries.map((e) => e.id).sort(), entries.slice(2).map((e) => e.id).sort());
  });

  it('keeps a full segment while a message written to it is still being made durable', async () => {
    const key = fresh();
    // Every segment is full after one record: the first message seals it.
    const spool = new DiskSpool(key, { segmentBytes: 1 });
    await spool.open();
    const first = accept(spool, 'first\r\n', one(1));
    // The second joins the same segment while the first one's fdatasync is running, so it
    // waits for the next; the first leaves the queue meanwhile.
    await new Promise((resolve) => setImmediate(resolve));
    const second = accept(spool, 'second\r\n', one(2));
    const [a] = await first;
    await spool.remove(a);
    const [b] = await second;
    await spool.retireSparseSegments();
    assert.equal(await text(spool.bodyStream(b)), 'second\r\n');
    assert.deepEqual((await restart(new DiskSpool(key))).entries.map((e) => e.id), [b.id], 'acknowledged, so it must survive');
  });

  it('removes an old segment once its last message has left the queue', async () => {
    const key = fresh();
    const first = new DiskSpool(key);
    await first.open();
    for (let i = 0; i < 2; i++) await accept(first, `m ${i}\r\n`, one(i));
    const spool = new DiskSpool(key);
    const { entries } = await restart(spool);
    await spool.remove(entries[0]);
    assert.ok(existsSync(join(key, 'seg', FIRST_SEGMENT)), 'one message still lives in it');
    await spool.remove(entries[1]);
    await spool.retireSparseSegments();
    assert.deepEqual(readdirSync(join(key, 'seg')), []);
    assert.equal((await restart(new DiskSpool(key))).entries.length, 0);
  });

  /**
   * Eight messages in a segment an earlier run left, read back by a spool whose clock the
   * test moves; all but the first `kept` delivered.
   */
  async function oldSegment(kept: number) {
    const key = fresh();
    const first = new DiskSpool(key);
    await first.open();
    for (let i = 0; i < 8; i++) await accept(first, `body ${i}\r\n`, one(i));
    const clock = { now: 1_700_000_000_000 };
    const spool = new DiskSpool(key, { now: () => clock.now });
    const { entries } = await restart(spool);
    entries.sort((x, y) => x.id.localeCompare(y.id));
    for (const e of entries.slice(kept)) await spool.remove(e);
    return { key, spool, clock, left: entries.slice(0, kept) };
  }

  it('copies the last few messages of an old segment out to files of their own', async () => {
    const { key, spool, clock, left } = await oldSegment(1);
    const [straggler] = left;
    await spool.retireSparseSegments();
    assert.ok(existsSync(join(key, 'seg', FIRST_SEGMENT)), 'a segment sealed just now is left alone');
    clock.now += 61_000;
    await spool.retireSparseSegments();
    assert.deepEqual(readdirSync(join(key, 'seg')), []);
    assert.deepEqual(readdirSync(join(key, 'msg')), [straggler.messageId]);
    assert.equal(await text(spool.bodyStream(straggler)), 'body 0\r\n');
    assert.deepEqual(await spool.load(straggler.id), straggler);
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(back.entries, [straggler]);
    await spool.remove(straggler);
    assert.deepEqual(readdirSync(join(key, 'msg')), []);
  });

  it('keeps the segment when copying its last messages out fails, and copies them later', async () => {
    const { key, spool, clock, left } = await oldSegment(2);
    const [a, b] = left;
    clock.now += 61_000;
    // msg/ replaced by a plain file: the copies cannot be renamed in, as on a broken disk.
    renameSync(join(key, 'msg'), join(key, 'msg.away'));
    writeFileSync(join(key, 'msg'), 'not a directory');
    await spool.retireSparseSegments();
    assert.ok(existsSync(join(key, 'seg', FIRST_SEGMENT)), 'the segment is still the truth');
    assert.ok(!existsSync(join(key, 'seg', `${FIRST_SEGMENT}.moving`)), 'no copy was left to settle');
    assert.deepEqual(readdirSync(join(key, 'tmp')), [], 'nor a temp file');
    assert.equal(await text(spool.bodyStream(a)), 'body 0\r\n');
    rmSync(join(key, 'msg'));
    renameSync(join(key, 'msg.away'), join(key, 'msg'));
    await spool.retireSparseSegments();
    assert.deepEqual(readdirSync(join(key, 'seg')), [], 'the next sweep tries again');
    assert.deepEqual(readdirSync(join(key, 'msg')).sort(), [a.messageId, b.messageId].sort());
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(back.entries.map((e) => e.id).sort(), [a.id, b.id].sort(), 'each once');
  });

  it('after a crash while copying messages out, trusts the segment and drops the copies', async () => {
    const key = fresh();
    const first = new DiskSpool(key);
    await first.open();
    const queued = [...(await accept(first, 'a\r\n', one(1))), ...(await accept(first, 'b\r\n', one(2)))];
    // A copy finished, the segment not yet removed: the state a crash mid-copy leaves.
    writeFileSync(join(key, 'msg', queued[0].messageId), 'a copy, perhaps half written');
    writeFileSync(join(key, 'seg', `${FIRST_SEGMENT}.moving`), '');
    const back = await restart(new DiskSpool(key));
    assert.deepEqual(readdirSync(join(key, 'msg')), []);
    assert.ok(!existsSync(join(key, 'seg', `${FIRST_SEGMENT}.moving`)));
    assert.deepEqual(back.entries.map((e) => e.id).sort(), queued.map((e) => e.id).sort(), 'each message once');
  });
});
