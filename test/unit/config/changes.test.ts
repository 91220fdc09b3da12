import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configChanges, loadConfig } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('configChanges', () => {
  it('names a removed file and each key that went back to its default', () => {
    const dir = writeConfig({ 'outbound.ini': 'disabled=true\nmax_queue_lifetime=2d\n', 'dns.ini': 'timeout=3\n' });
    const before = loadConfig(dir);
    rmSync(join(dir, 'outbound.ini'));
    const changes = configChanges(before, loadConfig(dir));
    assert.deepEqual(changes, [
      {
        file: 'outbound.ini',
        removed: true,
        added: false,
        keys: [
          { key: 'disabled', was: true, now: false },
          { key: 'max_queue_lifetime', was: 2 * 86400, now: 5 * 86400 },
        ],
      },
    ]);
  });

  it('lists changed keys of files still there, and never shows a secret', () => {
    const dir = writeConfig({ 'http.ini': 'token=0123456789abcdef0123\n', 'routes.ini': '[relay.test]\nhost=192.0.2.9\nauth_user=u\nauth_pass=old-password\n' });
    const before = loadConfig(dir);
    writeFileSync(join(dir, 'http.ini'), 'token=fedcba9876543210fedc\n');
    writeFileSync(join(dir, 'routes.ini'), '[relay.test]\nhost=192.0.2.9\nauth_user=u\nauth_pass=new-password\n');
    const changes = configChanges(before, loadConfig(dir));
    assert.deepEqual(changes.map((c) => [c.file, c.removed, c.keys]), [
      ['http.ini', false, [{ key: 'token', was: '(secret)', now: '(secret)' }]],
      ['routes.ini', false, [{ key: '[relay.test].auth_pass', was: '(secret)', now: '(secret)' }]],
    ]);
    assert.ok(!JSON.stringify(changes).includes('password'));
  });

  it('finds nothing when nothing changed', () => {
    const dir = writeConfig({ 'outbound.ini': 'disabled=true\n' });
    assert.deepEqual(configChanges(loadConfig(dir), loadConfig(dir)), []);
  });
});
