import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, TernProcess, tempQueue, writeConfig } from '../helpers/tern-process.js';

describe('the queue survives restarts and crashes', () => {
  let world: World;
  before(async () => {
    world = await new World().start();
  });
  after(async () => {
    await world?.stop();
  });

  it('keeps queued entries across a clean restart and delivers them after', async () => {
    const queue = tempQueue();
    const first = await world.tern({ outbound: 'disabled=true' }, queue);
    await sendMail({ port: first.port, from: 'a@client.test', to: ['restart1@good.test', 'restart2@other.test'], body: message('restart') });
    const stopped = await first.stop();
    assert.equal(stopped.code, 0, 'SIGTERM exits 0');
    assert.equal(readdirSync(join(queue, 'seg')).length, 1, 'one segment holds the message and both its entries');
    assert.deepEqual(readdirSync(join(queue, 'msg')), [], 'a small message has no file of its own');
    const second = await world.tern({}, queue);
    try {
      const recovered = await second.waitFor((r) => r.msg === 'queue recovered');
      assert.equal(recovered.entries, 2);
      await second.waitFor((r) => r.type === 'Delivery' && r.recipient === 'restart1@good.test');
      await second.waitFor((r) => r.type === 'Delivery' && r.recipient === 'restart2@other.test');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(readdirSync(join(queue, 'entries')), [], 'delivered entries leave the queue');
      assert.deepEqual(readdirSync(join(queue, 'seg')), [], 'and so does the segment that held the body');
    } finally {
      await second.stop();
    }
  });

  it('loses no acknowledged message when killed with SIGKILL while clients are sending', async () => {
    const queue = tempQueue();
    const tern = await world.tern({ outbound: 'disabled=true' }, queue);
    const acknowledged: string[] = [];
    let stop = false;
    const senders = [0, 1, 2, 3].map(async (worker) => {
      for (let i = 0; !stop && i < 500; i++) {
        const rcpt = `crash-${worker}-${i}@good.test`;
        try {
          const res = await sendMail({ port: tern.port, from: 'a@client.test', to: [rcpt], body: message(`crash ${worker} ${i}`, 'x'.repeat(2000)) });
          if (/^250 /.test(res.response)) acknowledged.push(rcpt);
        } catch {
          return; // the daemon died mid-transaction: this one was never acknowledged
        }
      }
    });
    await tern.waitForCount((r) => r.type === 'Reception', 20, 20000);
    tern.signal('SIGKILL');
    stop = true;
    await Promise.all(senders);
    await tern.exited;
    assert.ok(acknowledged.length >= 20, `acknowledged ${acknowledged.length}`);

    const before = world.mx.recipients().length;
    const again = await world.tern({}, queue);
    try {
      for (const rcpt of acknowledged) await again.waitFor((r) => r.type === 'Delivery' && r.recipient === rcpt, 30000);
      const delivered = new Set(world.mx.recipients().slice(before));
      for (const rcpt of acknowledged) assert.ok(delivered.has(rcpt), `${rcpt} was acknowledged and must be delivered`);
    } finally {
      await again.stop();
    }
  });

  it('moves a corrupt message aside, removes leftovers, and still starts', async () => {
    const queue = tempQueue();
    for (const d of ['entries', 'msg', 'tmp']) mkdirSync(join(queue, d), { recursive: true });
    writeFileSync(join(queue, 'msg', 'BROKEN1'), 'Subject: cut off before its trailer\r\n');
    writeFileSync(join(queue, 'tmp', 'HALF'), 'half-written');
    // The state of an entry whose message already left the queue (a removal cut short).
    writeFileSync(join(queue, 'entries', 'NOBODY.1.json'), JSON.stringify({
      v: 1, id: 'NOBODY.1', messageId: 'NOBODY', domain: 'good.test', sender: 'a@client.test',
      recipients: [{ address: 'x@good.test', state: 'deferred' }], dsn: {}, smtpUtf8: false, bodyType: '7bit',
      queuedAt: Date.now(), size: 10, siblings: 1, attempts: 1, tempFailures: 1, nextAttemptAt: Date.now(),
    }));
    const tern = await world.tern({}, queue);
    try {
      const err = await tern.waitFor((r) => r.msg === 'corrupt queue entry moved aside');
      assert.equal(err.file, 'BROKEN1');
      const rec = await tern.waitFor((r) => r.msg === 'queue recovered');
      assert.equal(rec.removed_orphans, 1, 'a state file without its message belongs to nothing');
      assert.equal(rec.removed_temporary, 1, 'a message still in tmp/ was never acknowledged');
      assert.ok(existsSync(join(queue, 'corrupt', 'BROKEN1')));
      assert.deepEqual(readdirSync(join(queue, 'tmp')), []);
      assert.deepEqual(readdirSync(join(queue, 'entries')), []);
      const res = await sendMail({ port: tern.port, from: 'a@client.test', to: ['after-corrupt@good.test'], body: message('after') });
      assert.match(res.response, /^250 /);
    } finally {
      await tern.stop();
    }
  });

  it('reports a damaged last record of a segment and moves it aside, rather than taking it for a torn write', async () => {
    const queue = tempQueue();
    const first = await world.tern({ outbound: 'disabled=true' }, queue);
    for (let i = 1; i <= 10; i++) {
      const res = await sendMail({ port: first.port, from: 'a@client.test', to: [`flip${i}@good.test`], body: message(`flip ${i}`, `body of message number ${i}`) });
      assert.match(res.response, /^250 /);
    }
    assert.equal((await first.stop()).code, 0);
    const segment = join(queue, 'seg', '00000001');
    const data = readFileSync(segment);
    // One byte inside the body of the last record: acknowledged, then damaged on disk.
    const at = data.lastIndexOf('body of message number 10');
    assert.ok(at > data.lastIndexOf('TERNS1 '), 'the byte lies in the last record');
    data[at] ^= 0x20;
    writeFileSync(segment, data);
    const second = await world.tern({ outbound: 'disabled=true' }, queue);
    try {
      const rec = await second.waitFor((r) => r.msg === 'queue recovered');
      assert.equal(rec.entries, 9);
      assert.equal(rec.corrupt, 1);
      const err = await second.waitFor((r) => r.msg === 'corrupt queue entry moved aside');
      assert.match(String(err.file), /^00000001@\d+$/);
      assert.equal(err.error, 'checksum mismatch');
      assert.equal(err.level, 'error', 'an error record');
      assert.deepEqual(readdirSync(join(queue, 'corrupt')), [err.file]);
      assert.ok(readFileSync(join(queue, 'corrupt', String(err.file))).includes('Body of message number 10'));
    } finally {
      await second.stop();
    }
  });

  it('answers 451 4.3.0 when the queue cannot be written, and leaves no partial file', async () => {
    const queue = tempQueue();
    const tern = await world.tern({}, queue);
    const refused = (err: Error & { response?: string }) => /^451 4\.3\.0 /.test(err.response ?? '');
    try {
      // Replace seg/ and msg/ with plain files: creating the segment (small messages) or
      // the rename of a message file (large ones) fails as a full or broken disk would.
      for (const dir of ['seg', 'msg']) {
        renameSync(join(queue, dir), join(queue, `${dir}.away`));
        writeFileSync(join(queue, dir), 'not a directory');
      }
      await assert.rejects(sendMail({ port: tern.port, from: 'a@client.test', to: ['nowrite@good.test'], body: message('nowrite') }), refused);
      const large = message('nowrite large', `${'x'.repeat(76)}\r\n`.repeat(4000));
      await assert.rejects(sendMail({ port: tern.port, from: 'a@client.test', to: ['nowrite-large@good.test'], body: large }), refused);
      assert.deepEqual(readdirSync(join(queue, 'tmp')), [], 'no temp file left behind');
      assert.deepEqual(readdirSync(join(queue, 'seg.away')), [], 'no segment left behind');
      assert.deepEqual(readdirSync(join(queue, 'msg.away')), [], 'no message left behind');
      assert.deepEqual(readdirSync(join(queue, 'entries')), [], 'no entry state left behind');
    } finally {
      await tern.stop();
    }
  });
});

