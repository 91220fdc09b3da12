import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('host:port values in config: one reading for listen values and DNS servers', () => {
  it('reads host:port and [v6]:port in listen values, and refuses anything else', () => {
    assert.equal(loadConfig(writeConfig({ 'smtp.ini': 'listen=127.0.0.1:2525, [::1]:2526\n' })).smtp.listen, '127.0.0.1:2525, [::1]:2526');
    for (const bad of ['127.0.0.1', '::1:25', '127.0.0.1:', 'host:port', '[::1]']) {
      assert.throws(() => loadConfig(writeConfig({ 'smtp.ini': `listen=${bad}\n` })), /smtp\.ini: listen=/, bad);
      assert.throws(() => loadConfig(writeConfig({ 'http.ini': `listen=${bad}\n` })), /http\.ini: listen=/, bad);
    }
  });

  it('reads DNS servers as addresses with an optional port, 53 by default', () => {
    const cfg = loadConfig(writeConfig({ 'dns.ini': 'servers=192.0.2.1, 192.0.2.2:5353, ::1, [2001:db8::1]:5300\n' }));
    assert.deepEqual(cfg.dns.serverList, [
      { host: '192.0.2.1', port: 53 },
      { host: '192.0.2.2', port: 5353 },
      { host: '::1', port: 53 },
      { host: '2001:db8::1', port: 5300 },
    ]);
    for (const bad of ['dns.example', 'dns.example:53', '192.0.2.1:0', '192.0.2.1:70000']) {
      assert.throws(() => loadConfig(writeConfig({ 'dns.ini': `servers=${bad}\n` })), /dns\.ini: servers=/, bad);
    }
  });
});
