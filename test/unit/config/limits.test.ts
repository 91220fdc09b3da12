import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { checkConfig, defaultBurst, loadConfig, mxPattern, parseLimits } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('limits.ini', () => {
  it('reads [*], domain and [mx:] sections with rates in s, min and h', () => {
    const { sections } = parseLimits(
      '[*]\nmax_connections=20\n[orange.fr]\nmax_connections=2\nmax_message_rate=100/min        ; N/s, N/min, N/h\nmax_deliveries_per_connection=100\n[gmail.com]\nmax_message_rate=50/s\nburst=10\nscope=site\n[mx:*.mail.protection.outlook.com]\nmax_message_rate=3600/h\n',
    );
    assert.equal(sections.get('*')?.max_connections, 20);
    assert.deepEqual(sections.get('orange.fr')?.max_message_rate, { count: 100, perMs: 60_000 });
    assert.equal(sections.get('orange.fr')?.max_deliveries_per_connection, 100);
    assert.deepEqual(sections.get('gmail.com'), { max_message_rate: { count: 50, perMs: 1000 }, burst: 10, scope: 'site' });
    assert.deepEqual(sections.get('mx:*.mail.protection.outlook.com')?.max_message_rate, { count: 3600, perMs: 3_600_000 });
  });

  it('refuses unknown keys, bad values and keys outside a section, naming file, key and value', () => {
    const cases: [string, string, unknown][] = [
      ['[orange.fr]\nmax_conections=2\n', '[orange.fr] max_conections', '2'],
      ['[orange.fr]\nmax_message_rate=100/day\n', '[orange.fr] max_message_rate', '100/day'],
      ['[orange.fr]\nmax_connections=0\n', '[orange.fr] max_connections', '0'],
      ['[orange.fr]\nscope=planet\n', '[orange.fr] scope', 'planet'],
      ['max_connections=2\n', 'max_connections', '2'],
    ];
    for (const [text, key, value] of cases) {
      assert.throws(
        () => parseLimits(text),
        (err: unknown) => err instanceof ConfigError && err.file === 'limits.ini' && err.key === key && err.value === value,
        text,
      );
    }
  });

  it('defaults the burst to what the rate allows in 100 ms, at least 1', () => {
    assert.equal(defaultBurst({ count: 100, perMs: 1000 }), 10);
    assert.equal(defaultBurst({ count: 100, perMs: 60_000 }), 1);
  });

  it('matches MX host patterns label-wise, with or without a final dot', () => {
    const p = mxPattern('*.mail.protection.outlook.com');
    assert.ok(p.test('contoso-com.mail.protection.outlook.com'));
    assert.ok(p.test('contoso-com.mail.protection.outlook.com.'));
    assert.ok(!p.test('mail.protection.outlook.com.evil.test'));
  });

  it('is one of the config files: loaded with the rest, and its problems reported by tern config check', () => {
    const dir = writeConfig({ 'limits.ini': '[orange.fr]\nmax_connections=2\n' });
    assert.equal(loadConfig(dir).limits.sections.get('orange.fr')?.max_connections, 2);
    assert.ok(loadConfig(dir).files.includes('limits.ini'));
    const bad = writeConfig({ 'limits.ini': '[orange.fr]\nrate=2\n' });
    assert.deepEqual(checkConfig(bad).map((e) => [e.file, e.key]), [['limits.ini', '[orange.fr] rate']]);
  });
});
