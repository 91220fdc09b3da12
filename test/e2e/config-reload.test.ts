import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { is, REPO_ROOT, writeConfig } from '../helpers/tern-process.js';

/** Impossible durations and counts, a config file deleted under a running daemon, and Node's own warnings. */
describe('config values out of range, config files that go, process warnings', () => {
  let world: World;
  before(async () => {
    world = await new World({ tls: '127.0.0.222', dead: '127.0.0.223', plain: '127.0.0.224' }).start();
  });
  after(async () => {
    await world?.stop();
  });

  it('tern config check refuses a duration past what a timer holds and a zero timeout, exit 78, naming file, key and value', { timeout: 60000 }, () => {
    const dir = writeConfig({ 'outbound.ini': 'greeting_timeout=25d\nconnect_timeout=0\n', 'smtp.ini': 'max_clients=0\n' });
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'config', 'check', '--config', dir], { encoding: 'utf8', timeout: 10000 });
    assert.equal(res.status, 78, res.stdout + res.stderr);
    const lines = res.stdout.trim().split('\n').sort();
    assert.equal(lines.length, 3, res.stdout);
    assert.match(lines[0], /^outbound\.ini: connect_timeout="0": /);
    assert.match(lines[1], /^outbound\.ini: greeting_timeout="25d": /);
    assert.match(lines[2], /^smtp\.ini: max_clients="0": /);
    const only = writeConfig({ 'outbound.ini': 'greeting_timeout=25d\n' });
    const start = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', only, '--queue', join(only, 'queue')], { encoding: 'utf8', timeout: 10000 });
    assert.equal(start.status, 78, 'the start refuses it too');
    assert.match(start.stderr, /outbound\.ini: greeting_timeout="25d": /);
  });

  it('keeps the running config when a reload brings a value out of range, and still delivers', { timeout: 60000 }, async () => {
    const tern = await world.tern();
    try {
      writeFileSync(join(tern.configDir, 'outbound.ini'), 'local_mx_ok=true\ngreeting_timeout=25d\n');
      const failed = await tern.waitFor((r) => r.msg === 'config reload failed; keeping the previous config');
      assert.equal(failed.level, 'error');
      assert.match(String(failed.error), /^outbound\.ini: greeting_timeout="25d": /);
      const res = await sendMail({ port: tern.port, from: 'a@client.test', to: ['kept-config@good.test'], body: message('kept') });
      assert.match(res.response, /^250 /);
      await tern.waitFor(is('Delivery', 'kept-config@good.test'));
      assert.equal(tern.dispositions('Bounce').length, 0);
    } finally {
      await tern.stop();
    }
  });

  it('warns, naming the file and every key that went back to its default, when outbound.ini is deleted', { timeout: 60000 }, async () => {
    const tern = await world.tern({ outbound: 'disabled=true\nconcurrency_max=7' });
    try {
      rmSync(join(tern.configDir, 'outbound.ini'));
      const warned = await tern.waitFor((r) => r.msg === 'config file removed; its settings are back to their defaults');
      assert.equal(warned.level, 'warn');
      assert.equal(warned.file, 'outbound.ini');
      const reverted = new Map((warned.reverted as { key: string; was: unknown; now: unknown }[]).map((k) => [k.key, k]));
      assert.deepEqual(reverted.get('disabled'), { key: 'disabled', was: true, now: false });
      assert.deepEqual(reverted.get('concurrency_max'), { key: 'concurrency_max', was: 7, now: 10000 });
      assert.deepEqual(reverted.get('connect_timeout'), { key: 'connect_timeout', was: 2, now: 30 });
      assert.ok(!reverted.has('enable_tls'), 'a key that kept its value is not listed');
    } finally {
      await tern.stop();
    }
  });

  it('logs a Node process warning as a JSON record; nothing else reaches stdout or stderr', { timeout: 60000 }, async () => {
    const tern = await world.tern({ files: { plugins: `${join(REPO_ROOT, 'test/fixtures/plugins/overflowing-timer.mjs')}\n` } });
    try {
      await sendMail({ port: tern.port, from: 'a@client.test', to: ['warned@good.test'], body: message('warned') });
      await tern.waitFor(is('Delivery', 'warned@good.test'));
      const warning = await tern.waitFor((r) => r.msg === 'process warning');
      assert.equal(warning.level, 'warn');
      assert.equal((warning.warning as { name: string }).name, 'TimeoutOverflowWarning');
    } finally {
      await tern.stop();
    }
    assert.deepEqual(tern.records.filter((r) => r.msg === 'unparsable'), [], 'every stdout line is JSON');
    assert.deepEqual(tern.stderr.filter((l) => /Warning/.test(l)), [], 'no warning text on stderr');
  });
});
