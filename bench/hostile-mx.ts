import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { World } from '../test/helpers/world.js';
import type { TernProcess } from '../test/helpers/tern-process.js';
import type { HostileKind, HostileLimits, HostileServerSpec, HostileStats } from './hostile-servers.js';
import { percentile } from './load-generator.js';
import { runPaced } from './paced-load.js';
import type { PacedResult } from './paced-load.js';
import type { Sink } from './sink.js';
import { Session } from './smtp-session.js';
import { eventLoopDelay, probe } from './loop-delay.js';

export interface HostileOptions {
  /** Length of each window (baseline, then hostile), in seconds of offered load. */
  readonly seconds: number;
  /** Normal messages a second offered to Tern meanwhile (all for the sink). */
  readonly rate: number;
  /** Messages queued for each hostile mail exchanger at the start of the hostile window. */
  readonly perServer: number;
  /** The hostile servers that get mail in the hostile window (all three are always up). */
  readonly kinds: readonly HostileKind[];
  readonly size: number;
}

/** The hostile mail exchangers, each behind a domain of its own in the bench zone. */
const HOSTILE: readonly (HostileServerSpec & { domain: string })[] = [
  { kind: 'lines', domain: 'lines.hostile.test', host: '127.0.0.131', port: 25 },
  { kind: 'flood', domain: 'flood.hostile.test', host: '127.0.0.132', port: 25 },
  { kind: 'drip', domain: 'drip.hostile.test', host: '127.0.0.133', port: 25 },
];
const LIMITS: HostileLimits = { floodMaxBytes: 1024 * 1024 * 1024, maxLifetimeMs: 600_000 };
/** Issue 12's targets for Tern's event-loop delay while it delivers to the hostile servers. */
const TARGET_P99_MS = 20;
const TARGET_MAX_MS = 100;
const HEALTH_EVERY_MS = 50;
const PACED_SESSIONS = 8;
/** How long Tern may take to stop (its event loop may still be busy with what a hostile server sent) before SIGKILL. */
const STOP_GRACE_MS = 120_000;

const round = (x: number, digits = 1) => +x.toFixed(digits);
const pct = (xs: readonly number[], p: number) => (xs.length ? percentile(xs, p) : 0);

/** The hostile servers, in a worker thread: see hostile-worker.ts. */
class HostileWorker {
  private readonly worker = new Worker(new URL('./hostile-worker.js', import.meta.url), { workerData: { specs: HOSTILE.map(({ kind, host, port }) => ({ kind, host, port })), limits: LIMITS } });

  async ready(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.worker.once('message', () => resolve());
      this.worker.once('error', reject);
    });
  }

  private answer(): Promise<HostileStats[]> {
    return new Promise((resolve) => this.worker.once('message', (m: { stats: HostileStats[] }) => resolve(m.stats)));
  }

  stats(): Promise<HostileStats[]> {
    const answer = this.answer();
    this.worker.postMessage('stats');
    return answer;
  }

  cut(): void {
    this.worker.postMessage('cut');
  }

  async stop(): Promise<HostileStats[]> {
    const answer = this.answer();
    this.worker.postMessage('stop');
    const stats = await answer;
    await this.worker.terminate();
    return stats;
  }
}

/** GET /health every 50 ms (after the previous answer), timing each answer. */
function pollHealth(api: string): { stop: () => Promise<{ latencies: number[]; errors: number }> } {
  const latencies: number[] = [];
  let errors = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      if ((await probe(`${api}/health`)) !== undefined) latencies.push(performance.now() - t0);
      else errors++;
      await new Promise((r) => setTimeout(r, HEALTH_EVERY_MS));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { latencies, errors };
    },
  };
}

/**
 * Queues `n` messages for each hostile domain of `kinds`, each on a connection of its own and all at
 * once, so that none waits behind a stall the others cause; one transaction each, so one
 * queue entry and one delivery attempt each. Resolves with how many were accepted.
 */
