/**
 * Several Tern nodes sharing limits through Redis, measured at the sink (issue #17). See
 * bench/README.md, "Limits shared through Redis". No root needed; addresses 127.0.0.225–228.
 *
 *   npm run build && node dist/bench/redis-shaping.js [--only rate,connections,node-killed,redis-killed,redis-stopped,commands]
 *     [--redis standalone|cluster|both] [--cluster-figures rate,connections,redis-killed] [--nodes 3]
 *     [--rate 100] [--rate-seconds 60] [--burst B] [--max-connections 2] [--connections-messages 2000]
 *     [--sink-delay-ms 10] [--lease-ttl 5] [--kill-messages 900] [--fail-seconds 30] [--away-seconds 10]
 *     [--command-timeout 500] [--commands-messages 6000] [--commands-rate 1000] [--commands-connections 60] [--commands-sessions S] [--json]
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { RedisBackend } from './redis-backend.js';
import type { RedisKind } from './redis-backend.js';
import { nodeKilled, redisKilled } from './redis-failures.js';
import { redisCommands, redisConnections, redisRate } from './redis-limits.js';
import type { RedisBenchOptions } from './redis-scenario.js';
import { redisStopped } from './redis-stopped.js';

const FIGURES = {
  rate: redisRate,
  connections: redisConnections,
  'node-killed': nodeKilled,
  'redis-killed': redisKilled,
  'redis-stopped': redisStopped,
  commands: redisCommands,
} as const;
type Figure = keyof typeof FIGURES;

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: Object.keys(FIGURES).join(',') },
    redis: { type: 'string', default: 'both' },
    // On the Cluster, the figures issue #17 asks again (redis-killed kills the slot's master).
    'cluster-figures': { type: 'string', default: 'rate,connections,redis-killed' },
    nodes: { type: 'string', default: '3' },
    rate: { type: 'string', default: '100' },
    'rate-seconds': { type: 'string', default: '60' },
    burst: { type: 'string' },
    'max-connections': { type: 'string', default: '2' },
    'connections-messages': { type: 'string', default: '2000' },
    'sink-delay-ms': { type: 'string', default: '10' },
    'lease-ttl': { type: 'string', default: '5' },
    'kill-messages': { type: 'string', default: '900' },
    'fail-seconds': { type: 'string', default: '30' },
    'away-seconds': { type: 'string', default: '10' },
    'command-timeout': { type: 'string', default: '500' },
    'commands-messages': { type: 'string', default: '6000' },
    'commands-rate': { type: 'string', default: '1000' },
    'commands-connections': { type: 'string', default: '60' },
    'commands-sessions': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const o: RedisBenchOptions = {
  nodes: Number(values.nodes),
  rate: Number(values.rate),
  rateSeconds: Number(values['rate-seconds']),
  burst: values.burst === undefined ? undefined : Number(values.burst),
  maxConnections: Number(values['max-connections']),
  connectionsMessages: Number(values['connections-messages']),
  sinkDelayMs: Number(values['sink-delay-ms']),
  leaseTtl: Number(values['lease-ttl']),
  killMessages: Number(values['kill-messages']),
  failSeconds: Number(values['fail-seconds']),
  awaySeconds: Number(values['away-seconds']),
  commandTimeout: Number(values['command-timeout']),
  commandsMessages: Number(values['commands-messages']),
  commandsRate: Number(values['commands-rate']),
  commandsConnections: Number(values['commands-connections']),
  commandsSessions: values['commands-sessions'] === undefined ? undefined : Number(values['commands-sessions']),
};

const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
const only = list(values.only!);
for (const f of [...only, ...list(values['cluster-figures']!)]) if (!(f in FIGURES)) throw new Error(`unknown figure ${f}: one of ${Object.keys(FIGURES).join(', ')}`);
if (!['standalone', 'cluster', 'both'].includes(values.redis!)) throw new Error('--redis must be standalone, cluster or both');
const kinds: RedisKind[] = values.redis === 'both' ? ['standalone', 'cluster'] : [values.redis as RedisKind];
if (o.awaySeconds >= o.failSeconds) throw new Error('--away-seconds must be less than --fail-seconds');

const print = (r: Record<string, unknown>) => console.log(values.json ? JSON.stringify(r) : Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' '));
const results: Record<string, unknown>[] = [];
const started = Date.now();

for (const kind of kinds) {
  const figures = (kind === 'cluster' ? only.filter((f) => list(values['cluster-figures']!).includes(f)) : only) as Figure[];
  for (const figure of figures) {
    // A fresh Redis (or Cluster) per figure: no figure starts with another's keys or counts.
    let backend: RedisBackend | undefined;
    let r: Record<string, unknown>;
    try {
      backend = await RedisBackend.start(kind);
      r = await FIGURES[figure](backend, o);
    } catch (err) {
      r = { scenario: `redis ${figure}`, redis: kind, error: (err as Error).message.split('\n')[0], ok: false };
    } finally {
      await backend?.stop().catch(() => undefined);
    }
    print(r);
    results.push(r);
  }
}

console.log(
  JSON.stringify({
    bench: 'redis-shaping',
    at: new Date(started).toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    machine: { cores: cpus().length, load_at_end: loadavg().map((x) => +x.toFixed(2)) },
    options: o,
    ok: results.every((r) => r.ok === true),
    figures: results,
  }),
);