describe('a bad config stops the start', () => {
  it('names the file, key and value and exits non-zero', () => {
    const dir = writeConfig({ 'outbound.ini': 'concurrency_max=lots\n' });
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', dir, '--queue', tempQueue()], { encoding: 'utf8', timeout: 10000 });
    assert.equal(res.status, 78);
    assert.match(res.stderr, /outbound\.ini: concurrency_max="lots": /);
  });

  it('refuses unknown keys', () => {
    const dir = writeConfig({ 'outbound.ini': 'concurency_max=10\n' });
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', dir, '--queue', tempQueue()], { encoding: 'utf8', timeout: 10000 });
    assert.equal(res.status, 78);
    assert.match(res.stderr, /outbound\.ini: concurency_max="10": unknown key/);
  });

  it('a broken edit while running keeps the previous config in force', async () => {
    const world = await new World({ tls: '127.0.0.12', dead: '127.0.0.13', plain: '127.0.0.14' }).start();
    const tern = await new TernProcess(writeConfig(world.configFiles()), tempQueue()).start();
    try {
      writeFileSync(join(tern.configDir, 'outbound.ini'), 'temp_fail_intervals=soon\n');
      const failed = await tern.waitFor((r) => r.msg === 'config reload failed; keeping the previous config');
      assert.match(String(failed.error), /temp_fail_intervals/);
      const res = await sendMail({ port: tern.port, from: 'a@client.test', to: ['still@good.test'], body: message('still') });
      assert.match(res.response, /^250 /);
      await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'still@good.test');
    } finally {
      await tern.stop();
      await world.stop();
    }
  });
});
