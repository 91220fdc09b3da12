import type { CliOptions } from './commands.js';
import { apiTarget, call } from './control-client.js';
import { span, table } from './format.js';

interface NodeView {
  id: string;
  alive: boolean;
  heartbeat_age_ms: number;
  queued?: number;
  in_flight?: number;
  sessions?: number;
  leases?: Record<string, number>;
}

interface ClusterView {
  enabled: boolean;
  node?: string;
  redis?: { up: boolean; kind: string; failure_mode: string };
  nodes?: NodeView[];
  errors?: { shard: string | number; error: string }[];
}

const USAGE = 'tern cluster status [--json]';

function leasesText(leases: Record<string, number> | undefined): string {
  const list = Object.entries(leases ?? {});
  return list.length === 0 ? '-' : list.map(([key, n]) => `${key}=${n}`).join(' ');
}

function clusterText(body: ClusterView): string {
  if (!body.enabled) return 'redis.ini is not enabled: this node shares no limits with other nodes\n';
  const redis = body.redis;
  const head = `node ${body.node ?? '?'}: Redis ${redis?.up ? 'up' : 'DOWN'} (${redis?.kind ?? '?'}), failure_mode=${redis?.failure_mode ?? '?'}${redis?.up ? '' : ' (nodes as last seen)'}\n`;
  const count = (n: number | undefined) => (n === undefined ? '-' : String(n));
  const rows = (body.nodes ?? []).map((n) => [
    n.id,
    n.alive ? 'yes' : 'no',
    n.heartbeat_age_ms < 0 ? '-' : `${span(n.heartbeat_age_ms / 1000)} ago`,
    count(n.queued),
    count(n.in_flight),
    count(n.sessions),
    leasesText(n.leases),
  ]);
  return head + table(['NODE', 'ALIVE', 'HEARTBEAT', 'QUEUED', 'IN FLIGHT', 'SESSIONS', 'LEASES'], rows);
}

/** `tern cluster status`: the nodes sharing limits through Redis, with their heartbeats, queues and leases. */
export async function clusterCommand(args: string[], o: CliOptions): Promise<number> {
  if (args.length !== 1 || args[0] !== 'status') {
    process.stderr.write(`usage: ${USAGE}\n`);
    return 2;
  }
  const body = (await call(apiTarget(o), 'GET', '/cluster')) as ClusterView;
  process.stdout.write(o.json ? JSON.stringify(body) + '\n' : clusterText(body));
  return 0;
}
