import { entryHead } from '../spool/index.js';
import type { EntryHead, QueueEntry } from '../spool/index.js';
import { TimerHeap } from './timer-heap.js';

/**
 * An entry as the scheduler keeps it between attempts: its head only (about 200 bytes,
 * so that a million queued entries fit in memory), and the whole entry while it is new
 * and about to be attempted anyway. Attempts and operator actions load the rest.
 */
export interface QueueItem extends EntryHead {
  entry?: QueueEntry;
}

/** What changes between attempts: the item's copy is authoritative between attempts. */
type Timing = Pick<EntryHead, 'nextAttemptAt' | 'attempts' | 'tempFailures' | 'held'>;

/**
 * The queue in memory: every entry's head by id, and a min-heap of due times over them.
 * It is the only writer of `nextAttemptAt` (setDue): the retry schedule, hooks, flushes
 * and operator actions decide a time and hand it here, so that the head, the heap and
 * an entry being worked on never disagree about when it is due.
 */
export class QueueIndex {
  private readonly items = new Map<string, QueueItem>();
  readonly heap = new TimerHeap();
  /** One string per destination domain, shared by its items. */
  private readonly domains = new Map<string, string>();
  /** Flushes (by domain, '*' for all) made while the queue is still being read back. */
  private recoveryFlushes?: Map<string, number>;

  get size(): number {
    return this.items.size;
  }

  get(id: string): QueueItem | undefined {
    return this.items.get(id);
  }

  has(id: string): boolean {
    return this.items.has(id);
  }

  delete(id: string): void {
    this.items.delete(id);
  }

  values(): IterableIterator<QueueItem> {
    return this.items.values();
  }

  /** (Re)schedules an item at its nextAttemptAt; stale heap positions are skipped when popped. */
  schedule(item: QueueItem): void {
    this.heap.push(item.nextAttemptAt, item.id);
  }

  /** The item is due at `at` (its entry too, while one is loaded); the caller queues it with schedule(). */
  setDue(item: QueueItem, at: number): void {
    item.nextAttemptAt = at;
    if (item.entry) item.entry.nextAttemptAt = at;
  }

  /** A freshly loaded entry takes the item's timing (flushes change it in memory only). */
  withTiming(item: QueueItem, entry: QueueEntry): QueueEntry {
    copy(entry, item);
    return entry;
  }

  /** An attempt or an operator action works on this loaded entry: due-time changes reach it too. */
  attach(item: QueueItem, entry: QueueEntry): QueueEntry {
    item.entry = this.withTiming(item, entry);
    return entry;
  }

  /** The work on the entry is done: the item keeps its counters, and only the head stays in memory. */
  detach(item: QueueItem): void {
    if (item.entry) copy(item, item.entry);
    item.entry = undefined;
  }

  addNew(entry: QueueEntry): void {
    this.insert({ ...entryHead(entry), domain: this.intern(entry.domain), entry });
  }

  addRecovered(head: EntryHead): void {
    const item: QueueItem = { ...head, domain: this.intern(head.domain) };
    const flushedAt = Math.min(this.recoveryFlushes?.get('*') ?? Infinity, this.recoveryFlushes?.get(item.domain) ?? Infinity);
    if (!item.held && item.nextAttemptAt > flushedAt) this.setDue(item, flushedAt);
    this.insert(item);
  }

  /** Between these, a flush also applies to the entries still to be read back. */
  recoveryStarted(): void {
    this.recoveryFlushes = new Map();
  }

  recoveryFinished(): void {
    this.recoveryFlushes = undefined;
  }

  /** Makes every waiting item (of one domain, when given) due now, but those `skip` names; returns how many. */
  flush(now: number, domain: string | undefined, skip: (item: QueueItem) => boolean): number {
    this.recoveryFlushes?.set(domain ?? '*', now);
    let flushed = 0;
    for (const item of this.items.values()) {
      if (skip(item) || item.held || (domain && item.domain !== domain)) continue;
      if (item.nextAttemptAt <= now) continue;
      flushed++;
      this.setDue(item, now);
      this.schedule(item);
    }
    return flushed;
  }

  private intern(domain: string): string {
    const known = this.domains.get(domain);
    if (known !== undefined) return known;
    this.domains.set(domain, domain);
    return domain;
  }

  private insert(item: QueueItem): void {
    this.items.set(item.id, item);
    this.schedule(item);
  }
}

function copy(to: Timing, from: Timing): void {
  to.nextAttemptAt = from.nextAttemptAt;
  to.attempts = from.attempts;
  to.tempFailures = from.tempFailures;
  to.held = from.held;
}
