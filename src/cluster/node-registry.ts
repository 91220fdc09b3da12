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
  /** Counted alive until the first heartbeat answers (a worker that never reached Redis is not alone on its machine). */
  readonly peers?: readonly string[];
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
 * with a TTL), KEYS[3] the prefix of records. ARGV: node id, record, interval (ms).
 * Returns the ids alive (heard from within ALIVE_BEATS heartbeats), then their records in
 * the same order (what leases each holds: failure_mode=share counts them during an outage).
 */
const HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local iv = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', iv * ${FORGET_BEATS})
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - iv * ${FORGET_BEATS})
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - iv * ${ALIVE_BEATS}, '+inf', 'LIMIT', 0, ${MAX_NODES})
local others = {}
for _, id in ipairs(ids) do if id ~= ARGV[1] then others[#others + 1] = KEYS[3] .. id end end
local records = {}
if #others > 0 then records = redis.call('MGET', unpack(others)) end
return {ids, records}`;

/**
 * The nodes of the cluster (issue #17): every heartbeat_interval each node records itself
 * in Redis, with its counts and leases, and reads back which nodes are alive. failure_mode
 * `share` splits each limit among the nodes last seen alive (this node's place in their
 * sorted ids); while Redis is away the last list seen holds.
 */
export class NodeRegistry {
  private aliveIds: string[];
  /** The leases the other nodes alive held by their last heartbeats, and when this node read them (ms). */
  private othersLeases = new Map<string, number>();
  private othersAt = -Infinity;
  private timer?: NodeJS.Timeout;
  private readonly started = new Date().toISOString();

  constructor(private readonly options: NodeRegistryOptions) {
    this.aliveIds = [...new Set([options.link.nodeId, ...(options.peers ?? [])])].sort();
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

  /** Slots of `key` the other nodes held at their last heartbeats, while that is younger than `maxAgeMs`; 0 after. */
  othersHeld(key: string, maxAgeMs: number): number {
    return Date.now() - this.othersAt < maxAgeMs ? (this.othersLeases.get(key) ?? 0) : 0;
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
    const answer = await link.script('heartbeat', HEARTBEAT_LUA, [this.registryKey, this.recordKey(link.nodeId), this.recordKey('')], [link.nodeId, record, this.options.intervalMs]);
    if (!Array.isArray(answer) || !Array.isArray(answer[0])) return;
    const ids = (answer[0] as unknown[]).map(String);
    const others = new Map<string, number>();
    for (const raw of Array.isArray(answer[1]) ? (answer[1] as unknown[]) : []) {
      if (typeof raw !== 'string') continue;
      try {
        const held = (JSON.parse(raw) as { leases?: Record<string, unknown> }).leases ?? {};
        for (const [key, n] of Object.entries(held)) if (typeof n === 'number' && n > 0) others.set(key, (others.get(key) ?? 0) + n);
      } catch {
        // A record that is not JSON names no leases.
      }
    }
    this.othersLeases = others;
    this.othersAt = Date.now();
    const alive = new Set(ids);
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
