import { rmSync } from 'node:fs';
import type { World } from '../test/helpers/world.js';
import { TernProcess, tempQueue, writeConfig } from '../test/helpers/tern-process.js';
import type { LogRecord } from '../test/helpers/tern-process.js';
import type { RedisBackend } from './redis-backend.js';
import { Session } from './smtp-session.js';
import { OUTBOUND, releaseDelivery } from './sink-world.js';
import { cpuSeconds, processTree } from './systems.js';

export interface NodesOptions {
  readonly count: number;
  /** limits.ini, the same on every node. */
  readonly limits: string;
  /** redis.ini lines besides enabled, the way to Redis and node_id (lease_ttl=, failure_mode= …). */
  readonly redis: string;
  /** outbound.ini lines (default OUTBOUND: concurrency_max=64). */
  readonly outbound?: string;
}

/** One Tern node: its own config and queue directories, listen port, node_id and EHLO name. */
export interface TernNode {
  readonly name: string;
  readonly configDir: string;
  readonly queueDir: string;
  process: TernProcess;
  /** Records of the node's earlier runs (before a SIGKILL and restart). */
  readonly past: LogRecord[];
}

/** A record's time (pino's ISO `time`), epoch ms. */
export const recordTime = (r: LogRecord) => Date.parse(String(r.time));

const SESSIONS_PER_NODE = 5;
const SIZE = 2048;

/**
 * Several Tern daemons (separate processes, as on separate machines) sharing one Redis:
 * each with its own config directory, queue directory and listen port, its node_id
 * (`bench-n1` …) and EHLO name (`n1.bench.test` …, so that the sink tells their sessions
 * apart). They start with delivery disabled; `inject()` queues the backlog and
 * `release()` turns delivery on for all at once.
 */
export class TernNodes {
  private constructor(
    readonly nodes: TernNode[],
    private readonly world: World,
    private readonly outbound: string,
  ) {}

  static async start(world: World, backend: RedisBackend, o: NodesOptions): Promise<TernNodes> {
    const outbound = o.outbound ?? OUTBOUND;
    const nodes: TernNode[] = [];
    try {
      for (let i = 1; i <= o.count; i++) {
        const files = world.configFiles({
          outbound: `${outbound}\ndisabled=true`,
          files: {
            me: `n${i}.bench.test\n`,
            'limits.ini': o.limits,
            'redis.ini': `[main]\nenabled=true\n${backend.where}\nnode_id=bench-n${i}\n${o.redis}\n`,
          },
        });
        const configDir = writeConfig(files);
        const queueDir = tempQueue();
        nodes.push({ name: `n${i}`, configDir, queueDir, process: new TernProcess(configDir, queueDir), past: [] });
      }
      await Promise.all(nodes.map((n) => n.process.start()));
    } catch (err) {
      await Promise.all(nodes.map((n) => (n.process.child ? n.process.stop() : undefined)));
      throw err;
    }
    return new TernNodes(nodes, world, outbound);
  }

  /**
   * Queues `messages` one-recipient messages to sink.test, message k to node k mod N
   * (5 sessions per node), each with its own Message-ID `<tag.k@bench.test>`. Resolves
   * with the Message-IDs Tern acknowledged with 250, and the seconds it took.
   */
  async inject(messages: number, tag: string): Promise<{ acked: string[]; seconds: number }> {
    const t0 = performance.now();
    const acked: string[] = [];
    const filler = `${'x'.repeat(76)}\r\n`.repeat(Math.floor(SIZE / 78));
    await Promise.all(
      this.nodes.map(async (node, i) => {
        const mine = Array.from({ length: Math.ceil((messages - i) / this.nodes.length) }, (_, j) => i + j * this.nodes.length);
        let next = 0;
        await Promise.all(
          Array.from({ length: SESSIONS_PER_NODE }, async () => {
            const s = await Session.open('127.0.0.1', node.process.port);
            await s.expect(250, 'EHLO bench.client.test\r\n');
            while (next < mine.length) {
              const k = mine[next++];
              const id = `<${tag}.${k}@bench.test>`;
              const body = `From: bench@client.test\r\nTo: rcpt${k % 50}@sink.test\r\nSubject: redis bench ${k}\r\nMessage-ID: ${id}\r\n\r\n${filler}`;
              await s.send('bench@client.test', [`rcpt${k % 50}@sink.test`], body);
              acked.push(id);
            }
            await s.quit();
          }),
        );
      }),
    );
    return { acked, seconds: (performance.now() - t0) / 1000 };
  }

  /** Delivery on, on every node (outbound.ini rewritten; each daemon applies it live). */
  release(): void {
    for (const n of this.nodes) releaseDelivery(this.world, n.process, this.outbound);
  }

  /** From now on each node's records are read and dropped (a bench at 1,000 msg/s). */
  discardLogs(): void {
    for (const n of this.nodes) n.process.discardLogs();
  }

  /** SIGKILL: the node dies holding whatever it held (leases, sessions, entries in flight). */
  async kill(i: number): Promise<void> {
    const n = this.nodes[i];
    n.process.signal('SIGKILL');
    await n.process.exited;
  }

  /** Starts a killed node again on its own queue and config. */
  async restart(i: number): Promise<void> {
    const n = this.nodes[i];
    n.past.push(...n.process.records);
    n.process = await new TernProcess(n.configDir, n.queueDir).start();
  }

  /** Every record of node i, from all its runs. */
  records(i: number): LogRecord[] {
    return [...this.nodes[i].past, ...this.nodes[i].process.records];
  }

  allRecords(): LogRecord[] {
    return this.nodes.flatMap((_, i) => this.records(i));
  }

  /** CPU seconds of every node's processes so far. */
  cpu(): number {
    return this.nodes.reduce((sum, n) => sum + (n.process.child.exitCode === null && n.process.child.signalCode === null ? cpuSeconds(processTree(n.process.child.pid!)) : 0), 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process.stop()));
    for (const n of this.nodes) {
      rmSync(n.queueDir, { recursive: true, force: true });
      rmSync(n.configDir, { recursive: true, force: true });
    }
  }
}
