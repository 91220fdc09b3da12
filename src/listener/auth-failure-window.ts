import { isIPv6 } from 'node:net';

export interface FailureWindowLimits {
  /** Failures within one window that lock the client out. */
  readonly failures: number;
  readonly windowMs: number;
  readonly lockoutMs: number;
}

interface Entry {
  windowStart: number;
  count: number;
  lockedUntil: number;
  /** When the entry holds nothing any more: its window is over and it is not locked. */
  expiresAt: number;
}

/** How many clients are remembered at most (about 100 bytes each). */
export const DEFAULT_MAX_CLIENTS = 100_000;

/**
 * The expanded first four groups of an IPv6 address: its /64. One IPv6 host usually
 * holds a whole /64, so counting per address would let it try 2^64 times.
 */
function prefix64(address: string): string {
  const [head, tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded dotted IPv4 tail takes two groups; it never falls within the first four
  // unless the address is all zeros up front, where either way the key is stable.
  const missing = Math.max(0, 8 - left.length - right.length);
  const groups = address.includes('::') ? [...left, ...Array<string>(missing).fill('0'), ...right] : left;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

/** The key a client's failures are counted under: the IPv4 address, or the IPv6 /64. */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  return isIPv6(address) ? prefix64(address) : address;
}

/**
 * AUTH failures per client address in fixed windows, as Postfix's anvil counts rates:
 * `failures` within `windowMs` lock the address out for `lockoutMs`. Memory is bounded:
 * entries are kept in the order they were last touched, those whose window and lockout
 * are over are dropped as new failures come in, and when `maxClients` are remembered the
 * least recently touched one is forgotten (an attacker with more addresses than that
 * gains only forgetting, never memory).
 */
export class AuthFailureWindow {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxClients = DEFAULT_MAX_CLIENTS) {}

  get size(): number {
    return this.entries.size;
  }

  /** The time until which the client is refused AUTH, or undefined when it is not. */
  lockedUntil(address: string, now: number): number | undefined {
    const e = this.entries.get(clientKey(address));
    return e && e.lockedUntil > now ? e.lockedUntil : undefined;
  }

  /** Counts one failure; returns true when this failure locked the client out. */
  fail(address: string, now: number, limits: FailureWindowLimits): boolean {
    this.sweep(now);
    const key = clientKey(address);
    let e = this.entries.get(key);
    if (e) this.entries.delete(key);
    else if (this.entries.size >= this.maxClients) this.entries.delete(this.entries.keys().next().value!);
    if (!e || now - e.windowStart >= limits.windowMs) e = { windowStart: now, count: 0, lockedUntil: e?.lockedUntil ?? 0, expiresAt: 0 };
    e.count++;
    let locked = false;
    if (e.count >= limits.failures && e.lockedUntil <= now) {
      e.lockedUntil = now + limits.lockoutMs;
      e.count = 0;
      e.windowStart = now;
      locked = true;
    }
    e.expiresAt = Math.max(e.windowStart + limits.windowMs, e.lockedUntil);
    this.entries.set(key, e);
    return locked;
  }

  /** Drops expired entries from the least recently touched end (amortised O(1) per failure). */
  private sweep(now: number): void {
    for (const [key, e] of this.entries) {
      if (e.expiresAt > now) return;
      this.entries.delete(key);
    }
  }
}
