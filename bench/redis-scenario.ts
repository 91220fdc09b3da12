import type { World } from '../test/helpers/world.js';
import type { RecordingMx } from '../test/helpers/recording-mx.js';
import type { LogRecord } from '../test/helpers/tern-process.js';
import type { RedisBackend } from './redis-backend.js';
import { TernNodes, recordTime } from './redis-nodes.js';
import type { NodesOptions } from './redis-nodes.js';
import { peak, round } from './sink-figures.js';
import { sinkWorld } from './sink-world.js';

/** The Redis bench's own addresses (issue #17's share: 127.0.0.225–231). */
export const HOSTS = { world: { tls: '127.0.0.225', dead: '127.0.0.226', plain: '127.0.0.227' }, sink: '127.0.0.228' };

export interface RedisBenchOptions {
  readonly nodes: number;
  readonly rate: number;
  readonly rateSeconds: number;
  readonly burst?: number;
  readonly maxConnections: number;
  readonly connectionsMessages: number;
  readonly sinkDelayMs: number;
  /** redis.ini lease_ttl of the node-killed figure, seconds. */
  readonly leaseTtl: number;
  readonly killMessages: number;
  /** Seconds of mail (at --rate) of the Redis killed and stopped figures. */
  readonly failSeconds: number;
  /** How long Redis is away (killed, or stopped) in those figures. */
  readonly awaySeconds: number;
  /** redis.ini command_timeout, ms. */
  readonly commandTimeout: number;
  readonly commandsMessages: number;
  readonly commandsRate: number;
  readonly commandsConnections: number;
  /** concurrency_max of each node in the commands figure (default 64). */
  readonly commandsSessions?: number;
}

export interface Setup {
  readonly world: World;
  readonly sink: RecordingMx;
  readonly nodes: TernNodes;
  readonly backend: RedisBackend;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** GCRA's burst: the one given, else Tern's default (a tenth of the rate). */
export const burstOf = (o: RedisBenchOptions) => o.burst ?? Math.max(1, Math.floor(o.rate / 10));

/** A fresh world, sink and N nodes on `backend` for one figure; all stopped and removed after. */
export async function withSetup<T>(backend: RedisBackend, sinkOptions: { dataDelayMs?: number }, nodes: NodesOptions, fn: (s: Setup) => Promise<T>): Promise<T> {
  const { world, sink } = await sinkWorld(HOSTS, sinkOptions);
  let set: TernNodes | undefined;
  try {
    set = await TernNodes.start(world, backend, nodes);
    return await fn({ world, sink, nodes: set, backend });
  } finally {
    await set?.stop();
    await sink.stop();
    await world.stop();
  }
}

/** Resolves once every id of `ids` arrived at the sink (or rejects after `timeoutMs`, saying how many did). */
export async function waitForIds(sink: RecordingMx, ids: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = new Set(sink.arrivals.map((a) => a.messageId));
    const missing = ids.filter((id) => !seen.has(id)).length;
    if (missing === 0) return;
    if (Date.now() > deadline) throw new Error(`${missing} of ${ids.length} acknowledged messages not at the sink within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** The node (EHLO name `nK.bench.test` → `nK`) of each sink session, by session id. */
export function sessionNodes(sink: RecordingMx): Map<number, string> {
  return new Map(sink.sessions.map((s) => [s.id, (s.helo ?? '?').split('.')[0]]));
}

/** Arrivals per node, as `n1:2000/n2:2000/n3:2000`. */
export function perNode(sink: RecordingMx, names: readonly string[]): string {
  const of = sessionNodes(sink);
  const counts = new Map<string, number>(names.map((n) => [n, 0]));
  for (const a of sink.arrivals) counts.set(of.get(a.session) ?? '?', (counts.get(of.get(a.session) ?? '?') ?? 0) + 1);
  return [...counts].map(([n, c]) => `${n}:${c}`).join('/');
}

/**
 * The first record of each node matching `pred` at or after `since`: ms after `since`, or
 * undefined when a node has none (e.g. `redis_up` after Redis came back).
 */
export function firstRecordAfter(nodes: TernNodes, since: number, pred: (r: LogRecord) => boolean): (number | undefined)[] {
  return nodes.nodes.map((_, i) => {
    const r = nodes.records(i).find((x) => pred(x) && recordTime(x) >= since);
    return r ? recordTime(r) - since : undefined;
  });
}

/** Delivery attempts charged: Delivery records past the first attempt, deferrals and bounces, over every node. */
export function attemptsCharged(nodes: TernNodes): { retried: number; deferred: number; bounced: number } {
  const all = nodes.allRecords();
  return {
    retried: all.filter((r) => r.type === 'Delivery' && Number(r.attempt) > 1).length,
    deferred: all.filter((r) => r.type === 'TransientFailure').length,
    bounced: all.filter((r) => r.type === 'Bounce').length,
  };
}

/** `[a, b, undefined]` as `a/b/-` (one value per node). */
export const slashed = (xs: readonly (number | undefined)[]) => xs.map((x) => (x === undefined ? '-' : String(x))).join('/');

/**
 * The most sessions open at once at the sink inside [from, to], when it first happened (in
 * seconds after `zero`, e.g. the kill) and whose they were (`n1+n1+n3`): where a limit broke.
 */
export function sessionPeak(sink: RecordingMx, zero: number, from = -Infinity, to = Infinity): { max: number; at_s: number | string; nodes: string } {
  const { max, at } = peak(sink.sessions, from, to);
  if (at === undefined) return { max, at_s: '-', nodes: '-' };
  const of = sessionNodes(sink);
  const open = sink.sessions.filter((s) => s.openedAt <= at && (s.closedAt === undefined || s.closedAt > at));
  return { max, at_s: round((at - zero) / 1000, 2), nodes: open.map((s) => of.get(s.id)).sort().join('+') };
}

/** `max_sessions<suffix>`, when it first happened (`_at_s`, s after the kill or stop) and whose sessions were open then (`_of`). */
export const peakFields = (suffix: string, p: ReturnType<typeof sessionPeak>) => ({
  [`max_sessions${suffix}`]: p.max,
  [`max_sessions${suffix}_at_s`]: p.at_s,
  [`max_sessions${suffix}_of`]: p.nodes,
});

/**
 * Sessions the sink saw opened in [from, to), per node (`n1:2/n3:1`, '-' for none), and the
 * most transactions any one of them carried: under failure_mode=share no node opens one for
 * a lease TTL after Redis stops answering, so during a shorter outage mail goes on only in
 * the sessions already open.
 */
export function sessionsOpened(sink: RecordingMx, from: number, to: number): { count: number; of: string } {
  const of = sessionNodes(sink);
  const counts = new Map<string, number>();
  for (const s of sink.sessions) if (s.openedAt >= from && s.openedAt < to) counts.set(of.get(s.id) ?? '?', (counts.get(of.get(s.id) ?? '?') ?? 0) + 1);
  const list = [...counts].sort(([a], [b]) => a.localeCompare(b));
  return { count: list.reduce((n, [, c]) => n + c, 0), of: list.length ? list.map(([n, c]) => `${n}:${c}`).join('/') : '-' };
}

/** Transactions of the sessions open at `at` (those Redis granted before it went away), as `n1:312/n3:298`. */
export function openAtTransactions(sink: RecordingMx, at: number): string {
  const of = sessionNodes(sink);
  const open = sink.sessions.filter((s) => s.openedAt <= at && (s.closedAt === undefined || s.closedAt > at));
  return open.length ? open.map((s) => `${of.get(s.id)}:${s.transactions}`).sort().join('/') : '-';
}