async function inject(tern: TernProcess, kinds: readonly HostileKind[], n: number, size: number): Promise<number> {
  const body = `From: bench@client.test\r\nSubject: hostile\r\n\r\n${'y'.repeat(76)}\r\n`.repeat(Math.max(1, Math.floor(size / 80)));
  const sent = await Promise.all(
    HOSTILE.filter((h) => kinds.includes(h.kind)).flatMap((h) =>
      Array.from({ length: n }, async (_, k) => {
        const s = await Session.open('127.0.0.1', tern.port);
        await s.expect(250, 'EHLO bench.client.test\r\n');
        await s.send('bench@client.test', [`victim${k}@${h.domain}`], body);
        await s.quit();
        return 1;
      }),
    ),
  );
  return sent.length;
}

interface WindowResult {
  readonly load: PacedResult;
  /** Seconds into the window when the hostile connections were cut, if the window lasted that long. */
  readonly cutAt?: number;
  /** The sink's count when the window opened. */
  readonly sink0: number;
  readonly delivered: number;
  readonly seconds: number;
  readonly loop: { p50_ms: number; p99_ms: number; max_ms: number };
  readonly health: { latencies: number[]; errors: number };
  readonly harnessLoopMaxMs: number;
}

/** One window of paced normal load, with (or without) hostile mail queued at its start. */
async function window(tern: TernProcess, sink: Sink, opts: HostileOptions, kinds: readonly HostileKind[], servers: HostileWorker): Promise<WindowResult> {
  // The harness's own loop: if it lagged, its /health timings would be its own fault.
  const harness = monitorEventLoopDelay({ resolution: 10 });
  await eventLoopDelay(tern); // resets Tern's histogram: the window starts here
  harness.enable();
  const health = pollHealth(tern.api);
  const sink0 = sink.count();
  const t0 = performance.now();
  // A client that never gives up on a flood would read it for as long as it lasts: the
  // hostile servers' connections are cut at twice the window, so that a run ends.
  let cutAt: number | undefined;
  const cut = setTimeout(() => {
    cutAt = (performance.now() - t0) / 1000;
    servers.cut();
  }, 2 * opts.seconds * 1000);
  // The hostile mail is queued while the normal load starts: the load is offered all along.
  const [load] = await Promise.all([
    runPaced('127.0.0.1', tern.port, { rate: opts.rate, seconds: opts.seconds, sessions: PACED_SESSIONS, size: opts.size, to: (i) => `rcpt${i % 50}.0@sink.test` }),
    inject(tern, kinds, opts.perServer, opts.size),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  clearTimeout(cut);
  const delivered = sink.count() - sink0;
  const loop = await eventLoopDelay(tern);
  const healthResult = await health.stop();
  harness.disable();
  return { load, sink0, delivered, seconds, cutAt, loop, health: healthResult, harnessLoopMaxMs: harness.max / 1e6 };
}

function figures(phase: string, w: WindowResult, opts: HostileOptions): Record<string, unknown> {
  return {
    scenario: 'hostile mx', phase, ...(phase === 'hostile' ? { servers: opts.kinds.join('+'), per_server: opts.perServer } : {}), seconds: round(w.seconds), offered_per_s: opts.rate,
    accepted: w.load.accepted, missed: w.load.missed, failed: w.load.failed,
    ack_p99_ms: round(pct(w.load.latencies, 99), 1), ack_max_ms: round(Math.max(0, ...w.load.latencies), 1),
    delivered: w.delivered, delivered_per_s: round(w.delivered / w.seconds),
    loop_p50_ms: w.loop.p50_ms, loop_p99_ms: w.loop.p99_ms, loop_max_ms: w.loop.max_ms,
    health_polls: w.health.latencies.length, health_errors: w.health.errors, health_p99_ms: round(pct(w.health.latencies, 99), 1), health_max_ms: round(Math.max(0, ...w.health.latencies), 1),
    harness_loop_max_ms: round(w.harnessLoopMaxMs, 1),
    ...(w.cutAt === undefined ? {} : { hostile_cut_at_s: round(w.cutAt) }),
  };
}

/** Tern's dispositions for each hostile domain so far, e.g. `TransientFailure:451=4`. */
function outcomes(tern: TernProcess, kind: HostileKind): string {
  const domain = HOSTILE.find((h) => h.kind === kind)!.domain;
  const counts = new Map<string, number>();
  for (const r of tern.records) {
    if (r.domain !== domain || r.type === 'Reception') continue;
    const key = `${r.type}:${(r.response as { code?: number } | undefined)?.code ?? '?'}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k}=${n}`).join(',') || 'none';
}

/** SIGTERM, then SIGKILL if the daemon is still busy after `graceMs` (said in a line of its own). */
async function stopWithin(tern: TernProcess, graceMs: number, print: (figures: Record<string, unknown>) => void): Promise<void> {
  const t0 = performance.now();
  const stopped = tern.stop();
  const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
  if ((await Promise.race([stopped, timer])) === 'late') {
    tern.signal('SIGKILL');
    await stopped;
    print({ scenario: 'hostile mx', phase: 'stop', note: `tern did not stop within ${graceMs / 1000} s of SIGTERM: killed` });
  } else print({ scenario: 'hostile mx', phase: 'stop', stop_s: round((performance.now() - t0) / 1000) });
}

/**
 * Hostile MX (issue 12): normal mail flows to the sink at a steady rate while Tern
 * delivers, at the same time, to a server answering EHLO with 100,000 lines, one sending
 * an endless `250-` flood and one dripping a byte a second. First a baseline window with
 * the same load and no hostile mail, then the hostile window. Each prints Tern's
 * event-loop delay over the window, the worst /health answer (polled every 50 ms), and
 * the normal mail accepted and delivered meanwhile.
 */
export async function hostileMx(world: World, sink: Sink, opts: HostileOptions, print: (figures: Record<string, unknown>) => void): Promise<void> {
  for (const h of HOSTILE) {
    world.dns.add(h.domain, { type: 'MX', preference: 10, exchange: `mx.${h.domain}` });
    world.dns.add(`mx.${h.domain}`, { type: 'A', data: h.host });
  }
  const servers = new HostileWorker();
  await servers.ready();
  // One attempt per hostile message within the window: the next would be in ten minutes.
  const tern = await world.tern({ outbound: 'concurrency_max=64\ntemp_fail_intervals=10m' });
  try {
    // Warm-up, not measured: the daemon's first seconds (compilation, first connections to the sink).
    const before = sink.count();
    const warmUp = await runPaced('127.0.0.1', tern.port, { rate: opts.rate, seconds: 3, sessions: PACED_SESSIONS, size: opts.size, to: (i) => `rcpt${i % 50}.0@sink.test` });
    await sink.waitFor(before + warmUp.accepted, 60_000);
    const baseline = await window(tern, sink, opts, [], servers);
    print(figures('baseline', baseline, opts));
    // Let the baseline's mail reach the sink before the hostile window counts deliveries.
    await sink.waitFor(baseline.sink0 + baseline.load.accepted, 60_000);
    const hostile = await window(tern, sink, opts, opts.kinds, servers);
    const stats = (await servers.stats()).filter((st) => opts.kinds.includes(st.kind));
    const r = figures('hostile', hostile, opts);
    print({
      ...r,
      target_loop_p99_ms: TARGET_P99_MS, target_loop_max_ms: TARGET_MAX_MS,
      meets_target: hostile.loop.p99_ms < TARGET_P99_MS && hostile.loop.max_ms < TARGET_MAX_MS,
      ...Object.fromEntries(stats.flatMap((s) => [
        [`${s.kind}_connections`, s.connections], [`${s.kind}_ehlos`, s.ehlos], [`${s.kind}_mb_sent`, round(s.bytesSent / 1048576, 1)],
        [`${s.kind}_messages`, s.messages], [`${s.kind}_open`, s.open], [`${s.kind}_outcomes`, outcomes(tern, s.kind)],
      ])),
    });
  } finally {
    // The servers first: their connections cut, Tern's attempts end and it can stop.
    await servers.stop();
    await stopWithin(tern, STOP_GRACE_MS, print);
  }
}
