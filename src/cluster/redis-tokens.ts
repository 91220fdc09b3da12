import { randomUUID } from 'node:crypto';
import type { MessageRate, TokenAnswer } from './coordinator.js';
import type { RedisLink } from './redis-link.js';
import { GIVE_BACK_LUA, GRANT_LUA, rateKey } from './redis-scripts.js';

/** The demand a chunk is sized to: the tokens handed out in the last this many ms. */
const DEMAND_MS = 200;
/** Tokens are reserved at most this far ahead of their time (µs): a node's chunk spans about one demand spell. */
const HORIZON_US = 200_000;
/**
 * A node whose demand is high reserves this far ahead instead (µs), so that a busy
 * destination costs a node a few calls a second. Tokens are reserved at their due times, so
 * a longer horizon does not bunch messages; what is not used goes back.
 */
const BUSY_HORIZON_US = 1_000_000;
/** Tokens handed out in the last DEMAND_MS from which a node counts as busy. */
const BUSY_DEMAND = 20;
/**
 * A chunk's tokens span at most this much of the destination's time (µs), by line. A chunk
 * is a run of consecutive tokens, so while one node hands out its run the others wait for
 * theirs: a node that held a second of a 1,000/s destination would have to deliver at
 * 1,000/s alone (more than one node of a shared 2-core machine does: bench, 527 msg/s),
 * and the wire turns it could not use in time were lost. Short runs of wire turns
 * interleave the nodes' transactions; admission tokens may be late (ADMISSION_LATE_MS), so
 * their runs can be longer, for fewer calls.
 */
const MAX_SPAN_US: Record<TokenLine, number> = { admission: 250_000, wire: 100_000 };

/**
 * Tokens due but not used for this long go back to Redis: a node that stopped sending to a
 * destination leaves its time to the others.
 */
export const HOLD_MS = 250;
/**
 * Lateness tolerated before a wire turn (the last gate before a transaction starts) is
 * dropped, at least: a step (1 ms at 1,000/s, 10 ms at 100/s) is finer than a busy event
 * loop's timers, and dropping at one step lost what the loop's jitter made late (bench: 420
 * of 1,000 msg/s; 91 of 100/s). A bunch is then at most this long's worth of turns (5 at
 * 100/s), which the wire's half burst leaves room for.
 */
const LATE_MS = 50;
/**
 * Admission tokens (what lets an attempt start) are kept this long past their time: the
 * wire turns pace the transactions those attempts start, so a late admission token bunches
 * nothing at the remote server, while a dropped one is a message that never goes (each
 * lost token lowers the average rate: bench, 93.9 of 100/s when they were dropped at 50 ms).
 */
const ADMISSION_LATE_MS = 1000;
/** Chunks kept at most for this many destinations; past it, the oldest goes. */
const MAX_KEYS = 10_000;

interface Chunk {
  /** Tokens reserved in Redis and not yet handed out; the first is due at `due`, each next one a step later. */
  tokens: number;
  due: number;
  /** The step (ms) between tokens, and the step (µs, as the script knows it) they were taken at. */
  stepMs: number;
  step: number;
  /** The last time a token was taken or handed out (the node's clock, ms). */
  at: number;
  /** Tokens handed out in the current and the previous DEMAND_MS/2 spell. */
  now: number;
  before: number;
  spell: number;
  /** When the chunk was granted (the node's clock, ms). */
  granted: number;
  /** Tokens not used (putBack, or dropped because their time passed): given back with the next call. */
  returned: number;
  /** Where the TAT ended after this node's last reservation (Redis µs, as the script wrote it): a give-back only counts while it still ends there. */
  end?: string;
  /** How late (ms) a token may be handed out before it is dropped. */
  lateMs: number;
  /** Redis said no token is due before this (ms): no call until then. */
  retryAt?: number;
  /** A call to Redis in progress: callers of the same key wait for it rather than call too. */
  asking?: Promise<void>;
}

/** µs per token, rounded so that the script compares it to the stored one exactly. */
export function stepOf(rate: MessageRate): number {
  return Math.round(((rate.perMs * 1000) / rate.count) * 1e6) / 1e6;
}

