import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterPlan } from '../../../src/daemon/index.js';
import { tempDir } from '../../helpers/temp-dir.js';

function setup(nodes: string, dirs: string[]): { config: string; queue: string } {
  const config = tempDir('tern-config-');
  writeFileSync(join(config, 'smtp.ini'), `[main]\nnodes=${nodes}\n`);
  const queue = tempDir('tern-queue-');
  for (const d of dirs) mkdirSync(join(queue, d), { recursive: true });
  return { config, queue };
}

const shape = (plan: ReturnType<typeof clusterPlan>) => plan?.slots.map((s) => [s.label, s.shard ?? null, s.listen]);

describe('which processes `tern start` runs (smtp.ini nodes)', () => {
  it('nodes=1 and nothing to adopt: the single process (no primary)', () => {
    const { config, queue } = setup('1', ['seg', 'shard-0']);
    assert.equal(clusterPlan(config, queue), undefined, 'an empty shard directory holds no queue');
  });

  it('nodes=2: a worker per shard, and one that delivers the queue of a single process', () => {
    const { config, queue } = setup('2', ['seg', 'entries']);
    assert.deepEqual(shape(clusterPlan(config, queue)), [['0', 0, true], ['1', 1, true], ['queue', null, false]]);
  });

  it('nodes went down: the shards past N get workers that deliver them and take no mail', () => {
    const { config, queue } = setup('2', ['shard-0/seg', 'shard-1/seg', 'shard-3/msg']);
    assert.deepEqual(shape(clusterPlan(config, queue)), [['0', 0, true], ['1', 1, true], ['3', 3, false]]);
  });

  it('back to nodes=1 with shards left: worker 0 keeps queue/ itself, the shards are delivered', () => {
    const { config, queue } = setup('1', ['seg', 'shard-0/seg', 'shard-1/entries']);
    assert.deepEqual(shape(clusterPlan(config, queue)), [['queue', null, true], ['0', 0, false], ['1', 1, false]]);
  });

  it('refuses nodes outside 1 to 256', () => {
    assert.throws(() => clusterPlan(setup('0', []).config, tempDir('tern-queue-')), /nodes/);
    assert.throws(() => clusterPlan(setup('many', []).config, tempDir('tern-queue-')), /nodes/);
  });
});
