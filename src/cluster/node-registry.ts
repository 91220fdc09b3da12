import { hostname } from 'node:os';
import type { RedisLink } from './redis-link.js';

/** What a node says of itself at each heartbeat (`tern cluster status`). */
export interface NodeCounts {
  readonly queued: number;
  readonly in_flight: number;
  readonly sessions: number;
}

export interface NodeView extends Partial<NodeCounts> {
  readonly id: string;
  readonly alive: boolean;
  /** Milliseconds since its last heartbeat, by Redis's clock. */
  readonly heartbeat_age_ms: number;
  readonly host?: string;
  readonly pid?: number;
  readonly started?: string;
  readonly version?: string;
  readonly leases?: Record<string, number>;
}

export interface NodeRegistryOptions {
  readonly link: RedisLink;
  readonly intervalMs: number;
  readonly counts: () => NodeCounts;
  readonly leases: () => Record<string, number>;
  readonly version: string;
}

/** A node heard from within this many heartbeats is alive. */
export const ALIVE_BEATS = 3;
/** Nodes silent for this many heartbeats are dropped from the registry. */
const FORGET_BEATS = 10;
/** Nodes listed at most (a status is one answer, and a heartbeat's list is read each beat). */
const MAX_NODES = 1000;
/** A heartbeat's leases: destinations named at most (the busiest first). */
const MAX_LEASE_KEYS = 100;

/**
 * Records this node and reads which nodes are alive: KEYS[1] the registry (a sorted set of
 * node ids scored by their last heartbeat in Redis ms), KEYS[2] this node's record (JSON,
 * with a TTL). ARGV: node id, record, interval (ms). Returns the ids alive (heard from
 * within ALIVE_BEATS heartbeats).
 */
const HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iv = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', iv * ${FORGET_BEATS})
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - iv * ${FORGET_BEATS})
return redis.call('ZRANGEBYSCORE', KEYS[1], now - iv * ${ALIVE_BEATS}, '+inf', 'LIMIT', 0, ${MAX_NODES})`;

/**
 * The nodes of the cluster (issue #17): every heartbeat_interval each node records itself
 * in Redis, with its counts and leases, and reads back which nodes are alive. failure_mode
 * `share` splits each limit among the nodes last seen alive (this node's place in their
 * sorted ids); while Redis is away the last list seen holds.
 */
export class NodeRegistry {
  private aliveIds: string[];
  private timer?: NodeJS.Timeout;
  private readonly started = new Date().toISOString();

  constructor(private readonly options: NodeRegistryOptions) {
    this.aliveIds = [options.link.nodeId];
  }

  private get registryKey(): string {
    return this.options.link.key('{nodes}');
  }

  private recordKey(id: string): string {
    return this.options.link.key('{nodes}', 'node', id);
  }

  start(): void {
    // After the current job: the daemon's parts the counts come from are built by then.
    setImmediate(() => void this.beat());
    this.timer = setInterval(() => void this.beat(), this.options.intervalMs);
    this.timer.unref();
  }

  /** This node's place among the nodes alive, for its share of a limit. */
  share(): { nodes: number; index: number } {
    return { nodes: this.aliveIds.length, index: Math.max(0, this.aliveIds.indexOf(this.options.link.nodeId)) };
  }

  get alive(): readonly string[] {
    return this.aliveIds;
  }

  async beat(): Promise<void> {
    const { link } = this.options;
    const leases = Object.entries(this.options.leases())
      .sort((a, b) => b[1] - a[1])
      .slice(0, MAX_LEASE_KEYS);
    const record = JSON.stringify({ host: hostname(), pid: process.pid, started: this.started, version: this.options.version, ...this.options.counts(), leases: Object.fromEntries(leases) });
    const ids = await link.script('heartbeat', HEARTBEAT_LUA, [this.registryKey, this.recordKey(link.nodeId)], [link.nodeId, record, this.options.intervalMs]);
    if (!Array.isArray(ids)) return;
    const alive = new Set(ids.map(String));
    alive.add(link.nodeId);
    this.aliveIds = [...alive].sort();
  }

  /** Every node the registry knows, with its record; undefined when Redis does not answer. */
  async status(): Promise<NodeView[] | undefined> {
    const { link } = this.options;
    return link.call('cluster status', async (c) => {
      const [sec, usec] = await c.time();
      const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      const flat = await c.zrange(this.registryKey, '0', String(MAX_NODES - 1), 'WITHSCORES');
      const nodes: { id: string; at: number }[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) nodes.push({ id: flat[i], at: Number(flat[i + 1]) });
      nodes.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
      const records = nodes.length ? await c.mget(...nodes.map((n) => this.recordKey(n.id))) : [];
      return nodes.map(({ id, at }, i): NodeView => {
        let record: Omit<NodeView, 'id' | 'alive' | 'heartbeat_age_ms'> = {};
        try {
          record = records[i] ? (JSON.parse(records[i]!) as typeof record) : {};
        } catch {
          // A record that is not JSON says nothing more than the heartbeat's time.
        }
        const age = Math.max(0, now - at);
        return { id, alive: age <= ALIVE_BEATS * this.options.intervalMs, heartbeat_age_ms: age, ...record };
      });
    });
  }

  /** A node that stops cleanly leaves the registry at once: the others' shares grow without waiting. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const { link } = this.options;
    await link.call('leave', async (c) => {
      await c.zrem(this.registryKey, link.nodeId);
      await c.del(this.recordKey(link.nodeId));
    });
  }
}
