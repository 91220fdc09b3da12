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

  it('contrib/tern.service reports readiness, finds node on PATH and is hardened to an exposure of 2.5 or less', () => {
    const unit = readFileSync(join(REPO_ROOT, 'contrib/tern.service'), 'utf8').split('\n');
    // `tern start` runs systemd-notify --ready (a child: NotifyAccess=all) once it listens.
    for (const line of ['Type=notify', 'NotifyAccess=all', 'UMask=0027', 'SystemCallFilter=@system-service', 'SystemCallErrorNumber=EPERM', 'ProtectProc=invisible', 'ProcSubset=pid', 'RemoveIPC=true']) {
      assert.ok(unit.includes(line), line);
    }
    assert.ok(!unit.some((l) => l.includes('/usr/bin/node')), 'no hard-coded /usr/bin/node');
    assert.ok(unit.includes('ExecStart=/usr/bin/env node /opt/tern/bin/tern start --config /opt/tern/config --queue /opt/tern/queue'));
    // --threshold counts tenths: 25 is the 2.5 that systemd-analyze prints.
    const res = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=25', join(REPO_ROOT, 'contrib/tern.service')], { encoding: 'utf8' });
    const overall = /Overall exposure level for tern\.service: ([\d.]+)/.exec(res.stdout)?.[1];
    assert.ok(overall, res.stdout + res.stderr);
    assert.ok(Number(overall) <= 2.5, `exposure ${overall}`);
    assert.equal(res.status, 0, `systemd-analyze security exits non-zero above 2.5 (${overall})`);
  });

  it('the Dockerfile builds in two stages and runs as a non-root user with a health check', () => {
    // scripts/docker-e2e.sh (run by .ci/run) builds and runs the image; this names what an operator relies on.
    const df = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    assert.equal(df.match(/^FROM node:20[^\s]*-slim/gm)?.length, 2, 'multi-stage on the official Node 20 slim image');
    assert.match(df, /npm prune --omit=dev/);
    assert.match(df, /^USER node$/m);
    assert.match(df, /^VOLUME \["\/opt\/tern\/config", "\/opt\/tern\/queue"\]$/m);
    // Only the port the image's smtp.ini (contrib/docker/smtp.ini) listens on.
    assert.match(df, /^EXPOSE 2525$/m);
    assert.match(df, /^COPY contrib\/docker\/smtp\.ini \.\/config\/smtp\.ini$/m);
    assert.match(readFileSync(join(REPO_ROOT, 'contrib/docker/smtp.ini'), 'utf8'), /^listen=0\.0\.0\.0:2525$/m);
    assert.match(df, /^STOPSIGNAL SIGTERM$/m);
    // The health check asks wherever the mounted config's http.ini says, not a fixed address.
    assert.match(df, /^HEALTHCHECK .*\n\s*CMD \["tern", "health", "--config", "\/opt\/tern\/config"\]$/m);
    assert.match(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'), /^node_modules$/m);
  });
});
