import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO_ROOT, tempQueue, writeConfig } from '../helpers/tern-process.js';

/** Starts the daemon with the given log.ini, returns its first lines of output, and stops it. */
async function firstLines(logIni: string, count: number): Promise<string[]> {
  const dir = writeConfig({ 'smtp.ini': '[main]\nlisten=127.0.0.1:0\n', 'http.ini': 'listen=127.0.0.1:0\n', 'log.ini': logIni });
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', dir, '--queue', tempQueue()], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  for await (const line of createInterface({ input: child.stdout! })) {
    lines.push(line);
    if (lines.length === count) break;
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return lines;
}

describe('config/log.ini', () => {
  it('writes logfmt lines with nested fields flattened', async () => {
    const lines = await firstLines('[main]\nformat=logfmt\n', 2);
    // The listener opens first; the queue is read back behind it.
    assert.match(lines[0], /addresses\.0\.host=127\.0\.0\.1 addresses\.0\.port=\d+ .*msg="tern listening"/);
    assert.match(lines[1], /^level=info time=\S+ service=tern entries=0 corrupt=0 .* msg="queue recovered"$/);
  });

  it('writes JSON by default, and honours the level (Haraka names accepted)', async () => {
    const lines = await firstLines('[main]\nlevel=notice\n', 1);
    assert.equal(JSON.parse(lines[0]).msg, 'tern listening');
    const bad = writeConfig({ 'log.ini': 'format=xml\n' });
    const { spawnSync } = await import('node:child_process');
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'config', 'check', '--config', bad], { encoding: 'utf8' });
    assert.equal(res.status, 78);
    assert.match(res.stdout, /^log\.ini: format="xml": /);
  });
});
