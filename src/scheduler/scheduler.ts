import { EventEmitter } from 'node:events';
import PQueue from 'p-queue';
import { closedError } from '../core/index.js';
import type { AdminRequest, Clock, Closable } from '../core/index.js';
import type { HookRunner } from '../hooks/index.js';
import type { OutboundConfig, Route } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { EntryHead, QueueEntry, Spool } from '../spool/index.js';
import { EntryNotFoundError } from '../spool/index.js';
import { applyOutcome, expireEntry } from './apply-outcome.js';
import { Admission, drainWithin, gateSettings } from './admission.js';
import type { AttemptVerdict, TicketUse } from './admission.js';
import type { DestinationGate, ParkReason, Suspension } from './destinations.js';
import type { ShapingTicket } from './shaper.js';
import { EntryActions } from './entry-actions.js';
import type { QueueOperations, ResumeOptions, SuspendOptions } from './queue-operations.js';
import { RetrySchedule } from './retry-schedule.js';
import { QueueIndex } from './queue-index.js';
import type { QueueItem } from './queue-index.js';
import { AttemptSettler } from './settle.js';
import { Suspensions } from './suspensions.js';
import type { Deliverer, SchedulerEvents, SchedulerOptions } from './scheduler-options.js';

export type { Deliverer, SchedulerEvents, SchedulerOptions } from './scheduler-options.js';

// setTimeout's ceiling; a later due time just re-arms when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Due entries looked at per turn of the event loop. */
const PUMP_SLICE = 1000;
const isGone = (err: unknown) => err instanceof EntryNotFoundError;

/**
 * Decides when each queue entry is attempted: a min-heap of due times behind a single
 * timer, pulled into a p-queue only while fewer than concurrency_max attempts are in
 * flight, so that a flush of a huge queue never builds a huge backlog in memory. Entries
 * that come due but may not start (suspended domain, dead destination, connection limit)
 * park in the DestinationGate until it hands them back.
 */
export class Scheduler extends EventEmitter<SchedulerEvents> implements QueueOperations, Closable {
  private readonly queue = new QueueIndex();
  private readonly inFlight = new Set<string>();
  private readonly work: PQueue;
  private timer?: NodeJS.Timeout;
  private timerDue = Infinity;
  private config: OutboundConfig;
  private schedule: RetrySchedule;
  private stopped = false;
  private aborting = false;
  private readonly gate: DestinationGate;
  private readonly admission: Admission;
  private readonly settler: AttemptSettler;
  private readonly actions: EntryActions;
  private readonly spool: Spool;
  private readonly deliverer: Deliverer;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly hooks?: HookRunner;
  private readonly suspended: Suspensions;
  private closing?: Promise<{ aborted: number }>;

