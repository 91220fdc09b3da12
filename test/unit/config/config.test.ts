import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { loadConfig, parseTempFailIntervals } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('temp_fail_intervals', () => {
  it("follows Haraka's grammar", () => {
    assert.deepEqual(parseTempFailIntervals('1m, 5m*2, 1h*3'), [60, 300, 300, 3600, 3600, 3600]);
    assert.deepEqual(parseTempFailIntervals('30s,1d'), [30, 86400]);
    assert.deepEqual(parseTempFailIntervals('none'), []);
    assert.equal(parseTempFailIntervals('5x'), undefined);
    assert.equal(parseTempFailIntervals('1m*'), undefined);
    assert.equal(parseTempFailIntervals('1m*0'), undefined);
  });
});

describe('loadConfig', () => {
  it('fills in the defaults for an empty directory', () => {
    const c = loadConfig(writeConfig({}));
    assert.equal(c.smtp.listen, '127.0.0.1:2525');
    assert.equal(c.outbound.concurrency_max, 10000);
    assert.equal(c.outbound.maxTempFailures, 13);
    assert.equal(c.outbound.max_queue_lifetime, 5 * 86400);
    assert.equal(c.outbound.received_header, 'Tern outbound');
    assert.equal(c.outbound.temp_fail_intervals, undefined);
    assert.deepEqual(c.relayAllow, ['127.0.0.0/8', '::1/128']);
    assert.ok(Object.isFrozen(c.outbound));
  });

  it('reads Haraka-style keys at the top level or under [main]', () => {
    const c = loadConfig(writeConfig({ 'outbound.ini': '[main]\nconcurrency_max=5\nenable_tls=false\ntemp_fail_intervals=1m*2\n' }));
    assert.equal(c.outbound.concurrency_max, 5);
    assert.equal(c.outbound.enable_tls, false);
    assert.deepEqual(c.outbound.temp_fail_intervals, [60, 60]);
  });

  const fails = (files: Record<string, string>, file: string, key: string) => {
    assert.throws(() => loadConfig(writeConfig(files)), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'TERN_ERR_CONFIG_INVALID');
      assert.equal(err.file, file);
      assert.equal(err.key, key);
      return true;
    });
  };

  it('names file, key and value of a bad setting', () => {
    fails({ 'outbound.ini': 'concurrency_max=0\n' }, 'outbound.ini', 'concurrency_max');
    fails({ 'outbound.ini': 'inet_prefer=v5\n' }, 'outbound.ini', 'inet_prefer');
    fails({ 'outbound.ini': 'max_queue_lifetime=forever\n' }, 'outbound.ini', 'max_queue_lifetime');
    fails({ 'smtp.ini': '[main]\nlisten=localhost\n' }, 'smtp.ini', 'listen');
    fails({ 'smtp.ini': '[main]\nmax_message_size=huge\n' }, 'smtp.ini', 'max_message_size');
    fails({ 'dns.ini': '[main]\nservers=not-an-ip\n' }, 'dns.ini', 'servers');
    fails({ 'tls.ini': '[outbound]\nminVersion=SSLv3\n' }, 'tls.ini', 'outbound.minVersion');
    fails({ relay_acl_allow: '127.0.0.1\n10.0.0.0/33\n' }, 'relay_acl_allow', 'line 2');
    fails({ auth_users: 'bob:plaintext\n' }, 'auth_users', 'line 1');
  });

  it('refuses unknown keys and sections', () => {
    fails({ 'outbound.ini': 'maxTempFailure=3\n' }, 'outbound.ini', 'maxTempFailure');
    fails({ 'outbound.ini': '[extra]\na=1\n' }, 'outbound.ini', '[extra]');
  });

  it('requires the listener key and certificate together', () => {
    fails({ 'tls_key.pem': 'x' }, 'tls_cert.pem', '(file)');
  });
});
