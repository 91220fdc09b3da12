import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('smtp.ini error and AUTH limits', () => {
  it('has defaults after Postfix and Dovecot', () => {
    const { smtp } = loadConfig(writeConfig({}));
    assert.deepEqual(
      [smtp.error_sleep_time, smtp.soft_error_limit, smtp.hard_error_limit, smtp.auth_failure_delay, smtp.auth_failure_limit],
      [1, 10, 20, 2, 3],
    );
    assert.deepEqual([smtp.auth_client_failure_limit, smtp.auth_client_failure_window, smtp.auth_client_lockout], [10, 600, 600]);
  });

  it('takes durations with units, fractions of a second included', () => {
    const { smtp } = loadConfig(writeConfig({ 'smtp.ini': '[main]\nauth_failure_delay=0.2\nauth_client_lockout=1h\nerror_sleep_time=0\n' }));
    assert.equal(smtp.auth_failure_delay, 0.2);
    assert.equal(smtp.auth_client_lockout, 3600);
    assert.equal(smtp.error_sleep_time, 0);
  });

  it('refuses values out of range, naming file, key and value', () => {
    for (const [line, key] of [
      ['error_sleep_time=2m', 'error_sleep_time'],
      ['auth_failure_delay=25d', 'auth_failure_delay'],
      ['auth_client_failure_window=0', 'auth_client_failure_window'],
      ['auth_client_lockout=2d', 'auth_client_lockout'],
      ['hard_error_limit=0', 'hard_error_limit'],
      ['soft_error_limit=1001', 'soft_error_limit'],
      ['auth_failure_limit=0', 'auth_failure_limit'],
      ['auth_client_failure_limit=lots', 'auth_client_failure_limit'],
    ]) {
      assert.throws(
        () => loadConfig(writeConfig({ 'smtp.ini': `[main]\n${line}\n` })),
        (err: unknown) => err instanceof ConfigError && err.code === 'TERN_ERR_CONFIG_INVALID' && err.file === 'smtp.ini' && err.key === key && String(err.value) === line.split('=')[1],
        line,
      );
    }
  });
});
