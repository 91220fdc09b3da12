import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('smtp.ini per-client limits and deadlines', () => {
  const smtp = (lines: string) => loadConfig(writeConfig({ 'smtp.ini': `[main]\n${lines}\n` })).smtp;

  it('has defaults an unknown host and an application server can both live with', () => {
    const s = smtp('');
    assert.deepEqual(
      [s.early_talker_delay, s.max_connections_per_client, s.max_connection_rate_per_client, s.relay_max_connections_per_client, s.relay_max_connection_rate_per_client, s.line_deadline, s.max_session_length],
      [0, 20, 60, 0, 0, 30, 3600],
    );
  });

  it('takes durations with units', () => {
    const s = smtp('early_talker_delay=2s\nline_deadline=1m\nmax_session_length=2h');
    assert.deepEqual([s.early_talker_delay, s.line_deadline, s.max_session_length], [2, 60, 7200]);
  });

  it('refuses values out of range, naming file and key', () => {
    for (const [key, value] of [
      ['early_talker_delay', '25d'],
      ['line_deadline', '0'],
      ['line_deadline', '2h'],
      ['max_session_length', '0'],
      ['max_session_length', '30d'],
      ['max_connections_per_client', '-1'],
      ['max_connections_per_client', '1000000'],
      ['max_connection_rate_per_client', 'many'],
      ['relay_max_connections_per_client', '100001'],
    ]) {
      assert.throws(() => smtp(`${key}=${value}`), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `${key}=${value}`);
        assert.equal(err.file, 'smtp.ini');
        assert.equal(err.key, key);
        return true;
      });
    }
  });
});
