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
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../test/helpers/world.js';
import { RecordingMx } from '../test/helpers/recording-mx.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import type { TernProcess } from '../test/helpers/tern-process.js';
import { runLoad } from './load-generator.js';
import { cpuSeconds, processTree } from './systems.js';

/** The scenario's own addresses: apart from the test suite's and the other scenarios'. */
const HOSTS = { tls: '127.0.0.151', dead: '127.0.0.152', plain: '127.0.0.153' };
const SINK = '127.0.0.154';
const round = (x: number, digits = 1) => +x.toFixed(digits);

export interface ShapingOptions {
  readonly nodes: number;
  readonly rate: number;
  readonly rateSeconds: number;
  readonly burst?: number;
  readonly maxConnections: number;
  readonly connectionsMessages: number;
  readonly sinkDelayMs: number;
}

async function setUp(sinkOptions: { dataDelayMs?: number }): Promise<{ world: World; sink: RecordingMx }> {
  const world = await new World(HOSTS).start();
  const sink = new RecordingMx(SINK, world.port, sinkOptions);
  await sink.start();
  world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: SINK });
  return { world, sink };
}

const OUTBOUND = 'concurrency_max=64';

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

/**
 * Turns delivery on (outbound.ini without disabled=true, applied live): the whole backlog
 * waits on the limits from then on, with no ingest beside it on the CPU, so the sink sees
 * the shaping and not the load generator's share of two cores.
 */
function deliver(world: World, t: TernProcess): void {
  writeFileSync(join(t.configDir, 'outbound.ini'), world.configFiles({ outbound: OUTBOUND })['outbound.ini']);
}

/** Rate R/s to one destination for S seconds: every 1-s window at the sink, and the average. */
export async function shapingRate(o: ShapingOptions): Promise<Record<string, unknown>> {
  const { world, sink } = await setUp({});
  const queue = tempQueue();
  const burst = o.burst ?? Math.max(1, Math.floor(o.rate / 10));
  const t = await tern(world, o.nodes, `[sink.test]\nmax_message_rate=${o.rate}/s\nburst=${burst}\n`, queue);
  const pids = () => processTree(t.child.pid!);
  const messages = o.rate * o.rateSeconds;
  try {
    const injectS = await inject(t, messages);
    // Tern's CPU while it delivers (every process of it, with nodes=N), not while it ingests.
    const cpu0 = cpuSeconds(pids());
    deliver(world, t);
    await sink.waitForArrivals(messages, (o.rateSeconds * 2 + 120) * 1000);
    const cpu = cpuSeconds(pids()) - cpu0;
    const times = sink.arrivals.map((a) => a.at).sort((a, b) => a - b);
    const spanMs = times[times.length - 1] - times[0];
    // GCRA: `burst` at once, then one every 1/R s: the last arrives (N - burst) / R after the first.
    const average = ((messages - burst) * 1000) / spanMs;
    const windows = sink.windowCounts(1000, 100);
    const limit = o.rate + burst;
    return {
      scenario: 'shaping rate',
      nodes: o.nodes,
      rate_per_s: o.rate,
      burst,
      messages,
      inject_s: round(injectS, 2),
      span_s: round(spanMs / 1000, 2),
      average_per_s: round(average, 2),
      average_error_pct: round((average / o.rate - 1) * 100, 2),
      max_1s_window: Math.max(...windows),
      // Where it was, in seconds after the first arrival (the burst is at 0).
      max_window_at_s: round(windows.indexOf(Math.max(...windows)) / 10),
      window_limit: limit,
      windows_over_limit: windows.filter((w) => w > limit).length,
      windows: windows.length,
      sink_sessions: sink.sessions.length,
      tern_cpu_s: round(cpu, 2),
      ok: windows.every((w) => w <= limit) && Math.abs(average / o.rate - 1) <= 0.03,
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
  const { world, sink } = await setUp({ dataDelayMs: o.sinkDelayMs });
  const queue = tempQueue();
  const t = await tern(world, o.nodes, `[sink.test]\nmax_connections=${o.maxConnections}\n`, queue);
  const pids = () => processTree(t.child.pid!);
  try {
    const injectS = await inject(t, o.connectionsMessages);
    const cpu0 = cpuSeconds(pids());
    deliver(world, t);
    await sink.waitForArrivals(o.connectionsMessages, 600_000);
    const cpu = cpuSeconds(pids()) - cpu0;
    const times = sink.arrivals.map((a) => a.at).sort((a, b) => a - b);
    const [from, to] = [times[0], times[times.length - 1]];
    // Session time inside [first arrival, last arrival], against M sessions all that time.
    let open = 0;
    for (const s of sink.sessions) open += Math.max(0, Math.min(s.closedAt ?? to, to) - Math.max(s.openedAt, from));
    const use = open / (o.maxConnections * (to - from));
    const perSession = sink.sessions.map((s) => s.transactions);
    return {
      scenario: 'shaping connections',
      nodes: o.nodes,
      max_connections: o.maxConnections,
      messages: o.connectionsMessages,
      sink_delay_ms: o.sinkDelayMs,
      inject_s: round(injectS, 2),
      relay_s: round((to - from) / 1000, 2),
      msgs_per_s: round((o.connectionsMessages * 1000) / (to - from)),
      max_sessions_at_once: sink.maxConcurrent(),
      sessions: sink.sessions.length,
      max_transactions_per_session: Math.max(...perSession),
      slot_use_pct: round(use * 100, 1),
      tern_cpu_s: round(cpu, 2),
      ok: sink.maxConcurrent() <= o.maxConnections && use >= 0.9,
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
