import type { EntryHead } from '../spool/index.js';
import { QUEUE_STATES } from './metric-labels.js';
import type { EntryState } from './metric-labels.js';

export function entryState(entry: Pick<EntryHead, 'held' | 'tempFailures'>, inFlight: boolean): EntryState {
  if (entry.held) return 'held';
  if (inFlight) return 'in-flight';
  return entry.tempFailures > 0 ? 'deferred' : 'scheduled';
}

/** What the census reads: the scheduler's entry heads, never a file. */
export interface CensusSource {
  all(): IterableIterator<EntryHead>;
  isInFlight(id: string): boolean;
  readonly size: number;
}

export interface Census {
  readonly entries: Record<EntryState, number>;
  /** queuedAt (epoch ms) of the oldest entry in each state; undefined when there is none. */
  readonly oldestQueuedAt: Record<EntryState, number | undefined>;
  /** The destination domains with the most entries, most first. */
  readonly topDomains: readonly (readonly [domain: string, entries: number])[];
  /** When the census was complete (epoch ms). */
  readonly takenAt: number;
}

export interface QueueCensusOptions {
  /** Entries looked at in one turn of the event loop. */
  readonly sliceSize: number;
  /** How many destination domains the census names. */
  readonly topDomains: number;
  /**
   * A census is reused for this many times as long as it took to take (and at least
   * `minReuseMs`), so that the walk costs at most about 1/reuseFactor of the CPU
   * however often /metrics is scraped.
   */
  readonly reuseFactor: number;
  readonly minReuseMs: number;
  readonly now: () => number;
}

export const CENSUS_DEFAULTS = { sliceSize: 10_000, topDomains: 10, reuseFactor: 10, minReuseMs: 1000 } as const;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The queue gauges (entries and oldest entry per state, top destinations), counted from
 * the scheduler's heads in slices of `sliceSize` with a turn of the event loop between
 * them, so that a scrape of a million-entry queue never holds up deliveries or the
 * listener. A queue that fits in one slice is counted afresh at every scrape. A larger
 * one is reused while it is young (see `reuseFactor`); scrapes that arrive during a
 * walk share it. The heads change while a walk is under way (a Map iterator sees
 * entries added after it started and skips those deleted): a census of a busy big queue
 * is a close estimate, not a snapshot.
 */
export class QueueCensus {
  private last?: { census: Census; reuseUntil: number };
  private running?: Promise<Census>;

  constructor(
    private readonly source: CensusSource,
    private readonly options: QueueCensusOptions,
  ) {}

  current(): Promise<Census> {
    const now = this.options.now();
    if (this.last && now < this.last.reuseUntil) return Promise.resolve(this.last.census);
    this.running ??= this.take().finally(() => (this.running = undefined));
    return this.running;
  }

  private async take(): Promise<Census> {
    const started = this.options.now();
    const entries = Object.fromEntries(QUEUE_STATES.map((s) => [s, 0])) as Record<EntryState, number>;
    const oldestQueuedAt = Object.fromEntries(QUEUE_STATES.map((s) => [s, undefined])) as Record<EntryState, number | undefined>;
    const byDomain = new Map<string, number>();
    const { sliceSize } = this.options;
    let inSlice = 0;
    const sliced = this.source.size > sliceSize;
    for (const head of this.source.all()) {
      const state = entryState(head, this.source.isInFlight(head.id));
      entries[state]++;
      const oldest = oldestQueuedAt[state];
      if (oldest === undefined || head.queuedAt < oldest) oldestQueuedAt[state] = head.queuedAt;
      byDomain.set(head.domain, (byDomain.get(head.domain) ?? 0) + 1);
      if (sliced && ++inSlice === sliceSize) {
        inSlice = 0;
        await yieldToLoop();
      }
    }
    const topDomains = await this.top(byDomain, sliced);
    const takenAt = this.options.now();
    const census: Census = { entries, oldestQueuedAt, topDomains, takenAt };
    // A census that took no slicing is counted afresh next time; a big one is reused a while.
    const reuseMs = sliced ? Math.max(this.options.minReuseMs, (takenAt - started) * this.options.reuseFactor) : 0;
    this.last = { census, reuseUntil: takenAt + reuseMs };
    return census;
  }

  /** The `topDomains` largest, in one pass that keeps a short sorted list (no sort of every domain). */
  private async top(byDomain: Map<string, number>, sliced: boolean): Promise<[string, number][]> {
    const n = this.options.topDomains;
    const best: [string, number][] = [];
    let inSlice = 0;
    for (const pair of byDomain) {
      if (best.length < n || pair[1] > best[best.length - 1][1]) {
        let i = best.length;
        while (i > 0 && best[i - 1][1] < pair[1]) i--;
        best.splice(i, 0, pair);
        if (best.length > n) best.pop();
      }
      if (sliced && ++inSlice === this.options.sliceSize) {
        inSlice = 0;
        await yieldToLoop();
      }
    }
    return best;
  }
}
