import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO_ROOT, TernProcess, tempQueue, writeConfig } from '../helpers/tern-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** An admin API address nobody else uses: `tern health` must find it in http.ini, not assume 127.0.0.1:8025. */
const ADMIN_HOST = '127.0.0.91';

async function freePort(host: string): Promise<number> {
  const probe = createServer();
  probe.listen(0, host);
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

function tern(args: string[], cwd = tempDir('tern-cwd-')) {
  return spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, TERN_API: '' } });
}

async function greeting(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const [data] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  return data.toString('utf8');
}

describe('tern health', () => {
  it('exits 0 while the daemon runs and 1 with one line once it is gone, from any directory', async () => {
    const adminPort = await freePort(ADMIN_HOST);
    const config = writeConfig({ 'smtp.ini': '[main]\nlisten=127.0.0.1:0\n', 'http.ini': `[main]\nlisten=${ADMIN_HOST}:${adminPort}\n` });
    const daemon = await new TernProcess(config, tempQueue()).start();
    try {
      const up = tern(['health', '--config', config]);
      assert.equal(up.status, 0, up.stderr);
      assert.match(up.stdout, /^ok: 0 queued, 0 in flight/);
      const json = tern(['health', '--json', '--config', config]);
      assert.equal(json.status, 0, json.stderr);
      assert.equal((JSON.parse(json.stdout) as { status: string }).status, 'ok');
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    const down = tern(['health', '--config', config]);
    assert.equal(down.status, 1);
    assert.equal(down.stdout, '');
    const lines = down.stderr.trim().split('\n');
    assert.equal(lines.length, 1, down.stderr);
    assert.ok(lines[0].startsWith('tern: unhealthy: '), down.stderr);
    assert.ok(lines[0].includes(`${ADMIN_HOST}:${adminPort}`), 'names the address it asked');
  });

  it('exits 1 and says so when http.ini disables the admin API it would ask', () => {
    const config = writeConfig({ 'http.ini': '[main]\ndisabled=true\n' });
    const res = tern(['health', '--config', config]);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /^tern: unhealthy: .*disabled=true.*\n$/);
  });
});

describe('readiness (systemd Type=notify)', () => {
  it('sends READY=1 through systemd-notify once the listener accepts connections', () => readiness(''));

  it('with nodes=2, the primary alone sends READY=1, once every worker listens', () => readiness('nodes=2\n'));
});

async function readiness(smtp: string): Promise<void> {
  {
    // A real AF_UNIX datagram socket in place of systemd's, read by Python (Node has none);
    // it closes the fd of systemd-notify's barrier as systemd does, or the barrier waits.
    const socketPath = join(tempDir('tern-notify-'), 'notify');
    const receiver = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const messages: string[] = [];
    const lines = createInterface({ input: receiver.stdout });
    const ready = new Promise<string>((resolve) => {
      lines.on('line', (line) => {
        const { message } = JSON.parse(line) as { message?: string };
        if (message === undefined) return messages.push('(bound)');
        messages.push(message);
        if (message.split('\n').includes('READY=1')) resolve(message);
      });
    });
    try {
      while (!messages.includes('(bound)')) await once(lines, 'line', { signal: AbortSignal.timeout(15000) });
      const config = writeConfig({ 'smtp.ini': `[main]\nlisten=127.0.0.1:0\n${smtp}`, 'http.ini': '[main]\ndisabled=true\n' });
      const daemon = new TernProcess(config, tempQueue());
      // TernProcess passes its own environment on to the daemon: set only for that spawn.
      process.env.NOTIFY_SOCKET = socketPath;
      const starting = daemon.start();
      delete process.env.NOTIFY_SOCKET;
      await starting;
      try {
        const message = await Promise.race([ready, once(receiver, 'exit', { signal: AbortSignal.timeout(15000) }).then(() => `receiver exited; got ${JSON.stringify(messages)}`)]);
        assert.ok(message.split('\n').includes(`STATUS=listening on 127.0.0.1:${daemon.port}`), message);
        assert.match(await greeting(daemon.port), /^220 /);
        assert.deepEqual(daemon.stderr, [], 'no readiness error');
        assert.equal(messages.filter((m) => m.split('\n').includes('READY=1')).length, 1, 'one READY=1: workers do not speak for the service');
      } finally {
        daemon.child.kill('SIGTERM');
        await daemon.exited;
      }
    } finally {
      receiver.kill();
    }
  }
}

const RECEIVER = `
import array, json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({}), flush=True)
s.settimeout(60)
while True:
    try:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    except socket.timeout:
        break
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps({'message': msg.decode()}), flush=True)
`;