/**
 * What a line of tokens gates: `admission`, an attempt's start (the shaper); `wire`, a
 * transaction's start (the wire pacer, the last gate before the remote server).
 */
export type TokenLine = 'admission' | 'wire';

/**
 * Message tokens of the cluster's GCRA, taken from Redis in chunks: the shaper asks for one
 * token per message, and a call to Redis per message would make Redis the bottleneck of a
 * busy destination. A node reserves what it used in the last DEMAND_MS at once (at least
 * what is asked), each token at the time GCRA lets it go, and hands them out at those
 * times; what it did not use within HOLD_MS of its time goes back. `undefined` answers mean
 * Redis did not answer: the caller falls back to failure_mode.
 */
export class TokenChunks {
  private readonly chunks = new Map<string, Chunk>();

  constructor(
    private readonly link: RedisLink,
    private readonly now: () => number,
  ) {}

  async take(key: string, rate: MessageRate, wanted: number, line: TokenLine): Promise<TokenAnswer | undefined> {
    const step = stepOf(rate);
    const lateMs = line === 'admission' ? ADMISSION_LATE_MS : LATE_MS;
    const span = Math.ceil(MAX_SPAN_US[line] / step);
    let chunk = this.chunk(key, step, lateMs);
    // One call per key at a time: the others wait for its chunk.
    while (chunk.asking) {
      await chunk.asking;
      chunk = this.chunk(key, step, lateMs);
    }
    const now = this.now();
    const local = this.handOut(chunk, wanted, now, step);
    if (local) return local;
    if (chunk.retryAt !== undefined && chunk.retryAt > now) return { granted: 0, retryAt: chunk.retryAt };
    const burst = Math.max(1, rate.burst);
    const recent = chunk.now + chunk.before;
    const horizon = recent >= BUSY_DEMAND ? BUSY_HORIZON_US : HORIZON_US;
    const demand = Math.min(burst + Math.ceil(horizon / step), Math.max(wanted, Math.min(span, Math.ceil((recent * horizon) / (DEMAND_MS * 1000)))));
    const back = chunk.tokens + chunk.returned;
    chunk.tokens = 0;
    chunk.returned = 0;
    let answer: unknown;
    let done!: () => void;
    chunk.asking = new Promise((resolve) => (done = resolve));
    try {
      answer = await this.link.script('grant', GRANT_LUA, [rateKey(this.link, key)], [randomUUID(), this.link.nodeId, step.toFixed(6), burst, demand, horizon, back, chunk.end ?? '']);
    } finally {
      chunk.asking = undefined;
      done();
    }
    const parsed = grantOf(answer);
    if (!parsed) return undefined;
    const at = this.now();
    const [granted, firstUs, end] = parsed;
    // Nothing granted: the TAT ends at others' reservations, and a give-back must not move it.
    chunk.end = granted > 0 ? end : undefined;
    if (granted === 0) {
      chunk.retryAt = at + Math.ceil(firstUs / 1000);
      return { granted: 0, retryAt: chunk.retryAt };
    }
    Object.assign(chunk, { retryAt: undefined, tokens: granted, granted: at, due: at + firstUs / 1000, step, stepMs: step / 1000, at });
    return this.handOut(chunk, wanted, at, step) ?? { granted: 0, retryAt: Math.ceil(chunk.due) };
  }

  /** Tokens taken but not used (a message that did not go) are held for the next, or given back soon. */
  putBack(key: string, count: number): void {
    const chunk = this.chunks.get(key);
    if (!chunk || count <= 0) return;
    // Their times have passed: handed out again now they would bunch with the chunk's own.
    // They go back to Redis with the next call (a grant or the sweep), which moves the TAT
    // back only while it still ends at this node's reservation.
    chunk.returned += count;
  }

