/**
 * Traffic shaping, measured at the sink (issue #16): what one destination sees of Tern's
 * limits.ini. Run alone (`npm run build && node dist/bench/shaping.js [options]`) or from
 * bench/run.ts with `--only shaping-rate,shaping-connections`.
 *
 *   --nodes N               smtp.ini nodes=N (written only when N > 1)
 *   --rate R --rate-seconds S [--burst B]    R messages/s for S seconds to one destination
 *   --max-connections M --connections-messages N --sink-delay-ms D
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { rmSync } from 'node:fs';
import type { World } from '../test/helpers/world.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import type { TernProcess } from '../test/helpers/tern-process.js';
import { runLoad } from './load-generator.js';
import { connectionFigures, rateFigures, round } from './sink-figures.js';
import { OUTBOUND, releaseDelivery, sinkWorld } from './sink-world.js';
import { cpuSeconds, processTree } from './systems.js';

/** The scenario's own addresses: apart from the test suite's and the other scenarios'. */
const HOSTS = { world: { tls: '127.0.0.151', dead: '127.0.0.152', plain: '127.0.0.153' }, sink: '127.0.0.154' };

export interface ShapingOptions {
  readonly nodes: number;
  readonly rate: number;
  readonly rateSeconds: number;
  readonly burst?: number;
  readonly maxConnections: number;
  readonly connectionsMessages: number;
  readonly sinkDelayMs: number;
}

/** Tern with delivery disabled: the backlog is queued first, then released (deliver()). */
async function tern(world: World, nodes: number, limits: string, queue: string): Promise<TernProcess> {
  const t = await world.tern({ outbound: `${OUTBOUND}\ndisabled=true`, smtp: nodes > 1 ? `nodes=${nodes}` : '', files: { 'limits.ini': limits } }, queue);
  // The harness counts at the sink; the daemon's records are read and dropped.
  t.discardLogs();
  return t;
}

/** Injects `messages` one-recipient messages to sink.test as fast as 16 sessions go. */
async function inject(t: TernProcess, messages: number): Promise<number> {
  const load = await runLoad('127.0.0.1', t.port, { messages, concurrency: 16, size: 2048, recipients: 1, domains: 1 });
  return load.seconds;
}

/** Rate R/s to one destination for S seconds: every 1-s window at the sink, and the average. */
export async function shapingRate(o: ShapingOptions): Promise<Record<string, unknown>> {
  const { world, sink } = await sinkWorld(HOSTS);
  const queue = tempQueue();
  const burst = o.burst ?? Math.max(1, Math.floor(o.rate / 10));
  const t = await tern(world, o.nodes, `[sink.test]\nmax_message_rate=${o.rate}/s\nburst=${burst}\n`, queue);
  const pids = () => processTree(t.child.pid!);
  const messages = o.rate * o.rateSeconds;
  try {
    const injectS = await inject(t, messages);
    // Tern's CPU while it delivers (every process of it, with nodes=N), not while it ingests.
    const cpu0 = cpuSeconds(pids());
    releaseDelivery(world, t);
    await sink.waitForArrivals(messages, (o.rateSeconds * 2 + 120) * 1000);
    const cpu = cpuSeconds(pids()) - cpu0;
    const { ok, ...figures } = rateFigures(sink.arrivals.map((a) => a.at), o.rate, burst);
    return {
      scenario: 'shaping rate',
      nodes: o.nodes,
      rate_per_s: o.rate,
      burst,
      messages,
      inject_s: round(injectS, 2),
      ...figures,
      sink_sessions: sink.sessions.length,
      tern_cpu_s: round(cpu, 2),
      ok,
    };
  } finally {
    await t.stop();
    await sink.stop();
    await world.stop();
    rmSync(queue, { recursive: true, force: true });
  }
}

/** max_connections=M: the sessions the sink sees at once, and how much of the M it gets while mail waits. */
export async function shapingConnections(o: ShapingOptions): Promise<Record<string, unknown>> {
  const { world, sink } = await sinkWorld(HOSTS, { dataDelayMs: o.sinkDelayMs });
  const queue = tempQueue();
  const t = await tern(world, o.nodes, `[sink.test]\nmax_connections=${o.maxConnections}\n`, queue);
  const pids = () => processTree(t.child.pid!);
  try {
    const injectS = await inject(t, o.connectionsMessages);
    const cpu0 = cpuSeconds(pids());
    releaseDelivery(world, t);
    await sink.waitForArrivals(o.connectionsMessages, 600_000);
    const cpu = cpuSeconds(pids()) - cpu0;
    const { ok, ...figures } = connectionFigures(sink.arrivals.map((a) => a.at), sink.sessions, o.maxConnections);
    return {
      scenario: 'shaping connections',
      nodes: o.nodes,
      max_connections: o.maxConnections,
      messages: o.connectionsMessages,
      sink_delay_ms: o.sinkDelayMs,
      inject_s: round(injectS, 2),
      ...figures,
      tern_cpu_s: round(cpu, 2),
      ok,
    };
  } finally {
    await t.stop();
    await sink.stop();
    await world.stop();
    rmSync(queue, { recursive: true, force: true });
  }
}

export const SHAPING_OPTIONS = {
  nodes: { type: 'string', default: '1' },
  rate: { type: 'string', default: '100' },
  'rate-seconds': { type: 'string', default: '60' },
  burst: { type: 'string' },
  'max-connections': { type: 'string', default: '2' },
  'connections-messages': { type: 'string', default: '2000' },
  'sink-delay-ms': { type: 'string', default: '10' },
} as const;

export function shapingOptions(values: Record<string, string | boolean | undefined>): ShapingOptions {
  return {
    nodes: Number(values.nodes),
    rate: Number(values.rate),
    rateSeconds: Number(values['rate-seconds']),
    burst: values.burst === undefined ? undefined : Number(values.burst),
    maxConnections: Number(values['max-connections']),
    connectionsMessages: Number(values['connections-messages']),
    sinkDelayMs: Number(values['sink-delay-ms']),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { ...SHAPING_OPTIONS, only: { type: 'string', default: 'shaping-rate,shaping-connections' }, json: { type: 'boolean', default: false } } });
  const o = shapingOptions(values);
  const only = new Set(values.only!.split(','));
  const print = (r: Record<string, unknown>) => console.log(values.json ? JSON.stringify(r) : Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' '));
  if (only.has('shaping-rate')) print(await shapingRate(o));
  if (only.has('shaping-connections')) print(await shapingConnections(o));
}
