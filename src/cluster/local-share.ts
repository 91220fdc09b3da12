import type { MessageRate } from './coordinator.js';

/**
 * A worker's share of a destination's limits when the primary does not answer in time
 * (issue #16; issue #17's `failure_mode=share` does the same across nodes): split so that
 * the shares of all workers never add up to more than the limit. Connection slots go by
 * rendezvous hashing (highest random weight): each slot has one owner among the workers,
 * found by every worker alone, so that 2 stays 2 with 8 workers.
 */

/** FNV-1a, 32 bits: cheap, and spread enough to rank a handful of workers. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // A final mix (murmur3's fmix32): FNV's low bits alone rank similar strings alike.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The worker (0..workers-1) that owns `item` of `key`: the highest score wins. */
export function rendezvousOwner(key: string, item: string, workers: number): number {
  let best = 0;
  let bestScore = -1;
  for (let w = 0; w < workers; w++) {
    const score = fnv1a(`${key}\u0000${item}\u0000${w}`);
    if (score > bestScore) [best, bestScore] = [w, score];
  }
  return best;
}

/** How many of `max` slots of `key` worker `index` of `workers` owns. The shares sum to `max`. */
export function slotShare(key: string, max: number, workers: number, index: number): number {
  if (workers <= 1) return max;
  // Past a few hundred slots an even split is as good as hashing each slot, and bounded in cost.
  if (max > 256) return Math.floor(max / workers) + (rendezvousOwner(key, 'extra', workers) === index && max % workers ? max % workers : 0);
  let mine = 0;
  for (let s = 0; s < max; s++) if (rendezvousOwner(key, `slot${s}`, workers) === index) mine++;
  return mine;
}

/** A whole-number part of `total` for worker `index`: floor(total/workers), plus one for the remainder's owners. */
function evenPart(key: string, what: string, total: number, workers: number, index: number): number {
  const base = Math.floor(total / workers);
  const rest = total - base * workers;
  if (rest === 0) return base;
  // The `rest` workers ranked first for this key each take one more.
  const ranked = [...Array(workers).keys()].sort((a, b) => fnv1a(`${key}\u0000${what}\u0000${b}`) - fnv1a(`${key}\u0000${what}\u0000${a}`));
  return base + (ranked.indexOf(index) < rest ? 1 : 0);
}

/** Worker `index`'s part of a message rate: counts and bursts of all workers sum to the rate's. */
export function rateShare(key: string, rate: MessageRate, workers: number, index: number): MessageRate {
  if (workers <= 1) return rate;
  return { count: evenPart(key, 'rate', rate.count, workers, index), perMs: rate.perMs, burst: evenPart(key, 'burst', rate.burst, workers, index) };
}

/**
 * A token bucket for a local share: `count` tokens per `perMs`, holding at most
 * max(burst, 1) so that a share without burst still sends one message at a time.
 */
export class LocalBucket {
  private tokens: number;
  private at: number;

  constructor(
    private rate: MessageRate,
    now: number,
  ) {
    this.tokens = this.capacity;
    this.at = now;
  }

  private get capacity(): number {
    return this.rate.count === 0 ? 0 : Math.max(1, this.rate.burst);
  }

  /** A rate that changed (limits.ini reloaded, workers restarted) applies from now. */
  update(rate: MessageRate): void {
    this.rate = rate;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  take(wanted: number, now: number): { granted: number; retryAt?: number } {
    const { count, perMs } = this.rate;
    if (count === 0) return { granted: 0, retryAt: now + perMs };
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) * count) / perMs);
    this.at = now;
    const granted = Math.min(wanted, Math.floor(this.tokens));
    this.tokens -= granted;
    if (granted > 0) return { granted };
    return { granted: 0, retryAt: now + Math.ceil(((1 - this.tokens) * perMs) / count) };
  }
}
