import { randomUUID } from 'node:crypto';
import type { MessageRate, TokenAnswer } from './coordinator.js';
import type { RedisLink } from './redis-link.js';
import { GIVE_BACK_LUA, GRANT_LUA, callKey, pair, rateKey } from './redis-scripts.js';

/** The demand a chunk is sized to: the tokens handed out in the last this many ms. */
const DEMAND_MS = 200;
/** Tokens are reserved at most this far ahead of their time (µs): a node's chunk spans about one demand spell. */
const HORIZON_US = 200_000;
/**
 * Tokens due but not used for this long go back to Redis: a token taken early and used late
 * would let this node's messages bunch with those of others at the remote server.
 */
export const HOLD_MS = 250;
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

  async take(key: string, rate: MessageRate, wanted: number): Promise<TokenAnswer | undefined> {
    const step = stepOf(rate);
    let chunk = this.chunk(key, step);
    // One call per key at a time: the others wait for its chunk.
    while (chunk.asking) {
      await chunk.asking;
      chunk = this.chunk(key, step);
    }
    const now = this.now();
    const local = this.handOut(chunk, wanted, now, step);
    if (local) return local;
    if (chunk.retryAt !== undefined && chunk.retryAt > now) return { granted: 0, retryAt: chunk.retryAt };
    const burst = Math.max(1, rate.burst);
    const demand = Math.min(burst + Math.ceil(HORIZON_US / step), Math.max(wanted, chunk.now + chunk.before));
    const back = chunk.tokens;
    chunk.tokens = 0;
    let answer: [number, number] | undefined;
    let done!: () => void;
    chunk.asking = new Promise((resolve) => (done = resolve));
    try {
      const id = randomUUID();
      answer = pair(await this.link.script('grant', GRANT_LUA, [rateKey(this.link, key), callKey(this.link, key, id)], [step.toFixed(6), burst, demand, HORIZON_US, back]));
    } finally {
      chunk.asking = undefined;
      done();
    }
    if (!answer) return undefined;
    const at = this.now();
    const [granted, firstUs] = answer;
    if (granted === 0) {
      chunk.retryAt = at + Math.ceil(firstUs / 1000);
      return { granted: 0, retryAt: chunk.retryAt };
    }
    Object.assign(chunk, { retryAt: undefined, tokens: granted, due: at + firstUs / 1000, step, stepMs: step / 1000, at });
    return this.handOut(chunk, wanted, at, step) ?? { granted: 0, retryAt: Math.ceil(chunk.due) };
  }

  /** Tokens taken but not used (a message that did not go) are held for the next, or given back soon. */
  putBack(key: string, count: number): void {
    const chunk = this.chunks.get(key);
    if (!chunk || count <= 0) return;
    // Due at once: they were due when taken.
    chunk.due = chunk.tokens > 0 ? Math.min(chunk.due, this.now()) - (count - 1) * chunk.stepMs : this.now();
    chunk.tokens += count;
  }

  /** Gives back tokens due but unused for HOLD_MS (one call per such key); `all`: every token (close). */
  async sweep(all = false): Promise<void> {
    const now = this.now();
    const calls: Promise<unknown>[] = [];
    for (const [key, chunk] of this.chunks) {
      if (chunk.asking) continue;
      if (chunk.tokens > 0 && (all || (now - chunk.at >= HOLD_MS && now - chunk.due >= HOLD_MS))) {
        const back = chunk.tokens;
        chunk.tokens = 0;
        calls.push(this.link.script('give_back', GIVE_BACK_LUA, [rateKey(this.link, key), callKey(this.link, key, randomUUID())], [back]));
      }
      // A key unused for a while carries nothing worth keeping.
      if (chunk.tokens === 0 && now - chunk.at > 10 * HOLD_MS && (chunk.retryAt === undefined || chunk.retryAt <= now)) this.chunks.delete(key);
    }
    await Promise.all(calls);
  }

  /** Redis came back, or went: what was held is forgotten (Redis may have restarted empty). */
  forget(): void {
    this.chunks.clear();
  }

  private chunk(key: string, step: number): Chunk {
    let chunk = this.chunks.get(key);
    if (!chunk) {
      if (this.chunks.size >= MAX_KEYS) this.chunks.delete(this.chunks.keys().next().value!);
      const now = this.now();
      chunk = { tokens: 0, due: now, stepMs: step / 1000, step, at: now, now: 0, before: 0, spell: now };
      this.chunks.set(key, chunk);
    }
    return chunk;
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
    if (chunk.tokens <= 0) return undefined;
    if (chunk.due > now) return { granted: 0, retryAt: Math.ceil(chunk.due) };
    const dueNow = Math.min(chunk.tokens, Math.floor((now - chunk.due) / chunk.stepMs + 1e-9) + 1);
    const granted = Math.min(wanted, dueNow);
    chunk.tokens -= granted;
    // The next one's time: a step after the last handed out, or now when they were overdue.
    chunk.due = Math.max(chunk.due + granted * chunk.stepMs, now - (dueNow - granted - 1) * chunk.stepMs);
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
