import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { DiskSpool } from '../../src/spool/index.js';
import { REPO_ROOT, TernProcess, tempQueue } from '../helpers/tern-process.js';
import { writeConfig } from '../helpers/tern-process.js';

/**
 * One process per queue directory: a second daemon on a queue in use (an operator's
 * mistake, or a supervisor that restarts a killed nodes=N primary while its old workers
 * still drain) would attempt the same entries and send mail twice.
 */
describe('a queue directory is held by one process at a time', () => {
  let world: World;
  before(async () => {
    world = await new World({ tls: '127.0.0.189', dead: '127.0.0.190', plain: '127.0.0.194' }).start();
  });
  after(async () => {
    await world?.stop();
  });

  it('refuses a second daemon on a queue in use (exit 75, naming the holder), and takes over the lock of one that was killed', async () => {
    const queue = tempQueue();
    const config = writeConfig(world.configFiles());
    const first = await new TernProcess(config, queue).start();
    const second = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', config, '--queue', queue], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(second.status, 75, 'EX_TEMPFAIL: try again once the other has stopped');
    assert.match(second.stderr, /TERN_ERR_QUEUE_IN_USE/);
    assert.ok(second.stderr.includes(String(first.child.pid)), 'the holder is named');

    // A daemon that dies without a word leaves its lock: the next one sees the holder is gone.
    first.signal('SIGKILL');
    await first.exited;
    assert.ok(existsSync(join(queue, 'tern.lock')), 'the killed daemon left its lock');
    const third = await new TernProcess(config, queue).start();
    await third.stop();
    assert.equal(existsSync(join(queue, 'tern.lock')), false, 'a clean stop releases it');
  });

  it('a spool refuses a directory another process holds', async () => {
    const queue = tempQueue();
    const holder = await new TernProcess(writeConfig(world.configFiles()), queue).start();
    try {
      const spool = new DiskSpool(queue);
      await assert.rejects(spool.open(), (err: Error & { code?: string }) => err.code === 'TERN_ERR_QUEUE_IN_USE');
    } finally {
      await holder.stop();
    }
  });
});
