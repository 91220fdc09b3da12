import type { Clock } from '../core/index.js';
import type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate, SlotAnswer, TokenAnswer } from './coordinator.js';

/** Keys without a lease or a pending rate are forgotten once there are this many. */
const PRUNE_ABOVE = 10_000;

/**
 * GCRA (the generic cell rate algorithm, ITU-T I.371): one number per destination, the
 * theoretical arrival time `tat` of the next message. A message may go when
 * `tat - now <= tolerance`, where tolerance = (burst - 1) × interval; each one moves `tat`
 * on by one interval. So after an idle spell `burst` go at once, and in any window of W ms
 * at most W / interval + burst go: a 1-s window never holds more than rate + burst.
 */
function interval(rate: MessageRate): number {
  return rate.perMs / rate.count;
}

function tolerance(rate: MessageRate): number {
  return (Math.max(1, rate.burst) - 1) * interval(rate);
}

/**
 * The limits of one node in one process (`nodes=1`), and what the primary process serves
 * to its workers (`nodes=N`). Everything is in memory and answers at once; the Promises
 * are the contract's, so that callers are written for the IPC and Redis implementations
 * too. Listeners of `onFreed` are called after the current job (never from inside
 * `releaseSlot`), so a caller may release while it walks its own state.
 */
export class LocalCoordinator implements LimitCoordinator {
  private readonly slots = new Map<string, Set<string>>();
  /** Per key: the theoretical arrival time, and the interval it was reckoned in. */
  private readonly tats = new Map<string, { tat: number; step: number }>();
  private readonly listeners = new Set<(key: string) => void>();
  private closed = false;
  private prunedAt = -Infinity;

  constructor(private readonly clock: Clock) {}

  acquireSlot(key: string, limits: DestinationLimits, leaseId: string): Promise<SlotAnswer> {
    let held = this.slots.get(key);
    if (held?.has(leaseId)) return Promise.resolve({ granted: true, lease: { key, id: leaseId } });
    // A limit lowered live lets the holders finish; no new slot until they are below it.
    if (this.closed || (held?.size ?? 0) >= limits.maxConnections) return Promise.resolve({ granted: false, reason: 'connection_limit' });
    if (!held) {
      held = new Set();
      this.slots.set(key, held);
    }
    held.add(leaseId);
    return Promise.resolve({ granted: true, lease: { key, id: leaseId } });
  }

  /** One process keeps every slot it granted until it is released. */
  keepSlot(lease: ConnectionLease): boolean {
    return this.slots.get(lease.key)?.has(lease.id) ?? false;
  }

  releaseSlot(lease: ConnectionLease): void {
    const held = this.slots.get(lease.key);
    if (!held?.delete(lease.id)) return;
    if (held.size === 0) this.slots.delete(lease.key);
    queueMicrotask(() => {
      for (const listener of this.listeners) listener(lease.key);
    });
  }

  takeTokens(key: string, limits: DestinationLimits, wanted: number): Promise<TokenAnswer> {
    const rate = limits.rate;
    if (!rate) return Promise.resolve({ granted: wanted });
    const now = this.clock.now();
    const step = interval(rate);
    const tau = tolerance(rate);
    const known = this.tats.get(key);
    // A rate changed live: the messages owed are kept, each at the new interval, so that a
    // limit raised from 1/h does not hold the next message for the rest of the hour.
    let tat = known ? Math.max(now + (Math.max(known.tat, now) - now) * (step / known.step), now) : now;
    let granted = 0;
    while (granted < wanted && tat - now <= tau) {
      tat += step;
      granted++;
    }
    this.tats.set(key, { tat, step });
    // At most once a second: with many keys all owing time, a scan per call would find
    // little to drop and cost a full pass every message.
    if (this.tats.size > PRUNE_ABOVE && now - this.prunedAt >= 1000) this.prune(now);
    return Promise.resolve(granted > 0 ? { granted } : { granted: 0, retryAt: Math.ceil(tat - tau) });
  }

  returnTokens(key: string, limits: DestinationLimits, count: number): void {
    const known = this.tats.get(key);
    if (known === undefined || !limits.rate || count <= 0) return;
    // Never back past now: tokens unused in the past are not saved up beyond the burst.
    this.tats.set(key, { tat: Math.max(this.clock.now(), known.tat - count * known.step), step: known.step });
  }

  onFreed(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Connection slots of `key` held now (metrics, tests). */
  held(key: string): number {
    return this.slots.get(key)?.size ?? 0;
  }

  close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    return Promise.resolve();
  }

  /** Rates whose bucket is full again carry no state worth keeping. */
  private prune(now: number): void {
    this.prunedAt = now;
    for (const [key, { tat }] of this.tats) if (tat <= now) this.tats.delete(key);
  }
}