  constructor(options: SchedulerOptions) {
    super();
    ({ config: this.config, spool: this.spool, deliverer: this.deliverer, logger: this.logger, clock: this.clock, hooks: this.hooks } = options);
    const { spool, logger, clock, hooks } = options;
    this.settler = new AttemptSettler({
      spool,
      logger,
      clock,
      hooks,
      reporter: options.reporter,
      forget: (id) => this.queue.delete(id),
      postpone: (entry, at) => this.postpone(entry.id, at),
      onDisposition: (event, entry) => this.emit('disposition', event, entry),
    });
    this.actions = new EntryActions({
      queue: this.queue,
      busy: this.inFlight,
      spool,
      settler: this.settler,
      clock,
      logger,
      load: (item) => this.entryOf(item),
      isGone,
      wake: () => this.pump(),
      onAdmin: (event, entry) => this.emit('disposition', event, entry),
    });
    this.schedule = RetrySchedule.fromConfig(this.config);
    const [limit, backoff] = gateSettings(this.config, options.routes);
    this.admission = new Admission({
      ...options,
      limit,
      backoff,
      item: (id) => this.queue.get(id),
      inFlight: (id) => this.inFlight.has(id),
      idleMs: () => this.config.idle_timeout * 1000,
      endLease: (lease) => this.deliverer.endLease?.(lease) ?? Promise.resolve(),
      start: (item, ticket) => this.start(item, ticket),
      requeue: (ids) => {
        this.requeue(ids);
        this.pump();
      },
      wake: () => this.pump(),
    });
    this.gate = this.admission.gate;
    this.suspended = new Suspensions({ gate: this.gate, store: options.suspensions, clock, logger, requeue: (ids) => this.requeue(ids), wake: () => this.pump(), liftBackoff: (d, here) => this.admission.liftBackoff(d, here) });
    this.work = new PQueue({ concurrency: this.config.concurrency_max });
    // A slot came free: start what is due (while every slot is busy no timer waits for it).
    this.work.on('next', () => this.pump());
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

  /** The whole entry as stored (new entries are still in memory). */
  private async entryOf(item: QueueItem): Promise<QueueEntry> {
    return item.entry ?? (await this.spool.load(item.id));
  }

  updateConfig(config: OutboundConfig, routes?: ReadonlyMap<string, Route>): void {
    this.config = config;
    this.gate.configure(...gateSettings(config, routes));
    this.schedule = RetrySchedule.fromConfig(config);
    this.work.concurrency = config.concurrency_max;
    this.pump();
  }

  /** limits.ini changed: entries waiting for a slot or a token are keyed and limited anew. */
  reshape(): void {
    this.requeue(this.admission.reshape());
    this.pump();
  }

  /**
   * SIGHUP and `tern queue flush`: every waiting entry (of one domain, when given) is due
   * now, and dead destinations are tried again at once (postqueue -f). An entry in flight
   * keeps its one attempt; held entries and suspended domains stay as they are.
   */
  flush(domain?: string): number {
    if (this.closed) throw closedError('scheduler');
    const name = domain?.toLowerCase();
    const flushed = this.queue.flush(this.clock.now(), name, (item) => this.inFlight.has(item.id));
    const released = this.requeue(this.admission.liftBackoff(name));
    this.pump();
    return flushed + released;
  }

  all(): IterableIterator<EntryHead> {
    return this.queue.values();
  }

  async load(id: string): Promise<QueueEntry | undefined> {
    const item = this.queue.get(id);
    if (!item) return undefined;
    try {
      return this.queue.withTiming(item, await this.entryOf(item));
    } catch (err) {
      if (isGone(err)) return undefined;
      throw err;
    }
  }

  isInFlight(id: string): boolean {
    return this.inFlight.has(id);
  }

  nextAttempt(head: EntryHead): number {
    const opens = this.gate.closedUntil(head.domain);
    return opens !== undefined && opens > head.nextAttemptAt ? opens : head.nextAttemptAt;
  }

  async hold(id: string, by?: AdminRequest): Promise<QueueEntry> {
    this.refuseWhenClosed();
    return this.actions.hold(id, by);
  }

  async release(id: string, by?: AdminRequest): Promise<QueueEntry> {
    this.refuseWhenClosed();
    return this.actions.release(id, by);
  }

  async remove(id: string, by?: AdminRequest): Promise<QueueEntry> {
    this.refuseWhenClosed();
    return this.actions.remove(id, by);
  }

  async bounce(id: string, by?: AdminRequest, text?: string): Promise<QueueEntry> {
    this.refuseWhenClosed();
    return this.actions.bounce(id, by, text);
  }

  /** Operator actions after close are refused: the queue is being put away. */
  private refuseWhenClosed(): void {
    if (this.closed) throw closedError('scheduler');
  }

  async suspend(domain: string, options?: SuspendOptions): Promise<Suspension> {
    this.refuseWhenClosed();
    return this.suspended.suspend(domain, options);
  }

  async resume(domain: string, options?: ResumeOptions): Promise<number> {
    this.refuseWhenClosed();
    return this.suspended.resume(domain, options);
  }

  /** Why an entry that came due waits (the queue view); undefined when it does not. */
  parkedReason(id: string): ParkReason | undefined {
    const item = this.queue.get(id);
    return !item || item.held || this.inFlight.has(id) ? undefined : this.admission.reasonOf(id);
  }

  /** Entries parked, by reason (metrics). */
  parkedCounts(): Record<ParkReason, number> {
    return this.admission.parkedCounts();
  }

  suspensions(): Suspension[] {
    return this.suspended.list();
  }

  /** Queues parked entries again; returns how many are still waiting to be attempted. */
  private requeue(ids: readonly string[]): number {
    let n = 0;
    for (const id of ids) {
      const item = this.queue.get(id);
      if (!item || item.held) continue;
      this.queue.schedule(item);
      n++;
    }
    return n;
  }

  /** A hook moved the next attempt of an entry in flight; its attempt's end queues it. */
  private postpone(id: string, at: number): void {
    const item = this.queue.get(id);
    if (item) this.queue.setDue(item, at);
  }

  /** Destinations backed off after every host refused a session (read-only; metrics). */
  backedOffDomains(): { domain: string; until: number }[] {
    return this.gate.backedOff();
  }

  /** Stops starting attempts and waits up to `boundMs` for those in flight; then aborts the rest. */
  async stop(boundMs: number): Promise<{ aborted: number }> {
    this.stopped = true;
    this.admission.stop();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.work.clear();
    await this.suspended.settled();
    if (this.inFlight.size === 0) return { aborted: 0 };
    let aborted = 0;
    await drainWithin(this.work, boundMs, () => {
      aborted = this.inFlight.size;
      this.aborting = true;
      this.deliverer.destroy();
    });
    return { aborted };
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Graceful: no attempt starts; those in flight get outbound.ini shutdown_timeout, then
   * are aborted. Entries added meanwhile are on disk already and wait for the next start.
   * Idempotent: every call gets the same result.
   */
  close(): Promise<{ aborted: number }> {
    this.closing ??= this.stop(this.config.shutdown_timeout * 1000);
    return this.closing;
  }

  /** Immediate: no attempt starts, those in flight are aborted now (what they settled is kept). */
  destroy(): void {
    this.closing ??= this.stop(0);
    if (this.inFlight.size > 0 && !this.aborting) {
      this.aborting = true;
      this.deliverer.destroy();
    }
  }

  private pump(): void {
    if (this.stopped) return;
    this.suspended.lapse();
    this.admission.lapse();
    if (this.config.disabled) return this.arm(this.admission.wakeAt() ?? Infinity);
    const now = this.clock.now();
    const full = () => this.work.size + this.work.pending >= this.config.concurrency_max;
    // Entries that park (suspended, backed off, shaped) never fill the p-queue, so a flush of
    // a huge queue would walk all of it in one turn; a slice at a time, the rest next turn.
    let slice = PUMP_SLICE;
    while (!full() && slice-- > 0) {
      const due = this.queue.heap.peekDue();
      if (due === undefined || due > now) break;
      const { id } = this.queue.heap.pop()!;
      const item = this.queue.get(id);
      // Stale heap items (entry finished, rescheduled, or already in flight) are skipped;
      // held entries come back with release(), parked ones when the gate hands them back.
      if (!item || item.nextAttemptAt !== due || this.inFlight.has(id) || item.held) continue;
      if (!this.admission.admit(item)) continue;
      this.inFlight.add(id);
      void this.work.add(() => this.attempt(item));
    }
    const due = this.queue.heap.peekDue() ?? Infinity;
    this.arm(Math.min(due <= now && full() ? Infinity : due, this.admission.wakeAt() ?? Infinity));
  }

  /** A shaped entry got its connection slot and message token. */
  private start(item: QueueItem, ticket: ShapingTicket): void {
    this.inFlight.add(item.id);
    void this.work.add(() => this.attempt(item, ticket));
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

  private async attempt(item: QueueItem, ticket?: ShapingTicket): Promise<void> {
    // Only an attempt that reached a remote server says whether the destination is up: an
    // expired entry, a hook's delay, a failed DNS lookup, a local fault or shutdown's abort
    // say nothing (and must not release a backoff for the whole cluster).
    let verdict: AttemptVerdict = 'none';
    let use: TicketUse = 'unused';
    let entry: QueueEntry | undefined;
    try {
      entry = this.queue.attach(item, await this.entryOf(item));
      const now = this.clock.now();
      if (now > entry.queuedAt + this.config.max_queue_lifetime * 1000) {
        await this.settler.finish(entry, expireEntry(entry, now), true);
        return;
      }
      const postpone = await this.hooks?.sendEmail(entry);
      if (postpone?.action === 'delay') {
        this.queue.setDue(item, now + postpone.seconds * 1000);
        return;
      }
      entry.attempts += 1;
      const started = this.clock.now();
      use = 'used';
      let outcome = await this.deliverer.deliver(entry, ticket && { lease: ticket.lease, maxDeliveries: ticket.destination.maxDeliveries, rate: ticket.destination.limits.rate });
      if (outcome.unreachable) {
        if (!this.aborting) verdict = { down: outcome.recipients[0]?.reply ?? { code: 451, enhanced: '4.4.0', text: 'unreachable' } };
      } else if (outcome.peer !== undefined) verdict = 'answered';
      if (outcome.unreachable) use = 'unreachable';
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
      if (applied.nextAttemptAt !== undefined) this.queue.setDue(item, applied.nextAttemptAt);
      const events = await this.settler.askDeferred(entry, applied.events, applied.finished);
      if (!events) return;
      await this.settler.finish(entry, events, applied.finished, outcome);
      this.emit('attempt', entry, events, durationMs);
    } catch (err) {
      if (!entry && isGone(err)) {
        // Its files are gone (removed by hand): nothing left to deliver.
        this.queue.delete(item.id);
        this.logger.warn({ id: item.id }, 'queue entry vanished from disk; dropped');
      } else {
        // A local fault (e.g. the spool cannot be written) leaves the entry on disk as it
        // was; it is tried again later rather than lost.
        this.queue.setDue(item, this.clock.now() + 60_000);
        this.logger.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code }, id: item.id }, 'attempt failed locally; retrying in 60 s');
      }
    } finally {
      this.inFlight.delete(item.id);
      this.queue.detach(item);
      if (this.queue.has(item.id)) this.queue.schedule(item);
      // The slot this frees is filled from the p-queue's 'next' event.
      this.requeue(this.admission.finished(item, verdict, ticket, use));
    }
  }
}
