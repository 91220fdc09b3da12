import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { shardOfDir, shardOfId } from '../../../src/spool/index.js';
import { MessageIds } from '../../../src/spool/message-ids.js';

describe('queue shards in ids (nodes=N)', () => {
  it('reads the shard back from a worker\'s message and entry ids, and none from a single process\'s', () => {
    const sharded = new MessageIds('S7').next();
    assert.match(sharded, /^[A-Z0-9]+S7$/, 'letters and digits only, as the queue files expect');
    assert.equal(shardOfId(sharded), 7);
    assert.equal(shardOfId(`${sharded}.2`), 7);
    assert.equal(shardOfId(new MessageIds('S12').next() + '.1'), 12);
    for (let i = 0; i < 2000; i++) assert.equal(shardOfId(new MessageIds().next()), undefined);
  });

  it('names shard directories shard-K', () => {
    assert.equal(shardOfDir('shard-3'), 3);
    assert.equal(shardOfDir('shard-x'), undefined);
    assert.equal(shardOfDir('seg'), undefined);
  });
});
