import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { Clock } from '../core/index.js';
import type { AutomationRule } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { FromMatchWorker, ToMatchWorker } from './automation-match-worker.js';

/**
 * How long one rule's pattern may run on one reply line before its worker is terminated.
 * An ordinary pattern takes microseconds on 512 bytes; the patterns regexHazard accepts can
 * still take 0.1–0.4 s on a hostile reply (`a*a*b` on 500 `a`, measured). Well above the
 * first, well below the second: a hostile server costs the worker thread at most this per
 * rule and reply, and the event loop nothing.
 */
export const MATCH_BOUND_MS = 50;

/**
 * Reply lines waiting for the worker at most: past it a line is not matched (and counted),
 * so that a flood of hostile replies while the worker is busy cannot grow memory.
 */
export const MAX_QUEUED_LINES = 1000;

/** One `automation_match_timeout` record per rule (and one `automation_match_dropped`) per this at most. */
const LOG_EVERY_MS = 60_000;

export interface MatcherOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** The bound per rule and reply (tests may shorten it); MATCH_BOUND_MS by default. */
  readonly boundMs?: number;
  readonly maxQueued?: number;
}

interface Job {
  readonly line: string;
  /** The rules to ask, in order (those not answered yet when a worker was lost). */
  rules: readonly AutomationRule[];
  /** The whole rule set they belong to: posted to the worker when it is not the one it holds. */
  readonly ruleSet: readonly AutomationRule[];
  readonly matched: Set<string>;
  readonly resolve: (matched: Set<string>) => void;
}

interface Running {
  readonly job: Job;
  readonly id: number;
  answered: number;
  timer?: NodeJS.Timeout;
}

interface Slot {
  readonly worker: Worker;
  readonly port: MessagePort;
  ready: boolean;
  /** The rule set this worker holds. */
  holds?: readonly AutomationRule[];
}

/**
 * automation.ini's patterns matched in a worker thread with a time bound per rule: a reply
 * line goes to the worker, each rule's answer comes back, and a rule that does not answer
 * within the bound has its worker terminated and replaced; that rule counts as not matched
 * for that line (an `automation_match_timeout` record, rate-limited, names it) and the
 * line's remaining rules are asked of the fresh worker. One line at a time, the rest queued
 * up to a bound. The worker is started at the first line, and holds the rule set of the
 * line it matches (a reload reaches it with the next line).
 */
export class AutomationMatcher {
  private slot?: Slot;
  private running?: Running;
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private readonly boundMs: number;
  private readonly maxQueued: number;
  private readonly timeoutLog = new Map<string, { at: number; suppressed: number }>();
  private droppedLog?: { at: number; suppressed: number };
  /** Rule runs that overran the bound, and lines not matched because the queue was full (since start). */
  timeouts = 0;
  dropped = 0;

  constructor(private readonly options: MatcherOptions) {
    this.boundMs = options.boundMs ?? MATCH_BOUND_MS;
    this.maxQueued = options.maxQueued ?? MAX_QUEUED_LINES;
  }

