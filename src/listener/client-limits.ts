import type { Clock, SmtpReply } from '../core/index.js';

/** Limits for one client address; 0 means no limit. */
export interface ClientLimit {
  /** Connections open at once (Postfix smtpd_client_connection_count_limit). */
  readonly maxConnections: number;
  /** Connection attempts per minute (Postfix smtpd_client_connection_rate_limit, anvil_rate_time_unit=60s). */
  readonly maxPerMinute: number;
}

interface ClientState {
  active: number;
  windowStart: number;
  attempts: number;
}

const RATE_WINDOW_MS = 60_000;
// Enough for every address that connected within a minute on a busy listener; beyond
// it the oldest idle addresses are forgotten, so many addresses cannot grow memory.
const DEFAULT_MAX_ENTRIES = 100_000;
// Expired entries are swept a few at a time on each connection, never in one long loop.
const SWEEP_STEPS = 32;

const TOO_MANY: SmtpReply = { code: 421, enhanced: '4.7.0', text: 'Too many connections from your address, try again later' };
const TOO_FAST: SmtpReply = { code: 421, enhanced: '4.7.0', text: 'Too many connection attempts from your address, try again later' };

/**
 * Per-address connection counts and connection rates, as Postfix's anvil keeps them. An
 * entry lives while its address has a connection open or its rate window is running;
 * the table is bounded whatever the number of addresses.
 */
export class ClientLimiter {
  private readonly table = new Map<string, ClientState>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = DEFAULT_MAX_ENTRIES,
  ) {}

  /** Counts one connection attempt; a reply refuses it, undefined admits it (release() it when it closes). */
  admit(address: string, limit: ClientLimit): SmtpReply | undefined {
    const now = this.clock.now();
    this.sweep(now);
    let state = this.table.get(address);
    if (!state) {
      if (this.table.size >= this.maxEntries) this.evictIdle();
      state = { active: 0, windowStart: now, attempts: 0 };
      this.table.set(address, state);
    } else if (now - state.windowStart >= RATE_WINDOW_MS) {
      state.windowStart = now;
      state.attempts = 0;
      // Kept in order of window start, so that the sweep finds expired entries at the front.
      this.table.delete(address);
      this.table.set(address, state);
    }
    state.attempts++;
    if (limit.maxPerMinute > 0 && state.attempts > limit.maxPerMinute) return TOO_FAST;
    if (limit.maxConnections > 0 && state.active >= limit.maxConnections) return TOO_MANY;
    state.active++;
    return undefined;
  }

  /** An admitted connection has closed. */
  release(address: string): void {
    const state = this.table.get(address);
    if (!state) return;
    state.active = Math.max(0, state.active - 1);
    if (state.active === 0 && this.clock.now() - state.windowStart >= RATE_WINDOW_MS) this.table.delete(address);
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.table.size;
  }

  private sweep(now: number): void {
    let steps = 0;
    for (const [address, state] of this.table) {
      if (++steps > SWEEP_STEPS || now - state.windowStart < RATE_WINDOW_MS) return;
      if (state.active === 0) this.table.delete(address);
    }
  }

  /** The table is full: forget the idle address seen longest ago (its rate history goes with it). */
  private evictIdle(): void {
    for (const [address, state] of this.table) {
      if (state.active === 0) {
        this.table.delete(address);
        return;
      }
    }
  }
}
