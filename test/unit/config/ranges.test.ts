import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { checkConfig, loadConfig } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

/** Node's timers hold at most 2^31 - 1 ms: the longest whole number of seconds that fits. */
const TIMER_MAX = 2147483;

/** The sections of the numeric settings, by the file they come from. */
const FILES = { 'smtp.ini': 'smtp', 'outbound.ini': 'outbound', 'dns.ini': 'dns', 'dsn.ini': 'dsn' } as const;

function refused(file: string, body: string, key: string, value: string): void {
  assert.throws(
    () => loadConfig(writeConfig({ [file]: body })),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.code, 'TERN_ERR_CONFIG_INVALID');
      assert.equal(err.file, file);
      assert.equal(err.key, key);
      assert.equal(String(err.value), value);
      assert.ok(err.message.startsWith(`${file}: ${key}=${JSON.stringify(err.value)}: `), err.message);
      return true;
    },
    `${file}: ${key}=${value} must be refused`,
  );
}

const accepted = (file: string, body: string) => loadConfig(writeConfig({ [file]: body }));

describe('config ranges', () => {
  it('gives every numeric setting a ceiling: an absurd value is refused, naming file, key and value', () => {
    const defaults = loadConfig(writeConfig({}));
    let checked = 0;
    for (const [file, part] of Object.entries(FILES)) {
      for (const [key, value] of Object.entries(defaults[part])) {
        if (typeof value !== 'number') continue;
        refused(file, `${key}=1000000000000000\n`, key, '1000000000000000');
        checked++;
      }
    }
    assert.ok(checked >= 29, `only ${checked} numeric settings found`);
  });

  it('refuses 0 (and less than the floor) where it makes no sense', () => {
    const floors: [string, string, string][] = [
      ['smtp.ini', 'max_message_size', '1023'],
      ['smtp.ini', 'max_recipients', '0'],
      ['smtp.ini', 'max_received_headers', '0'],
      ['smtp.ini', 'max_line_length', '511'],
      ['smtp.ini', 'max_clients', '0'],
      ['smtp.ini', 'socket_timeout', '0'],
      ['outbound.ini', 'concurrency_max', '0'],
      ['outbound.ini', 'connect_timeout', '0'],
      ['outbound.ini', 'max_queue_lifetime', '0'],
      ['outbound.ini', 'greeting_timeout', '0s'],
      ['outbound.ini', 'mail_timeout', '0'],
      ['outbound.ini', 'rcpt_timeout', '0'],
      ['outbound.ini', 'data_init_timeout', '0'],
      ['outbound.ini', 'data_block_timeout', '0'],
      ['outbound.ini', 'data_done_timeout', '0m'],
      ['outbound.ini', 'max_deliveries_per_connection', '0'],
      ['outbound.ini', 'max_domain_connections', '0'],
      ['outbound.ini', 'destination_backoff_min', '0'],
      ['outbound.ini', 'destination_backoff_max', '0'],
      ['outbound.ini', 'rewrite_ttl', '0'],
      ['outbound.ini', 'remote_port', '0'],
      ['outbound.ini', 'mta_sts_port', '0'],
      ['dns.ini', 'timeout', '0'],
    ];
    for (const [file, key, value] of floors) refused(file, `${key}=${value}\n`, key, value);
  });

  it('accepts 0 where it means something (never, at once, no reuse, no cache)', () => {
    const o = accepted('outbound.ini', 'maxTempFailures=0\nshutdown_timeout=0\nidle_timeout=0\nno_tls_memory=0\n').outbound;
    assert.deepEqual([o.maxTempFailures, o.shutdown_timeout, o.idle_timeout, o.no_tls_memory], [0, 0, 0, 0]);
    assert.equal(accepted('dns.ini', 'cache_max_entries=0\n').dns.cache_max_entries, 0);
    const d = accepted('dsn.ini', 'delay_warning_time=0\nbounce_size_limit=0\n').dsn;
    assert.deepEqual([d.delay_warning_time, d.bounce_size_limit], [0, 0]);
  });

  it('refuses a timer setting past what a Node timer holds, at every timer key', () => {
    refused('outbound.ini', 'greeting_timeout=25d\n', 'greeting_timeout', '25d');
    assert.equal(accepted('outbound.ini', `greeting_timeout=${TIMER_MAX}\n`).outbound.greeting_timeout, TIMER_MAX);
    refused('outbound.ini', `greeting_timeout=${TIMER_MAX + 1}\n`, 'greeting_timeout', String(TIMER_MAX + 1));
    const timers: [string, string][] = [
      ['smtp.ini', 'socket_timeout'],
      ...['connect_timeout', 'greeting_timeout', 'mail_timeout', 'rcpt_timeout', 'data_init_timeout', 'data_block_timeout', 'data_done_timeout', 'shutdown_timeout', 'idle_timeout', 'destination_backoff_min', 'destination_backoff_max', 'rewrite_ttl'].map((k): [string, string] => ['outbound.ini', k]),
      ['dns.ini', 'timeout'],
    ];
    for (const [file, key] of timers) refused(file, `${key}=25d\n`, key, '25d');
  });

  it('bounds the queue lifetime, the retry schedule and the delay warning to a month', () => {
    assert.equal(accepted('outbound.ini', 'max_queue_lifetime=30d\n').outbound.max_queue_lifetime, 30 * 86400);
    refused('outbound.ini', 'max_queue_lifetime=31d\n', 'max_queue_lifetime', '31d');
    refused('dsn.ini', 'delay_warning_time=31d\n', 'delay_warning_time', '31d');
    refused('outbound.ini', 'no_tls_memory=31d\n', 'no_tls_memory', '31d');
    refused('outbound.ini', 'maxTempFailures=31\n', 'maxTempFailures', '31');
    assert.deepEqual(accepted('outbound.ini', 'temp_fail_intervals=1s, 30d\n').outbound.temp_fail_intervals, [1, 30 * 86400]);
    refused('outbound.ini', 'temp_fail_intervals=1m, 0s*2\n', 'temp_fail_intervals', '1m, 0s*2');
    refused('outbound.ini', 'temp_fail_intervals=1m, 31d\n', 'temp_fail_intervals', '1m, 31d');
    refused('outbound.ini', 'temp_fail_intervals=0.5s\n', 'temp_fail_intervals', '0.5s');
  });

  it('refuses a destination backoff whose minimum exceeds its maximum', () => {
    refused('outbound.ini', 'destination_backoff_min=2h\ndestination_backoff_max=1h\n', 'destination_backoff_min', '2h');
  });

  it('bounds the numbers of routes.ini, naming the section', () => {
    for (const [key, value] of [['port', '0'], ['port', '65536'], ['max_connections', '0'], ['max_connections', '1000000000'], ['max_deliveries_per_connection', '0']]) {
      refused('routes.ini', `[example.com]\nhost=192.0.2.1\n${key}=${value}\n`, `[example.com] ${key}`, value);
    }
  });

  it('reports every value out of range in one check', () => {
    const problems = checkConfig(writeConfig({ 'outbound.ini': 'greeting_timeout=25d\nconnect_timeout=0\n', 'smtp.ini': 'socket_timeout=30d\n' }));
    assert.deepEqual(problems.map((p) => `${p.file} ${p.key} ${String(p.value)}`).sort(), [
      'outbound.ini connect_timeout 0',
      'outbound.ini greeting_timeout 25d',
      'smtp.ini socket_timeout 30d',
    ]);
  });
});
