import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir } from '../helpers/temp-dir.js';
import { freePort } from '../helpers/free-port.js';
import { REPO_ROOT, tempQueue, TernProcess, writeConfig } from '../helpers/tern-process.js';
import type { LogRecord } from '../helpers/tern-process.js';

/** The real CLI, as an operator runs it: from a directory of their choice, with their environment. */
function tern(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const env = { ...process.env, ...opts.env };
  for (const k of ['TERN_CONFIG', 'TERN_QUEUE', 'TERN_API', 'TERN_API_TOKEN']) if (!(opts.env && k in opts.env)) delete env[k];
  const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args], { encoding: 'utf8', timeout: 20000, cwd: opts.cwd ?? tempDir('tern-cwd-'), env });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

/** `tern start` with this environment, until its `tern listening` record (or its exit). */
async function startWithEnv(env: Record<string, string>): Promise<{ listening: LogRecord; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start'], { cwd: tempDir('tern-cwd-'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout! });
  const listening = await Promise.race([
    new Promise<LogRecord>((resolve) => lines.on('line', (l) => (JSON.parse(l) as LogRecord).msg === 'tern listening' && resolve(JSON.parse(l) as LogRecord))),
    exited.then(([code]) => {
      throw new Error(`tern start exited with ${code}`);
    }),
  ]);
  return {
    listening,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('the CLI finds its config: --config, TERN_CONFIG, ./config, the installation', () => {
  let daemon: TernProcess;
  let config: string;
  let apiPort: number;

  before(async () => {
    apiPort = await freePort();
    config = writeConfig({ 'smtp.ini': 'listen=127.0.0.1:0\n', 'http.ini': `listen=127.0.0.1:${apiPort}\n` });
    daemon = await new TernProcess(config, tempQueue()).start();
  });
  after(async () => {
    await daemon?.stop();
  });

  it('queue and domain commands reach the daemon from any directory with --config or TERN_CONFIG', () => {
    const byFlag = tern(['queue', 'ls', '--json', '--config', config]);
    assert.equal(byFlag.code, 0, byFlag.err);
    assert.equal(JSON.parse(byFlag.out).total, 0);
    const byEnv = tern(['domain', 'ls', '--json'], { env: { TERN_CONFIG: config } });
    assert.equal(byEnv.code, 0, byEnv.err);
    assert.deepEqual(JSON.parse(byEnv.out).suspended, []);
  });

  it('takes --config over TERN_CONFIG, and TERN_CONFIG over ./config', async () => {
    const elsewhere = writeConfig({ 'http.ini': `listen=127.0.0.1:${await freePort()}\n` });
    assert.equal(tern(['queue', 'ls', '--config', config], { env: { TERN_CONFIG: elsewhere } }).code, 0);
    const cwd = tempDir('tern-cwd-');
    writeConfig({ 'http.ini': `listen=127.0.0.1:${await freePort()}\n` }, join(cwd, 'config'));
    assert.equal(tern(['queue', 'ls'], { cwd, env: { TERN_CONFIG: config } }).code, 0);
    const local = tern(['queue', 'ls'], { cwd });
    assert.equal(local.code, 1, './config is read when nothing else is named; its admin API is not there');
    assert.match(local.err, /is the daemon running\?/);
  });

  it('a config directory that is not there exits 78 with one line naming it, for every command', () => {
    for (const args of [['start'], ['queue', 'ls'], ['domain', 'ls'], ['config', 'check'], ['config', 'show']]) {
      const byFlag = tern([...args, '--config', '/nonexistent/tern-config']);
      assert.equal(byFlag.code, 78, `${args.join(' ')}: ${byFlag.err}`);
      assert.equal(byFlag.err.trim().split('\n').length, 1, byFlag.err);
      assert.match(byFlag.err, /\/nonexistent\/tern-config.*--config/);
      const byEnv = tern(args, { env: { TERN_CONFIG: '/nonexistent/tern-env' } });
      assert.equal(byEnv.code, 78, `${args.join(' ')}: ${byEnv.err}`);
      assert.match(byEnv.err, /\/nonexistent\/tern-env.*TERN_CONFIG/);
    }
  });

  it('without --config, TERN_CONFIG or ./config, reads the config of the installation it runs from', () => {
    const res = tern(['config', 'check']);
    assert.equal(res.code, 0, res.err);
    assert.equal(res.out, `config ${join(REPO_ROOT, 'config')}: ok\n`);
  });

  it('tern start takes TERN_CONFIG and TERN_QUEUE', async () => {
    const dir = writeConfig({ 'smtp.ini': 'listen=127.0.0.1:0\n', 'http.ini': 'disabled=true\n' });
    const queue = join(tempQueue(), 'q');
    mkdirSync(queue);
    const started = await startWithEnv({ TERN_CONFIG: dir, TERN_QUEUE: queue });
    try {
      assert.equal(started.listening.config, dir);
      assert.equal(started.listening.queue, queue);
    } finally {
      await started.stop();
    }
  });
});
