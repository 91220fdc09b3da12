import type { Clock } from '../core/index.js';

interface DestinationState {
  inFlight: number;
  /** Entries waiting for a connection slot or for a probe's verdict. */
  parked: string[];
  /** Set while the destination is unreachable: no attempt before this. */
  downUntil?: number;
  backoffMs: number;
  probing: boolean;
}

export type Admission = { readonly go: true } | { readonly go: false; readonly retryAt?: number };

/**
 * Per-destination limits: at most `limit(domain)` attempts in flight to one domain, and a
 * destination whose every host refused a session backs off as a whole (doubling from
 * `minBackoff` to `maxBackoff`): while it is down nothing is attempted, then one probe
 * goes; the rest wait for its verdict, so a dead host never meets a stampede of retries.
 */
export class DestinationGate {
  private readonly states = new Map<string, DestinationState>();

  constructor(
    private readonly clock: Clock,
    private limit: (domain: string) => number,
    private backoff: { minMs: number; maxMs: number },
  ) {}

  configure(limit: (domain: string) => number, backoff: { minMs: number; maxMs: number }): void {
    this.limit = limit;
    this.backoff = backoff;
  }

  private state(domain: string): DestinationState {
    let s = this.states.get(domain);
    if (!s) {
      s = { inFlight: 0, parked: [], backoffMs: 0, probing: false };
      this.states.set(domain, s);
    }
    return s;
  }

  /** May an entry for this domain start now? If not, it is parked, or should come back at retryAt. */
  admit(domain: string, id: string): Admission {
    const s = this.state(domain);
    const now = this.clock.now();
    if (s.downUntil !== undefined) {
      if (now < s.downUntil) return { go: false, retryAt: s.downUntil };
      if (s.probing) {
        s.parked.push(id);
        return { go: false };
      }
      s.probing = true;
    } else if (s.inFlight >= this.limit(domain)) {
      s.parked.push(id);
      return { go: false };
    }
    s.inFlight++;
    return { go: true };
  }

  /** An attempt ended; returns the parked entries that may be tried again now. */
  finished(domain: string, unreachable: boolean): string[] {
    const s = this.state(domain);
    s.inFlight = Math.max(0, s.inFlight - 1);
    const now = this.clock.now();
    if (unreachable) {
      s.backoffMs = Math.min(Math.max(s.backoffMs * 2, this.backoff.minMs), this.backoff.maxMs);
      s.downUntil = now + s.backoffMs;
      s.probing = false;
      return s.parked.splice(0);
    }
    if (s.downUntil !== undefined) {
      s.downUntil = undefined;
      s.backoffMs = 0;
      s.probing = false;
      return s.parked.splice(0);
    }
    const free = Math.max(0, this.limit(domain) - s.inFlight);
    const released = s.parked.splice(0, free);
    if (s.inFlight === 0 && s.parked.length === 0 && s.backoffMs === 0) this.states.delete(domain);
    return released;
  }

  /** Domains currently backed off, for the operator. */
  down(): { domain: string; until: number }[] {
    return [...this.states].filter(([, s]) => s.downUntil !== undefined).map(([domain, s]) => ({ domain, until: s.downUntil! }));
  }
}