  /** Gives back tokens due but unused for HOLD_MS (one call per such key); `all`: every token (close). */
  async sweep(all = false): Promise<void> {
    const now = this.now();
    const calls: Promise<unknown>[] = [];
    for (const [key, chunk] of this.chunks) {
      if (chunk.asking) continue;
      // Tokens whose time is still ahead are kept: the node asks for them when they are due.
      if (chunk.tokens + chunk.returned > 0 && (all || now - Math.max(chunk.at, chunk.tokens > 0 ? chunk.due : 0) >= HOLD_MS)) {
        this.drop(chunk, now);
        const back = chunk.tokens + chunk.returned;
        chunk.tokens = 0;
        chunk.returned = 0;
        // The script gives them back only if no node reserved after this one (chunk.end).
        if (back > 0 && chunk.end) calls.push(this.link.script('give_back', GIVE_BACK_LUA, [rateKey(this.link, key)], [randomUUID(), this.link.nodeId, back, chunk.end]));
      }
      // A key unused for a while carries nothing worth keeping.
      if (chunk.tokens + chunk.returned === 0 && now - chunk.at > 10 * HOLD_MS && (chunk.retryAt === undefined || chunk.retryAt <= now)) this.chunks.delete(key);
    }
    await Promise.all(calls);
  }

  /** Redis came back, or went: what was held is forgotten (Redis may have restarted empty). */
  forget(): void {
    this.chunks.clear();
  }

  private chunk(key: string, step: number, lateMs: number): Chunk {
    let chunk = this.chunks.get(key);
    if (!chunk) {
      if (this.chunks.size >= MAX_KEYS) this.chunks.delete(this.chunks.keys().next().value!);
      const now = this.now();
      chunk = { tokens: 0, returned: 0, granted: now, due: now, stepMs: step / 1000, step, at: now, now: 0, before: 0, spell: now, lateMs };
      this.chunks.set(key, chunk);
    }
    return chunk;
  }

  /** Drops the tokens whose time passed more than their line allows (a step at least): they are not handed out late, in a bunch. */
  private drop(chunk: Chunk, now: number): void {
    if (chunk.tokens <= 0 || chunk.stepMs <= 0) return;
    // A token whose time passed more than a step (or its line's lateness, the timer's grain
    // at the wire) ago is not handed out: handing out every overdue token at once would
    // bunch messages at the remote server (a node that trickles would send them in a burst
    // above the rate).
    const cutoff = now - Math.max(chunk.stepMs, chunk.lateMs);
    // Tokens due when they were granted (the burst) count from the grant: GCRA lets them go at once.
    if (cutoff <= chunk.granted || cutoff <= chunk.due) return;
    const dropped = Math.min(chunk.tokens, Math.ceil((cutoff - chunk.due) / chunk.stepMs - 1e-9));
    chunk.tokens -= dropped;
    chunk.due += dropped * chunk.stepMs;
    // Not used, so not spent: they go back with the next call (the script never moves the TAT below now).
    chunk.returned += dropped;
  }

  /** Up to `wanted` of the chunk's tokens that are due; undefined when none is (or they are of an older rate). */
  private handOut(chunk: Chunk, wanted: number, now: number, step: number): TokenAnswer | undefined {
    if (chunk.step !== step) {
      // limits.ini changed the rate: tokens of the old one go back with the next call.
      chunk.step = step;
      chunk.retryAt = undefined;
      chunk.due = now;
      return undefined;
    }
    this.drop(chunk, now);
    if (chunk.tokens <= 0) return undefined;
    if (chunk.due > now) return { granted: 0, retryAt: Math.ceil(chunk.due) };
    const dueNow = Math.min(chunk.tokens, Math.floor((now - chunk.due) / chunk.stepMs + 1e-9) + 1);
    const granted = Math.min(wanted, dueNow);
    chunk.tokens -= granted;
    chunk.due += granted * chunk.stepMs;
    chunk.at = now;
    const half = DEMAND_MS / 2;
    if (now - chunk.spell >= half) {
      chunk.before = now - chunk.spell >= 2 * half ? 0 : chunk.now;
      chunk.now = 0;
      chunk.spell = now;
    }
    chunk.now += granted;
    return { granted };
  }
}

/** A grant's answer {granted, first, end}, or undefined when Redis did not answer (or answered nonsense). */
function grantOf(result: unknown): [number, number, string] | undefined {
  if (!Array.isArray(result) || result.length !== 3) return undefined;
  const granted = Number(result[0]);
  const first = Number(result[1]);
  const end = String(result[2]);
  return Number.isFinite(granted) && Number.isFinite(first) && Number.isFinite(Number(end)) ? [granted, first, end] : undefined;
}
