import { z } from 'zod';
import { ConfigError } from '../core/index.js';
import { parseHostPort } from './host-port.js';
import { bool, int, seconds } from './fields.js';

export const REDIS_FILE = 'redis.ini';

/**
 * What a node does with limits while Redis does not answer (issue #17):
 * - share: each node keeps its share of each limit, split among the nodes last seen alive;
 * - closed: no new sessions to limited destinations (their mail waits, unattempted);
 * - open: each node applies the whole limit on its own.
 */
export const failureModeSchema = z.enum(['share', 'closed', 'open']);
export type FailureMode = z.infer<typeof failureModeSchema>;

const hostList = z
  .string()
  .refine((v) => v.split(',').every((hp) => parseHostPort(hp.trim()) !== undefined), { message: 'expected a comma separated list of host:port' })
  .transform((v) => v.split(',').map((hp) => parseHostPort(hp.trim())!))
  .optional();

/** config/redis.ini `[main]`: the shared state of several nodes. */
export const redisMainSchema = z
  .object({
    enabled: bool(false),
    // One of: url (a standalone Redis, redis:// or rediss://), cluster (seed nodes of a
    // Redis Cluster), sentinels + name (a Sentinel-managed primary).
    url: z
      .string()
      .refine((v) => /^rediss?:\/\/[^\s]+$/.test(v), { message: 'expected redis://[user:password@]host:port[/db] or rediss://…' })
      .optional(),
    cluster: hostList,
    sentinels: hostList,
    name: z.string().min(1).max(200).optional(),
    // For cluster= and sentinels= (url carries its own).
    username: z.string().max(200).optional(),
    password: z.string().max(1000).optional(),
    // TLS to every Redis node of cluster= or sentinels= (url says rediss://).
    tls: bool(false),
    // Every key Tern writes starts with this, so that several Tern clusters can share a Redis.
    key_prefix: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{0,64}$/, 'expected up to 64 of A-Z a-z 0-9 : _ . -')
      .default('tern:'),
    // This node's name in Redis (heartbeats, leases, `tern cluster status`); default: the
    // host name, with the shard under nodes=N.
    node_id: z
      .string()
      .regex(/^[A-Za-z0-9:_./-]{1,128}$/, 'expected 1 to 128 of A-Z a-z 0-9 : _ . / -')
      .optional(),
    // A command not answered in this many milliseconds counts as Redis down: the node
    // answers from failure_mode until Redis answers again.
    command_timeout: int(500, 10, 10_000),
    connect_timeout: int(2000, 100, 60_000),
    failure_mode: failureModeSchema.default('share'),
    // A connection lease lives this long unless renewed (every third of it while the
    // session lives): a crashed node's slots are free within it.
    lease_ttl: seconds(30, 3, 600),
    // How often a node says it is alive; a node silent for 3 heartbeats is no longer
    // counted when limits are shared out (failure_mode=share).
    heartbeat_interval: seconds(2, 1, 60),
    // The database of sentinels= (url says /N; Redis Cluster has only 0).
    db: int(0, 0, 15),
  })
  .strict();

export type RedisSettings = z.infer<typeof redisMainSchema>;

/** Checks what the schema cannot: exactly one way to reach Redis when enabled. */
export function checkRedisSettings(settings: RedisSettings): RedisSettings {
  if (!settings.enabled) return settings;
  const ways = [settings.url, settings.cluster, settings.sentinels].filter((w) => w !== undefined).length;
  if (ways !== 1) throw new ConfigError(REDIS_FILE, 'url', '', 'enabled=true needs exactly one of url=, cluster= or sentinels= (with name=)');
  if (settings.sentinels && !settings.name) throw new ConfigError(REDIS_FILE, 'name', '', 'sentinels= needs name= (the primary Sentinel watches)');
  // A renewal or heartbeat that may take longer than the time between two of them would let
  // leases lapse and nodes look dead while Redis is merely slow.
  const renewMs = (settings.lease_ttl * 1000) / 3;
  if (settings.command_timeout >= renewMs) throw new ConfigError(REDIS_FILE, 'command_timeout', settings.command_timeout, `must be shorter than a third of lease_ttl (${Math.round(renewMs)} ms), how often leases are renewed`);
  if (settings.command_timeout >= settings.heartbeat_interval * 1000) throw new ConfigError(REDIS_FILE, 'command_timeout', settings.command_timeout, `must be shorter than heartbeat_interval (${settings.heartbeat_interval * 1000} ms)`);
  return settings;
}
