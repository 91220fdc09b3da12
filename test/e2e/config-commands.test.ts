import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, tempQueue, TernProcess, writeConfig } from '../helpers/tern-process.js';

function tern(...args: string[]) {
  const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args], { encoding: 'utf8', timeout: 20000 });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

/** `tern start` on a config it must refuse: its exit code and stderr. */
function start(dir: string) {
  return tern('start', '--config', dir, '--queue', tempQueue());
}

describe('tern config check reads what tern start reads', () => {
  const refused: [string, Record<string, string>, RegExp][] = [
    ['a plugins line naming no module', { plugins: 'no-such-plugin\n' }, /^plugins: line 1="no-such-plugin": no module at /m],
    ['a plugin whose init fails', { plugins: '', 'failing.mjs': "export default { name: 'failing', init() { throw new Error('no database'); } };\n" }, /^plugins: line 1=".*failing\.mjs": init failed: no database/m],
    ['a listener key and certificate that do not load', { 'tls_key.pem': 'not a key\n', 'tls_cert.pem': 'not a certificate\n' }, /^tls_key\.pem: \(file\)="": /m],
    ['a tls.ini CA file that holds no certificate', { 'tls.ini': '[outbound]\nca=ca.pem\n', 'ca.pem': 'garbage\n' }, /^tls\.ini: outbound\.ca="ca\.pem": not a PEM certificate/m],
  ];
  for (const [what, files, problem] of refused) {
    it(`${what}: check and start both exit 78, naming it`, () => {
      const dir = writeConfig(files);
      // The plugin module sits in the config directory; plugins are named by absolute path.
      if ('failing.mjs' in files) writeConfig({ plugins: `${join(dir, 'failing.mjs')}\n` }, dir);
      const check = tern('config', 'check', '--config', dir);
      assert.equal(check.code, 78, check.out + check.err);
      assert.match(check.out, problem);
      const started = start(dir);
      assert.equal(started.code, 78, started.err);
      assert.match(started.err.replace(/^tern: configuration error: /, ''), problem);
    });
  }

  it('check collects a plugin problem together with the config files\' problems', () => {
    const check = tern('config', 'check', '--config', writeConfig({ plugins: 'no-such-plugin\n', 'smtp.ini': 'max_recipients=0\n' }));
    assert.equal(check.code, 78);
    const lines = check.out.trim().split('\n');
    assert.equal(lines.length, 2, check.out);
    assert.match(lines[0], /^smtp\.ini: max_recipients="0": /);
    assert.match(lines[1], /^plugins: line 1=/);
  });
});

describe('files that Haraka reads and Tern does not', () => {
  const haraka = { databytes: '1000000\n', host_list: 'example.com\n', 'smtp.yaml': 'main:\n  listen: 0.0.0.0:25\n', 'karma.ini': '[main]\n' };

  it('config check and config show warn about each, naming Tern\'s equivalent, and still pass', () => {
    const dir = writeConfig(haraka);
    for (const args of [['config', 'check'], ['config', 'show', '-n']]) {
      const res = tern(...args, '--config', dir);
      assert.equal(res.code, 0, res.err);
      const warnings = res.err.trim().split('\n');
      assert.equal(warnings.length, 4, res.err);
      assert.match(res.err, /^tern: warning: databytes: .*\(Tern: smtp\.ini max_message_size\)$/m);
      assert.match(res.err, /^tern: warning: host_list: Haraka's file; Tern does not read it$/m);
      assert.match(res.err, /^tern: warning: karma\.ini: /m);
      assert.match(res.err, /^tern: warning: smtp\.yaml: .*\(Tern: smtp\.ini\)$/m);
    }
  });

  it('a Haraka plugin list fails the check like the start, with the Tern setting to use instead', () => {
    const dir = writeConfig({ plugins: 'tls\n' });
    const check = tern('config', 'check', '--config', dir);
    assert.equal(check.code, 78);
    assert.match(check.err, /^tern: warning: plugins: line 1: "tls" is a Haraka plugin.*\(Tern: tls_key\.pem and tls_cert\.pem\)$/m);
  });

  it('tern start logs one warning record per file', async () => {
    const daemon = await new TernProcess(writeConfig({ ...haraka, 'smtp.ini': 'listen=127.0.0.1:0\n', 'http.ini': 'disabled=true\n' }), tempQueue()).start();
    try {
      const warned = daemon.records.filter((r) => r.msg === 'config file not read by Tern');
      assert.deepEqual(warned.map((r) => r.file).sort(), ['databytes', 'host_list', 'karma.ini', 'smtp.yaml']);
      assert.equal(warned.find((r) => r.file === 'databytes')?.equivalent, 'smtp.ini max_message_size');
      assert.ok(warned.every((r) => r.level === 'warn'));
    } finally {
      await daemon.stop();
    }
  });
});

describe('tern config show', () => {
  it('prints every setting with its default, one file: key = value line each', () => {
    const res = tern('config', 'show', '--config', writeConfig({}));
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /^smtp\.ini: listen = 127\.0\.0\.1:2525$/m);
    assert.match(res.out, /^smtp\.ini: max_recipients = 1000$/m);
    assert.match(res.out, /^outbound\.ini: max_queue_lifetime = 432000$/m);
  });

  it('-n prints only what differs from the defaults, and never a secret', () => {
    const dir = writeConfig({ 'smtp.ini': 'max_recipients=5\nmax_message_size=25M\n', 'http.ini': 'token=0123456789abcdef-secret\n', 'routes.ini': '[example.net]\nhost=10.0.0.1\n' });
    const res = tern('config', 'show', '-n', '--config', dir);
    assert.equal(res.code, 0, res.err);
    const lines = res.out.trim().split('\n');
    assert.deepEqual(lines.slice(0, 2), ['smtp.ini: max_recipients = 5', 'http.ini: token = (secret)']);
    // A route is not a default: its section is shown whole.
    assert.ok(lines.slice(2).every((l) => l.startsWith('routes.ini: [example.net].')), res.out);
    assert.ok(lines.includes('routes.ini: [example.net].host = 10.0.0.1'), res.out);
    const json = JSON.parse(tern('config', 'show', '-n', '--json', '--config', dir).out);
    assert.deepEqual(json['smtp.ini'], { max_recipients: 5 });
  });

  it('a broken config stops it with the problem and exit 78, as tern start', () => {
    const res = tern('config', 'show', '--config', writeConfig({ 'smtp.ini': 'max_recipients=0\n' }));
    assert.equal(res.code, 78);
    assert.match(res.err, /smtp\.ini: max_recipients="0"/);
  });
});
