import type { Clock } from '../core/index.js';
import type { OverrideRecord } from './policy-records.js';

/**
 * The limit overrides in force on this node, by destination (a domain or `mx:<pattern>`).
 * DestinationKeys reads it at every admission; the scheduler's Overrides changes it. An
 * override whose time is up counts as gone at once, before anyone removes it.
 */
export class OverrideTable {
  private readonly byKey = new Map<string, OverrideRecord>();

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.byKey.size;
  }

  /** The override of a destination in force now. */
  get(key: string): OverrideRecord | undefined {
    const o = this.byKey.get(key);
    return o && o.until > this.clock.now() ? o : undefined;
  }

  set(record: OverrideRecord): void {
    this.byKey.set(record.destination, record);
  }

  delete(key: string): OverrideRecord | undefined {
    const o = this.byKey.get(key);
    this.byKey.delete(key);
    return o;
  }

  /** The `mx:` destinations overridden now (their patterns are matched against a domain's MX hosts). */
  mxKeys(): string[] {
    const now = this.clock.now();
    return [...this.byKey.values()].filter((o) => o.destination.startsWith('mx:') && o.until > now).map((o) => o.destination);
  }

  /** In force now, sorted by destination. */
  list(): OverrideRecord[] {
    const now = this.clock.now();
    return [...this.byKey.values()].filter((o) => o.until > now).sort((a, b) => a.destination.localeCompare(b.destination));
  }

  /** Takes out the overrides whose time is up, and returns them. */
  expire(): OverrideRecord[] {
    const now = this.clock.now();
    const gone = [...this.byKey.values()].filter((o) => o.until <= now);
    for (const o of gone) this.byKey.delete(o.destination);
    return gone;
  }

  /** When the next override lifts, if any is in force. */
  nextExpiry(): number | undefined {
    let next = Infinity;
    for (const o of this.byKey.values()) next = Math.min(next, o.until);
    return next === Infinity ? undefined : next;
  }
}
