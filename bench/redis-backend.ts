import { RedisCluster, RedisServer } from '../test/helpers/redis-server.js';

export type RedisKind = 'standalone' | 'cluster';

/**
 * The Redis the nodes share, standalone or a 3-master Redis Cluster (the test suite's real
 * redis-server helpers, on free ports of 127.0.0.1): what redis.ini says to reach it, its
 * command counts, and the server a failure scenario kills or stops — the standalone
 * server, or the Cluster master serving the destination's hash slot.
 */
export class RedisBackend {
  private constructor(
    readonly kind: RedisKind,
    private readonly standalone?: RedisServer,
    private readonly cluster?: RedisCluster,
  ) {}

  static async start(kind: RedisKind): Promise<RedisBackend> {
    return kind === 'cluster' ? new RedisBackend(kind, undefined, await RedisCluster.start()) : new RedisBackend(kind, await RedisServer.start());
  }

  /** redis.ini's way to Redis (url= or cluster=). */
  get where(): string {
    return this.cluster ? `cluster=${this.cluster.seeds}` : `url=${this.standalone!.url}`;
  }

  /**
   * The server holding `destination`'s keys: every key of a destination is
   * `<prefix>{<destination>}:…`, so its hash tag alone names the slot.
   */
  async serverOf(destination: string): Promise<RedisServer> {
    return this.cluster ? this.cluster.masterOf(`{${destination}}`) : this.standalone!;
  }

  /** Servers `commandsByName()` asks (each such INFO is counted by the next one). */
  get servers(): number {
    return this.cluster ? this.cluster.nodes.filter((n) => n.running).length : 1;
  }

  /** Commands by name, summed: where the calls went. */
  async commandsByName(): Promise<Map<string, number>> {
    return this.cluster ? this.cluster.commandCalls() : this.standalone!.commandCalls();
  }

  /** After a killed server was started again: a Cluster serves all its slots again. */
  async settled(): Promise<void> {
    if (this.cluster) await this.cluster.waitOk();
  }

  async stop(): Promise<void> {
    await (this.cluster ? this.cluster.stop() : this.standalone!.stop());
  }
}
