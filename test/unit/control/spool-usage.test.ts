import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SpoolUsage } from '../../../src/control/spool-usage.js';
import { tempDir } from '../../helpers/temp-dir.js';

/** What `du` would count: allocated blocks of every file and directory under root. */
function du(paths: string[]): number {
  return paths.reduce((sum, p) => sum + statSync(p).blocks * 512, 0);
}

describe('SpoolUsage: the queue directory\'s size on disk', () => {
  it('counts every file and directory below the queue directory, as du does', async () => {
    const root = tempDir('tern-usage-');
    mkdirSync(join(root, 'seg'));
    mkdirSync(join(root, 'entries'));
    writeFileSync(join(root, 'seg', '0000000001'), Buffer.alloc(100_000, 1));
    writeFileSync(join(root, 'entries', 'a.1.json'), '{"x":1}');
    const usage = new SpoolUsage(root, { minIntervalMs: 30_000, intervalFactor: 10, scrapeWaitMs: 10_000, parallel: 4, now: Date.now });
    const sample = await usage.sample();
    assert.ok(sample);
    assert.equal(sample.files, 4);
    assert.equal(sample.bytes, du([root, join(root, 'seg'), join(root, 'entries'), join(root, 'seg', '0000000001'), join(root, 'entries', 'a.1.json')]));
    assert.ok(sample.bytes >= 100_000);
    rmSync(root, { recursive: true, force: true });
  });

  it('measures again only once the interval has passed', async () => {
    const root = tempDir('tern-usage-');
    let now = 0;
    const usage = new SpoolUsage(root, { minIntervalMs: 30_000, intervalFactor: 10, scrapeWaitMs: 10_000, parallel: 4, now: () => now });
    const first = await usage.sample();
    writeFileSync(join(root, 'big'), Buffer.alloc(64_000, 1));
    assert.equal((await usage.sample())?.bytes, first?.bytes, 'within the interval: the last measurement');
    now += 30_000;
    assert.ok((await usage.sample())!.bytes >= first!.bytes + 64_000, 'after it: measured again');
    rmSync(root, { recursive: true, force: true });
  });

  it('answers at once with the previous figure while a walk that took long is under way', async () => {
    const root = tempDir('tern-usage-');
    let now = 0;
    // scrapeWaitMs 0: every walk counts as one that took too long to wait for.
    const usage = new SpoolUsage(root, { minIntervalMs: 30_000, intervalFactor: 10, scrapeWaitMs: 0, parallel: 4, now: () => now });
    const settled = async (pred: (bytes: number) => boolean) => {
      for (;;) {
        const s = await usage.sample();
        if (s && pred(s.bytes)) return s.bytes;
        await new Promise((r) => setImmediate(r));
      }
    };
    const first = await settled(() => true);
    writeFileSync(join(root, 'big'), Buffer.alloc(64_000, 1));
    now += 30_000;
    assert.equal((await usage.sample())?.bytes, first, 'the walk started; the scrape did not wait for it');
    assert.ok((await settled((b) => b !== first)) >= first + 64_000, 'a later scrape has its figure');
    rmSync(root, { recursive: true, force: true });
  });

  it('reports 0 bytes for a queue directory that is gone', async () => {
    const root = join(tempDir('tern-usage-'), 'not-there');
    const usage = new SpoolUsage(root, { minIntervalMs: 30_000, intervalFactor: 10, scrapeWaitMs: 10_000, parallel: 4, now: Date.now });
    assert.deepEqual({ ...(await usage.sample()), at: 0 }, { bytes: 0, files: 0, at: 0 });
  });
});
