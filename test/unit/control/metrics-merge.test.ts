import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergeExpositions } from '../../../src/control/index.js';

const worker = (n: number) => `# HELP tern_messages_received_total Messages accepted.
# TYPE tern_messages_received_total counter
tern_messages_received_total ${n}
# HELP tern_queue_entries Queue entries by state.
# TYPE tern_queue_entries gauge
tern_queue_entries{state="deferred"} ${n * 2}
# HELP tern_delivery_attempt_seconds Attempts.
# TYPE tern_delivery_attempt_seconds histogram
tern_delivery_attempt_seconds_bucket{le="1"} ${n}
tern_delivery_attempt_seconds_bucket{le="+Inf"} ${n}
tern_delivery_attempt_seconds_sum 0.5
tern_delivery_attempt_seconds_count ${n}
`;

describe('one /metrics for nodes=N', () => {
  it('gives each family one HELP and TYPE, and every sample the shard it comes from', () => {
    const text = mergeExpositions([
      { shard: '0', text: worker(3) },
      { shard: '1', text: worker(5) },
    ]);
    assert.equal(text.match(/^# TYPE tern_messages_received_total counter$/gm)?.length, 1);
    assert.match(text, /^tern_messages_received_total\{shard="0"\} 3$/m);
    assert.match(text, /^tern_messages_received_total\{shard="1"\} 5$/m);
    assert.match(text, /^tern_queue_entries\{shard="1",state="deferred"\} 10$/m);
    assert.match(text, /^tern_delivery_attempt_seconds_sum\{shard="0"\} 0\.5$/m);
    // A family's samples follow its TYPE line, shard after shard.
    const lines = text.split('\n');
    const type = lines.indexOf('# TYPE tern_delivery_attempt_seconds histogram');
    assert.deepEqual(lines.slice(type + 1, type + 9).map((l) => /shard="(\d)"/.exec(l)?.[1]), ['0', '0', '0', '0', '1', '1', '1', '1']);
  });
});
