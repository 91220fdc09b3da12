import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/tern-process.js';

describe('packaging', () => {
  it('contrib/tern.service passes systemd-analyze verify', () => {
    // .ci/run installs Debian's systemd when systemd-analyze is missing.
    const res = spawnSync('systemd-analyze', ['verify', join(REPO_ROOT, 'contrib/tern.service')], { encoding: 'utf8' });
    assert.equal(res.error, undefined, 'systemd-analyze must be installed');
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stderr.trim(), '', 'no warnings');
    const unit = readFileSync(join(REPO_ROOT, 'contrib/tern.service'), 'utf8');
    for (const line of ['ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'User=tern', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=true', 'ProtectSystem=strict', 'ReadWritePaths=/opt/tern/queue']) {
      assert.ok(unit.split('\n').includes(line), line);
    }
  });

  it('the Dockerfile builds in two stages and runs as a non-root user with a health check', () => {
    // No Docker engine runs here: this checks the instructions an operator relies on.
    const df = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    assert.equal(df.match(/^FROM node:20[^\s]*-slim/gm)?.length, 2, 'multi-stage on the official Node 20 slim image');
    assert.match(df, /npm prune --omit=dev/);
    assert.match(df, /^USER node$/m);
    assert.match(df, /^VOLUME \["\/opt\/tern\/config", "\/opt\/tern\/queue"\]$/m);
    assert.match(df, /^EXPOSE 25 587 2525$/m);
    assert.match(df, /^STOPSIGNAL SIGTERM$/m);
    assert.match(df, /^HEALTHCHECK .*\n.*\/health/m);
    assert.match(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'), /^node_modules$/m);
  });
});
