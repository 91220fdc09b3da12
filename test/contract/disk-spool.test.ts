import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { DiskSpool } from '../../src/spool/index.js';
import { accept, draft, restart, spoolContract } from './spool-contract.js';

const fresh = () => join(tempDir('tern-spool-'), 'queue');

spoolContract('DiskSpool', (dir) => new DiskSpool(dir), fresh);

/** What only a spool on disk meets: files damaged or left behind by hand. */
describe('DiskSpool recovery of damaged files', () => {
  it('moves an unreadable message file aside and drops state files of messages already gone', async () => {
    const key = fresh();
    const spool = new DiskSpool(key);
    await spool.open();
    const [ok] = await accept(spool, 'fine\r\n', [draft('a.test', ['x@a.test'])]);
    writeFileSync(join(key, 'msg', 'BROKEN'), 'no trailer here');
    writeFileSync(join(key, 'entries', 'GONE.1.json'), '{}');
    const report = await restart(new DiskSpool(key));
    assert.deepEqual(report.entries.map((e) => e.id), [ok.id]);
    assert.deepEqual(report.corrupt.map((c) => c.file), ['BROKEN']);
    assert.equal(report.removedOrphans, 1);
    assert.ok(existsSync(join(key, 'corrupt', 'BROKEN')));
    assert.ok(!existsSync(join(key, 'entries', 'GONE.1.json')));
  });
});
