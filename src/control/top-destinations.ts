import { OTHER_DESTINATIONS } from './metric-labels.js';

export interface TopDestinationsOptions {
  /** Destinations with a label of their own at one time (N). */
  readonly slots: number;
  /** Destinations whose recent counts are tracked to find the top N (Space-Saving's table). */
  readonly candidates: number;
  /** Counts are halved this often, so that "top" means recent. */
  readonly halfLifeMs: number;
  /** A destination keeps its label at least this long, so that series do not flap. */
  readonly minTenureMs: number;
  readonly now: () => number;
  /** A destination lost its label: its series go (its later events count as "other"). */
  readonly onEvict: (domain: string) => void;
}

export const TOP_DESTINATION_DEFAULTS = { slots: 20, candidates: 200, halfLifeMs: 10 * 60_000, minTenureMs: 10 * 60_000 } as const;

/**
 * Chooses which destination domains get a `domain` label of their own in the
 * per-destination counters, so that a run of mail to a million domains cannot make a
 * million series. At most `slots` hold a label; everything else is counted as "other".
 *
 * Every event counts for its domain in a table of at most `candidates` entries with the
 * Space-Saving rule (Metwally et al., 2005): when the table is full, the least counted
 * domain without a label makes room and the newcomer inherits its count, so a frequent
 * domain cannot be kept out by many rare ones. Counts halve every `halfLifeMs`.
 * A free slot goes to the next domain with an event. When none is free, a domain takes
 * the slot of the label holder with the lowest count once it has at least twice that
 * count and the holder has held its label for `minTenureMs`.
 *
 * A counter's value never moves between series: an event is counted once, under the
 * label its domain has at that moment; an evicted domain's series are removed.
 */
export class TopDestinations {
  private readonly counts = new Map<string, number>();
  /** Label holders, with when they got their label. */
  private readonly holders = new Map<string, number>();
  private decayedAt: number;

  constructor(private readonly options: TopDestinationsOptions) {
    this.decayedAt = options.now();
  }

  /** Counts one event for `domain` and returns the label to count it under. */
  label(domain: string): string {
    const now = this.options.now();
    this.decay(now);
    const count = this.count(domain);
    if (this.holders.has(domain)) return domain;
    if (this.holders.size < this.options.slots) {
      this.holders.set(domain, now);
      return domain;
    }
    let lowest: string | undefined;
    let lowestCount = Infinity;
    for (const [holder, since] of this.holders) {
      if (now - since < this.options.minTenureMs) continue;
      const c = this.counts.get(holder) ?? 0;
      if (c < lowestCount) {
        lowest = holder;
        lowestCount = c;
      }
    }
    if (lowest === undefined || count < 2 * lowestCount || count === 0) return OTHER_DESTINATIONS;
    this.holders.delete(lowest);
    this.options.onEvict(lowest);
    this.holders.set(domain, now);
    return domain;
  }

  /** The domains holding a label now. */
  labelled(): string[] {
    return [...this.holders.keys()];
  }

  private count(domain: string): number {
    const known = this.counts.get(domain);
    if (known !== undefined) {
      this.counts.set(domain, known + 1);
      return known + 1;
    }
    let inherited = 0;
    if (this.counts.size >= this.options.candidates) {
      let victim: string | undefined;
      for (const [d, c] of this.counts) {
        if (this.holders.has(d)) continue;
        if (victim === undefined || c < inherited) {
          victim = d;
          inherited = c;
        }
      }
      if (victim !== undefined) this.counts.delete(victim);
    }
    this.counts.set(domain, inherited + 1);
    return inherited + 1;
  }

  private decay(now: number): void {
    const halvings = Math.floor((now - this.decayedAt) / this.options.halfLifeMs);
    if (halvings <= 0) return;
    this.decayedAt += halvings * this.options.halfLifeMs;
    const factor = 2 ** -Math.min(halvings, 60);
    for (const [d, c] of this.counts) {
      const next = c * factor;
      // Forgotten once it no longer counts for anything, unless it holds a label.
      if (next < 0.5 && !this.holders.has(d)) this.counts.delete(d);
      else this.counts.set(d, next);
    }
  }
}
