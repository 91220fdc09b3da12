import type { Clock, DeliveryOutcome, SmtpReply } from '../core/index.js';
import type { HookRunner } from '../hooks/index.js';
import type { DispositionRecord, Logger } from '../log/index.js';
import { logDisposition } from '../log/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';

function replyOf(record: DispositionRecord): SmtpReply {
  return { code: record.response.code, enhanced: record.response.enhanced_code ?? undefined, text: record.response.content };
}

/** Queues the reports an attempt's dispositions call for; `outcome` is the attempt's, absent for an expiry or an operator's bounce. */
export type Reporter = (entry: QueueEntry, records: readonly DispositionRecord[], outcome?: DeliveryOutcome) => Promise<void>;

export interface SettleDeps {
  readonly spool: Spool;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly hooks?: HookRunner;
  /** Called with each attempt's dispositions before a finished entry is removed (DSNs). */
  readonly reporter?: Reporter;
  /** The entry left the queue: the scheduler drops it from memory. */
  forget(id: string): void;
  /** A hook moved the entry's next attempt: the scheduler, which owns due times, records it. */
  postpone(entry: QueueEntry, at: number): void;
  onDisposition(record: DispositionRecord, entry: QueueEntry): void;
}

/**
 * What happens after an attempt has been decided: the entry's state to disk, its
 * disposition records logged, plugins asked (deferred, bounce, delivered), reports
 * queued, and a finished entry removed. Operator bounces and expiries go the same way.
 */
export class AttemptSettler {
  constructor(private readonly deps: SettleDeps) {}

  /**
   * The deferred hook may change an attempt's delay or drop the entry; returns the records
   * to log, or undefined when the entry was dropped.
   */
  async askDeferred(entry: QueueEntry, records: DispositionRecord[], finished: boolean): Promise<DispositionRecord[] | undefined> {
    const deferred = records.find((r) => r.type === 'TransientFailure');
    if (!this.deps.hooks || finished || !deferred) return records;
    const now = this.deps.clock.now();
    const verdict = await this.deps.hooks.deferred(entry, { delay: Math.round((entry.nextAttemptAt - now) / 1000), reply: replyOf(deferred) });
    if (verdict?.action === 'drop') {
      await this.deps.spool.remove(entry);
      this.deps.forget(entry.id);
      this.deps.logger.info({ id: entry.id, recipients: records.map((r) => r.recipient) }, 'entry dropped by a deferred hook');
      return undefined;
    }
    if (verdict?.action === 'delay') {
      this.deps.postpone(entry, now + verdict.seconds * 1000);
      const at = new Date(entry.nextAttemptAt).toISOString();
      return records.map((r) => (r.type === 'TransientFailure' ? { ...r, next_attempt_at: at } : r));
    }
    return records;
  }

  async finish(entry: QueueEntry, records: DispositionRecord[], finished: boolean, outcome?: DeliveryOutcome): Promise<void> {
    // A deferred entry's state reaches the disk before the log says so.
    if (!finished) await this.deps.spool.update(entry);
    for (const record of records) {
      logDisposition(this.deps.logger, record);
      this.deps.onDisposition(record, entry);
    }
    // Reports read the original's body, so a finished entry leaves the queue only after them.
    let reportable = records;
    const bounced = records.filter((r) => r.type === 'Bounce');
    if (this.deps.hooks && bounced.length > 0) {
      const verdict = await this.deps.hooks.bounce(entry, { recipients: bounced.map((r) => r.recipient!), reply: replyOf(bounced[0]) });
      if (verdict?.action === 'suppress') reportable = records.filter((r) => r.type !== 'Bounce');
    }
    if (this.deps.reporter) await this.deps.reporter(entry, reportable, outcome);
    const delivered = records.filter((r) => r.type === 'Delivery');
    if (this.deps.hooks && delivered.length > 0) {
      await this.deps.hooks.delivered(entry, { recipients: delivered.map((r) => r.recipient!), reply: replyOf(delivered[0]), peer: delivered[0].peer, tls: !!delivered[0].tls });
    }
    if (finished) {
      await this.deps.spool.remove(entry);
      this.deps.forget(entry.id);
    }
  }
}
