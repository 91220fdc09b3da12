import { EventEmitter } from 'node:events';
import PQueue from 'p-queue';
import type { Clock, DeliveryOutcome } from '../core/index.js';
import type { HookRunner } from '../hooks/index.js';
import type { OutboundConfig, Route } from '../config/index.js';
import { DestinationGate } from './destinations.js';
import type { Logger, DispositionRecord } from '../log/index.js';
import type { EntryHead, QueueEntry, Spool } from '../spool/index.js';
import { EntryNotFoundError } from '../spool/index.js';
import { applyOutcome, bounceEntry, expireEntry } from './apply-outcome.js';
import { RetrySchedule } from './retry-schedule.js';
import { QueueIndex, copyTiming } from './queue-index.js';
import { AttemptSettler } from './settle.js';
import type { Reporter } from './settle.js';
import type { QueueItem } from './queue-index.js';

/** What the scheduler needs from delivery; daemon.ts hands it the real agent. */
export interface Deliverer {
  /** One attempt for the entry's unfinished recipients; never throws for a remote failure. */
  deliver(entry: QueueEntry): Promise<DeliveryOutcome>;
  /** Aborts attempts in progress (shutdown after the drain bound). */
  destroy(): void;
}

export interface SchedulerEvents {
  disposition: [record: DispositionRecord, entry: QueueEntry];
  /** One delivery attempt ended, with how long it took (metrics). */
  attempt: [entry: QueueEntry, records: readonly DispositionRecord[], durationMs: number];
}

export class QueueAdminError extends Error {
  constructor(
    readonly reason: 'not_found' | 'in_flight',
    message: string,
  ) {
    super(message);
  }
}

function gateSettings(config: OutboundConfig, routes?: ReadonlyMap<string, Route>): [(domain: string) => number, { minMs: number; maxMs: number }] {
  const limit = (domain: string) => routes?.get(domain)?.max_connections ?? routes?.get('*')?.max_connections ?? config.max_domain_connections;
  return [limit, { minMs: config.destination_backoff_min * 1000, maxMs: config.destination_backoff_max * 1000 }];
}


// setTimeout's ceiling; a later due time just re-arms when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

const isGone = (err: unknown) => err instanceof EntryNotFoundError;

/**
 * Decides when each queue entry is attempted: a min-heap of due times behind a single
 * timer, pulled into a p-queue only while fewer than concurrency_max attempts are in
 * flight, so that a flush of a huge queue never builds a huge backlog in memory.
 */
