import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/index.js';
import type { ConnectionLease, LimitCoordinator, ShapedDestination } from '../cluster/index.js';

/** Why an entry under limits.ini waits: no message token yet, or no connection slot. */
export type ShapeReason = 'rate_limited' | 'connection_limit';

/** What an admitted attempt carries to delivery: its connection slot, and the destination's limits. */
export interface ShapingTicket {
  readonly destination: ShapedDestination;
  readonly lease: ConnectionLease;
}

/** Where a parked entry stands when its turn comes. */
export type Standing = 'go' | 'gone' | 'blocked';

export interface ShaperOptions {
  readonly coordinator: LimitCoordinator;
  readonly clock: Clock;
  /** go: may start; gone: no longer waits (held, removed, in flight); blocked: the gate parks it (suspended, backed off). */
  readonly standing: (id: string) => Standing;
  /** Starts the attempt; the ticket comes back through finished(). */
  readonly start: (id: string, ticket: ShapingTicket) => void;
  /** Entries the gate must park (blocked) go back to the scheduler's queue. */
  readonly requeue: (ids: readonly string[]) => void;
  /** Ends the session a lease's slot holds (QUIT), resolving once it is closed. */
  readonly endLease: (lease: ConnectionLease) => Promise<void>;
  /** How long a slot whose session is idle is kept for the next entry (outbound.ini idle_timeout). */
  readonly idleMs: () => number;
  /** Something lifts at this time: the scheduler's timer must fire by then. */
  readonly wake: () => void;
}

interface KeyState {
  destination: ShapedDestination;
  /** Entries that came due and wait, in the order they came. */
  readonly waiting: string[];
  /** What the first of them waits for. */
  reason?: ShapeReason;
  /** Rate: when the next token is due. */
  retryAt?: number;
  /** Slots held with no attempt: their sessions are idle, ready for the next entry. */
  readonly spare: { lease: ConnectionLease; since: number }[];
  /** Attempts holding a slot of this key. */
  active: number;
  running: boolean;
  again: boolean;
}

// A coordinator on another clock may name a time already past: wait this long at least, so
// that a refusal never turns into a timer that spins.
const MIN_RETRY_MS = 5;

/**
 * Parking for destinations under limits.ini: entries wait per destination key (a domain,
 * an MX site) for a connection slot and a message token from the LimitCoordinator, in the
 * order they came, and cost no attempt while they wait. A slot is one SMTP session: it is
 * taken before the session opens and given back only once the session has closed, so the
 * remote server never sees more sessions than the limit, even while idle sessions wait in
 * the pool for the next entry (they keep their slot, as a spare, up to idle_timeout).
 *
 * Each key is worked by one pass at a time (`running`), so that answers to asynchronous
 * coordinator calls never reorder its entries. Slots come back by onFreed, tokens at
 * `retryAt` through the scheduler's one timer (wakeAt/lapse).
 */
export class Shaper {
  private readonly keys = new Map<string, KeyState>();
  /** Which key each parked entry waits under. */
  private readonly where = new Map<string, string>();
  private earliest = Infinity;
  private readonly unsubscribe: () => void;
  private stopped = false;

  constructor(private readonly options: ShaperOptions) {
    this.unsubscribe = options.coordinator.onFreed((key) => {
      const s = this.keys.get(key);
      // The notice may also say a slot was taken back (Redis kept another node's, or this node
      // is over its failure_mode share): an idle session on it ends now, not at its idle timeout.
      if (s && s.spare.length > 0) this.dropUnkept(key, s);
      // A notice may come while a pass waits for the coordinator's answer (over IPC the
      // "freed" can overtake the "no slot"): that pass then goes round once more.
      if (s?.running) s.again = true;
      else if (s?.reason === 'connection_limit') void this.pass(key);
    });
  }

  /** An entry of a shaped destination came due: it waits its turn under the destination's key. */
  enter(id: string, destination: ShapedDestination): void {
    if (this.where.has(id)) return;
    const s = this.state(destination);
    s.waiting.push(id);
    this.where.set(id, destination.key);
    void this.pass(destination.key);
  }

  /** Why a parked entry waits; undefined when it is not parked here. */
  reasonOf(id: string): ShapeReason | undefined {
    const key = this.where.get(id);
    return key === undefined ? undefined : this.keys.get(key)?.reason;
  }

  /** Parked entries by reason (metrics). */
  parked(isWaiting: (id: string) => boolean): Record<ShapeReason, number> {
    const out: Record<ShapeReason, number> = { rate_limited: 0, connection_limit: 0 };
    for (const s of this.keys.values()) {
      if (!s.reason) continue;
      for (const id of s.waiting) if (isWaiting(id)) out[s.reason]++;
    }
    return out;
  }

  /**
   * An attempt ended. A destination that did not answer gets its slot freed (no session is
   * open); otherwise the slot stays with the idle session for the next entry.
   */
  finished(ticket: ShapingTicket, use: 'used' | 'unused' | 'unreachable'): void {
    const { key, limits } = ticket.destination;
    const s = this.keys.get(key);
    if (s) s.active = Math.max(0, s.active - 1);
    // No message went (a plugin postponed it, it expired, no host answered): its token goes back.
    if (use !== 'used') this.options.coordinator.returnTokens(key, limits, 1);
    if (use === 'unreachable') {
      this.release(ticket.lease);
    } else if (s && this.options.idleMs() > 0 && !this.stopped && this.options.coordinator.keepSlot(ticket.lease)) {
      s.spare.push({ lease: ticket.lease, since: this.options.clock.now() });
      this.earliest = Math.min(this.earliest, this.options.clock.now() + this.options.idleMs());
      this.options.wake();
    } else this.release(ticket.lease);
    if (s) void this.pass(key);
  }

