import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { freePort } from '../helpers/free-port.js';
import { REPO_ROOT, tempQueue, writeConfig } from '../helpers/tern-process.js';

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

/** Processes (other than this one) whose environment carries `mark`: whatever `npm start` left running. */
function marked(mark: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (Number(pid) !== process.pid && readFileSync(`/proc/${pid}/environ`, 'utf8').includes(mark)) pids.push(Number(pid));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

/** Polls until `done` holds, or gives up after a bound far above a clean shutdown. */
async function until(done: () => Promise<boolean> | boolean): Promise<boolean> {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (await done()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return done();
}

describe('npm start: the README\'s command leaves nothing behind when npm goes', () => {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGKILL'] as const) {
    it(`${signal} to npm's process stops the daemon and frees both ports`, { timeout: 120000 }, async () => {
      const [smtpPort, apiPort] = [await freePort(), await freePort()];
      const config = writeConfig({ 'smtp.ini': `listen=127.0.0.1:${smtpPort}\n`, 'http.ini': `listen=127.0.0.1:${apiPort}\n` });
      const mark = `TERN_NPM_START_TEST=${randomUUID()}`;
      const [key, value] = mark.split('=');
      // As a terminal or a supervisor runs it: npm is the process they know and signal.
      const npm = spawn('npm', ['start', '--', '--config', config, '--queue', tempQueue()], {
        cwd: REPO_ROOT,
        env: { ...process.env, [key]: value },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const npmExited = once(npm, 'exit');
      // The daemon keeps writing to the pipe npm handed it, after npm is gone.
      const lines: string[] = [];
      const up = await new Promise<boolean>((resolve) => {
        createInterface({ input: npm.stdout! }).on('line', (line) => {
          lines.push(line);
          if (line.includes('"msg":"tern listening"')) resolve(true);
        });
        void npmExited.then(() => resolve(false));
      });
      assert.ok(up, 'npm start brought the daemon up');
      assert.ok((await listening(smtpPort)) && (await listening(apiPort)));

      npm.kill(signal);
      await npmExited;
      assert.ok(await until(() => marked(mark).length === 0), `left running: ${marked(mark).join(', ')}`);
      assert.equal(await listening(smtpPort), false, 'the SMTP port is free');
      assert.equal(await listening(apiPort), false, 'the admin port is free');
      assert.ok(await until(() => lines.some((l) => l.includes('"msg":"tern stopped; queue intact"'))), 'the daemon stopped cleanly, as on SIGTERM');
    });
  }
});