export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly queue = new QueueIndex();
  private readonly inFlight = new Set<string>();
  /** Suspended destination domains, with the entries that came due meanwhile. */
  private readonly suspended = new Map<string, string[]>();
  private readonly work: PQueue;
  private timer?: NodeJS.Timeout;
  private timerDue = Infinity;
  private schedule: RetrySchedule;
  private stopped = false;
  private aborting = false;
  private readonly gate: DestinationGate;
  private readonly settler: AttemptSettler;

  constructor(
    private config: OutboundConfig,
    private readonly spool: Spool,
    private readonly deliverer: Deliverer,
    private readonly logger: Logger,
    private readonly clock: Clock,
    /** Called with each attempt's dispositions before a finished entry is removed (DSNs). */
    reporter?: Reporter,
    private readonly hooks?: HookRunner,
    routes?: ReadonlyMap<string, Route>,
  ) {
    super();
    this.settler = new AttemptSettler({
      spool,
      logger,
      clock,
      hooks,
      reporter,
      forget: (id) => this.queue.delete(id),
      onDisposition: (record, entry) => this.emit('disposition', record, entry),
    });
    this.schedule = RetrySchedule.fromConfig(config);
    this.gate = new DestinationGate(clock, ...gateSettings(config, routes));
    this.work = new PQueue({ concurrency: config.concurrency_max });
  }

  get size(): number {
    return this.queue.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Adds new entries (from the listener, or reports): kept whole until their first attempt. */
  add(entries: readonly QueueEntry[]): void {
    for (const entry of entries) this.queue.addNew(entry);
    this.pump();
  }

  /** Adds entries read back from the queue of an earlier run. */
  addRecovered(heads: readonly EntryHead[]): void {
    for (const head of heads) this.queue.addRecovered(head);
    this.pump();
  }

  recoveryStarted(): void {
    this.queue.recoveryStarted();
  }

  recoveryFinished(): void {
    this.queue.recoveryFinished();
  }

  /** The whole entry, with the scheduler's current view of its timing. */
  private async entryOf(item: QueueItem): Promise<QueueEntry> {
    const entry = item.entry ?? (await this.spool.load(item.id));
    copyTiming(entry, item);
    return entry;
  }

  updateConfig(config: OutboundConfig, routes?: ReadonlyMap<string, Route>): void {
    this.config = config;
    this.gate.configure(...gateSettings(config, routes));
    this.schedule = RetrySchedule.fromConfig(config);
    this.work.concurrency = config.concurrency_max;
    this.pump();
  }

  /**
   * SIGHUP: every waiting entry (of one domain, when given) is due now. An entry in
   * flight keeps its one attempt; held entries and suspended domains stay as they are.
   */
  flush(domain?: string): number {
    const flushed = this.queue.flush(this.clock.now(), domain, (item) => this.inFlight.has(item.id));
    this.pump();
    return flushed;
  }

  /** Every entry's head, in the order they were added; the admin API filters and pages it. */
  all(): IterableIterator<EntryHead> {
    return this.queue.values();
  }

  /** The whole entry (read from disk unless it is new), or undefined when it is not queued. */
  async load(id: string): Promise<QueueEntry | undefined> {
    const item = this.queue.get(id);
    if (!item) return undefined;
    try {
      return await this.entryOf(item);
    } catch (err) {
      if (isGone(err)) return undefined;
      throw err;
    }
  }

  isInFlight(id: string): boolean {
    return this.inFlight.has(id);
  }

  /** Operator actions on one entry; an entry in flight cannot be changed under its attempt. */
  hold(id: string): Promise<QueueEntry> {
    return this.exclusive(id, async (entry) => {
      entry.held = true;
      await this.spool.update(entry);
    });
  }

  release(id: string): Promise<QueueEntry> {
    return this.exclusive(id, async (entry) => {
      entry.held = false;
      entry.nextAttemptAt = this.clock.now();
      await this.spool.update(entry);
    });
  }

  remove(id: string): Promise<QueueEntry> {
    return this.exclusive(id, async (entry) => {
      await this.spool.remove(entry);
      this.queue.delete(id);
      this.logger.info({ id, message_id: entry.messageId, recipients: entry.recipients.map((r) => r.address) }, 'entry removed by the operator');
    });
  }

  /** Fails every unsettled recipient now, with a report to the sender as for any bounce. */
  bounce(id: string, text = 'Message bounced by the operator'): Promise<QueueEntry> {
    return this.exclusive(id, (entry) => this.settler.finish(entry, bounceEntry(entry, this.clock.now(), { code: 550, enhanced: '5.0.0', text }), true));
  }

  /** Runs an operator action with the entry marked busy, so that no attempt starts under it. */
  private async exclusive(id: string, action: (entry: QueueEntry) => Promise<void>): Promise<QueueEntry> {
    const item = this.queue.get(id);
    if (!item) throw new QueueAdminError('not_found', `no queue entry ${id}`);
    if (this.inFlight.has(id)) throw new QueueAdminError('in_flight', `entry ${id} is being delivered right now; try again shortly`);
    this.inFlight.add(id);
    try {
      const entry = await this.entryOf(item).catch((err: unknown) => {
        if (!isGone(err)) throw err;
        this.queue.delete(id);
        throw new QueueAdminError('not_found', `no queue entry ${id}`);
      });
      await action(entry);
      copyTiming(item, entry);
      return entry;
    } finally {
      this.inFlight.delete(id);
      if (this.queue.has(id)) this.queue.schedule(item);
      this.pump();
    }
  }

  /** Stops delivery to a destination domain until resume(); its entries stay queued. */
  suspend(domain: string): void {
    this.suspended.set(domain.toLowerCase(), this.suspended.get(domain.toLowerCase()) ?? []);
  }

  resume(domain: string): number {
    const parked = this.suspended.get(domain.toLowerCase());
    this.suspended.delete(domain.toLowerCase());
    for (const id of parked ?? []) {
      const item = this.queue.get(id);
      if (item) this.queue.schedule(item);
    }
    this.pump();
    return parked?.length ?? 0;
  }

  suspendedDomains(): string[] {
    return [...this.suspended.keys()];
  }

  /** Stops starting attempts and waits up to `boundMs` for those in flight; then aborts the rest. */
  async stop(boundMs: number): Promise<{ aborted: number }> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.work.clear();
    if (this.inFlight.size === 0) return { aborted: 0 };
    let bound: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.work.onIdle().then(() => false),
      new Promise<boolean>((resolve) => (bound = setTimeout(() => resolve(true), boundMs))),
    ]);
    clearTimeout(bound);
    const aborted = timedOut ? this.inFlight.size : 0;
    if (timedOut) {
      this.aborting = true;
      this.deliverer.destroy();
      // Give the aborted attempts a moment to write what they did settle.
      await Promise.race([this.work.onIdle(), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    return { aborted };
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.config.disabled) return this.arm(Infinity);
    const now = this.clock.now();
    while (this.work.size + this.work.pending < this.config.concurrency_max) {
      const due = this.queue.heap.peekDue();
      if (due === undefined || due > now) break;
      const { id } = this.queue.heap.pop()!;
      const item = this.queue.get(id);
      // Stale heap items (entry finished, rescheduled, or already in flight) are skipped;
      // held entries come back with release(), suspended domains with resume().
      if (!item || item.nextAttemptAt !== due || this.inFlight.has(id) || item.held) continue;
      const parked = this.suspended.get(item.domain);
      if (parked) {
        parked.push(id);
        continue;
      }
      const admission = this.gate.admit(item.domain, id);
      if (!admission.go) {
        // Waiting for a connection slot (parked in the gate) or for a dead destination's backoff.
        if (admission.retryAt !== undefined) {
          item.nextAttemptAt = admission.retryAt;
          this.queue.schedule(item);
        }
        continue;
      }
      this.inFlight.add(id);
      void this.work.add(() => this.attempt(item));
    }
    this.arm(this.queue.heap.peekDue() ?? Infinity);
  }

  private arm(due: number): void {
    if (due === this.timerDue && this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = due;
    if (due === Infinity) return;
    const delay = Math.min(Math.max(due - this.clock.now(), 0), MAX_TIMER_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.pump();
    }, delay);
  }

  private async attempt(item: QueueItem): Promise<void> {
    let unreachable = false;
    let entry: QueueEntry | undefined;
    try {
      entry = await this.entryOf(item);
      const now = this.clock.now();
      if (now > entry.queuedAt + this.config.max_queue_lifetime * 1000) {
        await this.settler.finish(entry, expireEntry(entry, now), true);
        return;
      }
      const postpone = await this.hooks?.sendEmail(entry);
      if (postpone?.action === 'delay') {
        entry.nextAttemptAt = now + postpone.seconds * 1000;
        return;
      }
      entry.attempts += 1;
      const started = this.clock.now();
      let outcome = await this.deliverer.deliver(entry);
      unreachable = !!outcome.unreachable && !this.aborting;
      const durationMs = this.clock.now() - started;
      if (this.aborting) {
        // Sessions cut short by shutdown are not the remote's fault: record only what was settled.
        outcome = { ...outcome, recipients: outcome.recipients.filter((r) => r.result !== 'deferred') };
      }
      const applied = applyOutcome(entry, outcome, {
        now: this.clock.now(),
        schedule: this.schedule,
        lifetime: this.config.max_queue_lifetime,
      });
      const records = await this.settler.askDeferred(entry, applied.records, applied.finished);
      if (!records) return;
      await this.settler.finish(entry, records, applied.finished, outcome);
      this.emit('attempt', entry, records, durationMs);
    } catch (err) {
      if (!entry && isGone(err)) {
        // Its files are gone (removed by hand): nothing left to deliver.
        this.queue.delete(item.id);
        this.logger.warn({ id: item.id }, 'queue entry vanished from disk; dropped');
      } else {
        // A local fault (e.g. the spool cannot be written) leaves the entry on disk as it
        // was; it is tried again later rather than lost.
        item.nextAttemptAt = this.clock.now() + 60_000;
        if (entry) entry.nextAttemptAt = item.nextAttemptAt;
        this.logger.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code }, id: item.id }, 'attempt failed locally; retrying in 60 s');
      }
    } finally {
      this.inFlight.delete(item.id);
      if (this.queue.has(item.id)) {
        if (entry) copyTiming(item, entry);
        // Between attempts only the head stays in memory.
        item.entry = undefined;
        this.queue.schedule(item);
      }
      for (const id of this.gate.finished(item.domain, unreachable)) {
        const waiting = this.queue.get(id);
        if (waiting) this.queue.schedule(waiting);
      }
      this.pump();
    }
  }
}