  /** Retries whose token is due, and spare slots idle for too long (cheap until then). */
  lapse(): void {
    const now = this.options.clock.now();
    if (now < this.earliest) return;
    this.earliest = Infinity;
    const idleMs = this.options.idleMs();
    for (const [key, s] of this.keys) {
      if (s.reason === 'rate_limited' && s.retryAt !== undefined && s.retryAt <= now) {
        s.retryAt = undefined;
        void this.pass(key);
      } else if (s.retryAt !== undefined) this.earliest = Math.min(this.earliest, s.retryAt);
      // Spare slots serve the entries waiting; only once none waits do they time out (and
      // only then is their expiry a time to wake for: never one in the past).
      if (s.waiting.length === 0) {
        while (s.spare.length > 0 && s.spare[0].since + idleMs <= now) this.release(s.spare.shift()!.lease);
        if (s.spare.length > 0) this.earliest = Math.min(this.earliest, s.spare[0].since + idleMs);
      }
      this.forget(key, s);
    }
  }

  /** When lapse() next has something to do, if ever. */
  wakeAt(): number | undefined {
    return this.earliest === Infinity ? undefined : this.earliest;
  }

  /**
   * limits.ini changed: every parked entry goes back to the scheduler, in order, to be
   * keyed and limited anew, and idle sessions give their slots back (their key may differ now).
   */
  handBack(): string[] {
    const ids: string[] = [];
    for (const [key, s] of this.keys) {
      for (const id of s.waiting.splice(0)) {
        this.where.delete(id);
        ids.push(id);
      }
      s.reason = undefined;
      s.retryAt = undefined;
      for (const { lease } of s.spare.splice(0)) this.release(lease);
      this.forget(key, s);
    }
    return ids;
  }

  /** Shutdown: nothing starts any more, and every spare slot's session is ended. */
  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    for (const s of this.keys.values()) for (const { lease } of s.spare.splice(0)) this.release(lease);
  }

  private state(destination: ShapedDestination): KeyState {
    let s = this.keys.get(destination.key);
    if (!s) {
      s = { destination, waiting: [], spare: [], active: 0, running: false, again: false };
      this.keys.set(destination.key, s);
    }
    // Limits follow limits.ini live: the latest entry brings the current ones.
    s.destination = destination;
    return s;
  }

  /** Works the key's entries in order until one must wait. One pass per key at a time. */
  private async pass(key: string): Promise<void> {
    const s = this.keys.get(key);
    if (!s) return;
    if (s.running) {
      s.again = true;
      return;
    }
    s.running = true;
    try {
      do {
        s.again = false;
        await this.work(key, s);
      } while (s.again && !this.stopped);
    } finally {
      s.running = false;
      this.forget(key, s);
    }
  }

  private async work(key: string, s: KeyState): Promise<void> {
    const { coordinator, clock } = this.options;
    while (s.waiting.length > 0 && !this.stopped) {
      const id = s.waiting[0];
      const standing = this.options.standing(id);
      if (standing !== 'go') {
        this.leave(s);
        if (standing === 'blocked') this.options.requeue([id]);
        continue;
      }
      const limits = s.destination.limits;
      let lease = s.spare.pop()?.lease;
      // A slot the coordinator no longer keeps (Redis took it back, or this node holds
      // more than failure_mode allows) serves no more: its session ends.
      while (lease && !coordinator.keepSlot(lease)) {
        this.release(lease);
        lease = s.spare.pop()?.lease;
      }
      if (!lease) {
        const answer = await coordinator.acquireSlot(key, limits, randomUUID());
        if (!answer.granted) {
          s.reason = 'connection_limit';
          return;
        }
        lease = answer.lease;
      }
      const tokens = await coordinator.takeTokens(key, limits, 1);
      if (tokens.granted < 1) {
        s.spare.push({ lease, since: clock.now() });
        s.reason = 'rate_limited';
        s.retryAt = Math.max(tokens.retryAt ?? clock.now() + 1000, clock.now() + MIN_RETRY_MS);
        this.earliest = Math.min(this.earliest, s.retryAt);
        this.options.wake();
        return;
      }
      // The entry may have been held or removed while the coordinator answered.
      if (this.options.standing(s.waiting[0]) !== 'go' || s.waiting[0] !== id) {
        coordinator.returnTokens(key, limits, 1);
        s.spare.push({ lease, since: clock.now() });
        continue;
      }
      this.leave(s);
      s.active++;
      this.options.start(id, { destination: s.destination, lease });
    }
    s.reason = undefined;
    s.retryAt = undefined;
    if (s.spare.length > 0) {
      this.earliest = Math.min(this.earliest, s.spare[0].since + this.options.idleMs());
      this.options.wake();
    }
  }

  private leave(s: KeyState): void {
    const id = s.waiting.shift();
    if (id !== undefined) this.where.delete(id);
  }

  /** Gives a slot back once its session, if any, has closed. */
  private release(lease: ConnectionLease): void {
    void this.options
      .endLease(lease)
      .catch(() => undefined)
      .then(() => this.options.coordinator.releaseSlot(lease));
  }

  private dropUnkept(key: string, s: KeyState): void {
    const before = s.spare.length;
    for (let i = s.spare.length - 1; i >= 0; i--) {
      const { lease } = s.spare[i];
      if (this.options.coordinator.keepSlot(lease)) continue;
      s.spare.splice(i, 1);
      this.release(lease);
    }
    if (s.spare.length < before) this.forget(key, s);
  }

  private forget(key: string, s: KeyState): void {
    if (!s.running && s.waiting.length === 0 && s.spare.length === 0 && s.active === 0) this.keys.delete(key);
  }
}
