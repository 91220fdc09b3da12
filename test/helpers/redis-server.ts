import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { tempDir } from './temp-dir.js';
import { waitForPort } from './wait-for-port.js';

const run = promisify(execFile);

/** Debian's redis-server and redis-cli (.ci/run installs them). */
export const REDIS_SERVER = 'redis-server';
export const REDIS_CLI = 'redis-cli';

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port for a Redis server; with `bus`, port + 10000 (a Cluster node's bus) is free
 * too, so the port is below 55536.
 */
async function redisPort(bus: boolean): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if ((await portFree(port)) && (!bus || (await portFree(port + 10000)))) return port;
  }
  throw new Error('no free port for redis-server');
}

/** A real redis-server on 127.0.0.1, started for a test (never the system's 6379). */
export class RedisServer {
  private child?: ChildProcess;
  private paused = false;

  private constructor(
    readonly port: number,
    private readonly args: readonly string[],
    readonly dir: string,
  ) {}

  static async start(options: { cluster?: boolean; port?: number } = {}): Promise<RedisServer> {
    const port = options.port ?? (await redisPort(options.cluster ?? false));
    const dir = tempDir('tern-redis-');
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning', '--logfile', '',
      ...(options.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no'] : []),
    ];
    const server = new RedisServer(port, args, dir);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async launch(): Promise<void> {
    const child = spawn(REDIS_SERVER, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    this.child = child;
    await waitForPort('127.0.0.1', this.port, 'redis-server', 10_000, () => (child.exitCode !== null ? `exited (${child.exitCode}): ${stderr}` : undefined));
  }

  /** redis-cli against this server; its output, trimmed. */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(this.port), ...args]);
    return stdout.trim();
  }

  /** `INFO commandstats` as command → calls. */
  async commandCalls(): Promise<Map<string, number>> {
    const out = await this.cli('INFO', 'commandstats');
    const calls = new Map<string, number>();
    for (const m of out.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]));
    return calls;
  }

  /** SIGSTOP: the server holds its connections and answers nothing. */
  pause(): void {
    if (this.running && !this.paused) {
      this.child!.kill('SIGSTOP');
      this.paused = true;
    }
  }

  resume(): void {
    if (this.running && this.paused) {
      this.child!.kill('SIGCONT');
      this.paused = false;
    }
  }

  /** SIGKILL: gone, with everything it held (no persistence). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.resume();
    const child = this.child!;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  /** Starts again on the same port (empty, as a Redis without persistence restarts). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.resume();
    const child = this.child!;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

/** A Redis Cluster of three masters (no replicas) on 127.0.0.1, as `redis-cli --cluster create` builds it. */
export class RedisCluster {
  private constructor(readonly nodes: readonly RedisServer[]) {}

  static async start(): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < 3; i++) nodes.push(await RedisServer.start({ cluster: true }));
      await run(REDIS_CLI, ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
      const cluster = new RedisCluster(nodes);
      await cluster.waitOk(nodes);
      return cluster;
    } catch (err) {
      await Promise.all(nodes.map((n) => n.kill()));
      throw err;
    }
  }

  /** `cluster=` for redis.ini. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  /** Every given node says `cluster_state:ok` (all slots served). */
  async waitOk(nodes: readonly RedisServer[] = this.nodes.filter((n) => n.running), timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(nodes.map((n) => n.cli('CLUSTER', 'INFO').catch(() => '')));
      if (states.every((s) => /cluster_state:ok/.test(s))) return;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not ok within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The master serving `key`'s hash slot. */
  async masterOf(key: string): Promise<RedisServer> {
    const live = this.nodes.find((n) => n.running)!;
    const client = new Redis(live.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      const slot = Number(await client.cluster('KEYSLOT', key));
      const ranges = await client.cluster('SLOTS');
      const owner = ranges.find(([from, to]) => slot >= from && slot <= to);
      const node = this.nodes.find((n) => n.port === owner?.[2]?.[1]);
      if (!node) throw new Error(`no master serves slot ${slot}`);
      return node;
    } finally {
      client.disconnect();
    }
  }

  /** Sum of `INFO commandstats` calls over every live master. */
  async commandCalls(): Promise<Map<string, number>> {
    const total = new Map<string, number>();
    for (const n of this.nodes.filter((x) => x.running)) for (const [k, v] of await n.commandCalls()) total.set(k, (total.get(k) ?? 0) + v);
    return total;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}