  /** The names of `rules` whose pattern matches `line`; never rejects (a rule not answered in time is not matched). */
  match(line: string, rules: readonly AutomationRule[], ruleSet: readonly AutomationRule[]): Promise<Set<string>> {
    if (this.closed || rules.length === 0) return Promise.resolve(new Set());
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      this.logDropped();
      return Promise.resolve(new Set());
    }
    return new Promise((resolve) => {
      this.queue.push({ line, rules, ruleSet, matched: new Set(), resolve });
      this.next();
    });
  }

  /** Terminates the worker; lines waiting are not matched. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    const running = this.running;
    this.running = undefined;
    if (running) {
      clearTimeout(running.timer);
      running.job.resolve(running.job.matched);
    }
    for (const job of this.queue.splice(0)) job.resolve(job.matched);
    return this.drop();
  }

  private next(): void {
    if (this.running || this.closed) return;
    const job = this.queue.shift();
    if (!job) {
      // Idle: the port does not keep the daemon alive.
      this.slot?.port.unref();
      return;
    }
    const slot = this.slot ?? this.spawn();
    slot.port.ref();
    this.running = { job, id: this.nextId++, answered: 0 };
    if (slot.holds !== job.ruleSet) {
      this.post(slot, { type: 'rules', rules: job.ruleSet.map((r) => ({ name: r.name, source: r.source })) });
      slot.holds = job.ruleSet;
    }
    this.post(slot, { type: 'match', id: this.running.id, line: job.line, names: job.rules.map((r) => r.name) });
    if (slot.ready) this.arm();
  }

  /** The bound runs from when the worker can answer: a fresh worker's start-up is not the rule's. */
  private arm(): void {
    const running = this.running;
    if (!running) return;
    clearTimeout(running.timer);
    running.timer = setTimeout(() => this.overran(running), this.boundMs);
  }

  private spawn(): Slot {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./automation-match-worker.js', import.meta.url), { workerData: { port: port2 }, transferList: [port2] });
    // The worker never keeps the daemon alive: its listener and timers do (and the port while a line waits).
    worker.unref();
    const slot: Slot = { worker, port: port1, ready: false };
    port1.on('message', (msg: FromMatchWorker) => this.heard(slot, msg));
    worker.on('error', () => undefined); // the exit that follows says it
    worker.on('exit', () => this.lost(slot));
    this.slot = slot;
    return slot;
  }

  private heard(slot: Slot, msg: FromMatchWorker): void {
    if (slot !== this.slot) return;
    if (msg.type === 'ready') {
      slot.ready = true;
      this.arm();
      return;
    }
    const running = this.running;
    if (!running || msg.id !== running.id || msg.index !== running.answered) return;
    if (msg.matched) running.job.matched.add(running.job.rules[msg.index].name);
    running.answered++;
    if (running.answered < running.job.rules.length) return this.arm();
    clearTimeout(running.timer);
    this.running = undefined;
    running.job.resolve(running.job.matched);
    this.next();
  }

  private overran(running: Running): void {
    if (running !== this.running || !this.slot) return;
    // The answers may be in the port already, behind an event loop that was busy itself when
    // the timer came due: read them before blaming the rule.
    const slot = this.slot;
    for (let m = receiveMessageOnPort(slot.port); m && this.running === running; m = receiveMessageOnPort(slot.port)) this.heard(slot, m.message as FromMatchWorker);
    if (this.running !== running) return;
    const { job } = running;
    const rule = job.rules[running.answered];
    this.timeouts++;
    this.logTimeout(rule);
    // The rule counts as not matched on this line; the ones after it are asked of a fresh worker.
    this.running = undefined;
    job.rules = job.rules.slice(running.answered + 1);
    void this.drop();
    if (job.rules.length > 0) this.queue.unshift(job);
    else job.resolve(job.matched);
    this.next();
  }

  /** A worker that exited on its own (a crash): the line it had is asked again of a fresh one, without the rule it was on. */
  private lost(slot: Slot): void {
    if (slot !== this.slot) return;
    this.slot = undefined;
    const running = this.running;
    this.running = undefined;
    if (running) {
      clearTimeout(running.timer);
      const { job } = running;
      if (!slot.ready) {
        // It never started: no fresh one would either; nothing is matched until the next line tries again.
        this.options.logger.error({ event: 'automation_matcher_failed' }, 'the automation match worker did not start; replies are not matched');
        job.resolve(job.matched);
        for (const waiting of this.queue.splice(0)) waiting.resolve(waiting.matched);
        return;
      }
      job.rules = job.rules.slice(running.answered + 1);
      if (job.rules.length > 0) this.queue.unshift(job);
      else job.resolve(job.matched);
    }
    this.next();
  }

  private drop(): Promise<void> {
    const slot = this.slot;
    this.slot = undefined;
    if (!slot) return Promise.resolve();
    slot.port.close();
    return slot.worker.terminate().then(() => undefined);
  }

  private post(slot: Slot, msg: ToMatchWorker): void {
    slot.port.postMessage(msg);
  }

  private logTimeout(rule: AutomationRule): void {
    const now = this.options.clock.now();
    const last = this.timeoutLog.get(rule.name);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    // One entry per rule name ever timed out: bounded by the rule sets an operator writes.
    this.timeoutLog.set(rule.name, { at: now, suppressed: 0 });
    this.options.logger.warn(
      { event: 'automation_match_timeout', rule: rule.name, pattern: rule.source, bound_ms: this.boundMs, suppressed: last?.suppressed ?? 0, timeouts: this.timeouts },
      'an automation pattern overran its time bound on a reply and counts as not matched',
    );
  }

  private logDropped(): void {
    const now = this.options.clock.now();
    const last = this.droppedLog;
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    this.droppedLog = { at: now, suppressed: 0 };
    this.options.logger.warn(
      { event: 'automation_match_dropped', queued: this.queue.length, max_queued: this.maxQueued, suppressed: last?.suppressed ?? 0, dropped: this.dropped },
      'automation replies queued past the bound: a reply was not matched',
    );
  }
}
