import type { Clock, DeliveryOutcome, RecipientDisposition, SmtpReply } from '../core/index.js';
import type { HookRunner } from '../hooks/index.js';
import type { Logger } from '../log/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';

/** What plugins' deferred, bounce and delivered hooks are shown of a reply: no `remote`. */
const hookReply = (reply: SmtpReply): SmtpReply => ({ code: reply.code, enhanced: reply.enhanced, text: reply.text });

/** Queues the reports an attempt's dispositions call for; `outcome` is the attempt's, absent for an expiry or an operator's bounce. */
export type Reporter = (entry: QueueEntry, events: readonly RecipientDisposition[], outcome?: DeliveryOutcome) => Promise<void>;

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
  /** Each disposition, once its entry's state is on disk: the log, plugins and metrics hear of it there. */
  onDisposition(event: RecipientDisposition, entry: QueueEntry): void;
}

/**
 * What happens after an attempt has been decided: the entry's state to disk, its
 * dispositions told, plugins asked (deferred, bounce, delivered), reports queued, and a
 * finished entry removed. Operator bounces and expiries go the same way.
 */
export class AttemptSettler {
  constructor(private readonly deps: SettleDeps) {}

  /**
   * The deferred hook may change an attempt's delay or drop the entry; returns the
   * dispositions to tell, or undefined when the entry was dropped.
   */
  async askDeferred(entry: QueueEntry, events: RecipientDisposition[], finished: boolean): Promise<RecipientDisposition[] | undefined> {
    const deferred = events.find((e) => e.kind === 'TransientFailure');
    if (!this.deps.hooks || finished || !deferred) return events;
    const now = this.deps.clock.now();
    const verdict = await this.deps.hooks.deferred(entry, { delay: Math.round((entry.nextAttemptAt - now) / 1000), reply: hookReply(deferred.reply) });
    if (verdict?.action === 'drop') {
      await this.deps.spool.remove(entry);
      this.deps.forget(entry.id);
      this.deps.logger.info({ id: entry.id, recipients: events.map((e) => e.recipient) }, 'entry dropped by a deferred hook');
      return undefined;
    }
    if (verdict?.action === 'delay') {
      this.deps.postpone(entry, now + verdict.seconds * 1000);
      const at = new Date(entry.nextAttemptAt);
      return events.map((e) => (e.kind === 'TransientFailure' ? { ...e, nextAttemptAt: at } : e));
    }
    return events;
  }

  async finish(entry: QueueEntry, events: RecipientDisposition[], finished: boolean, outcome?: DeliveryOutcome): Promise<void> {
    // A deferred entry's state reaches the disk before the log says so.
    if (!finished) await this.deps.spool.update(entry);
    for (const event of events) this.deps.onDisposition(event, entry);
    // Reports read the original's body, so a finished entry leaves the queue only after them.
    let reportable = events;
    const bounced = events.filter((e) => e.kind === 'Bounce');
    if (this.deps.hooks && bounced.length > 0) {
      const verdict = await this.deps.hooks.bounce(entry, { recipients: bounced.map((e) => e.recipient), reply: hookReply(bounced[0].reply) });
      if (verdict?.action === 'suppress') reportable = events.filter((e) => e.kind !== 'Bounce');
    }
    if (this.deps.reporter) await this.deps.reporter(entry, reportable, outcome);
    const delivered = events.filter((e) => e.kind === 'Delivery');
    if (this.deps.hooks && delivered.length > 0) {
      const { peer, tls } = delivered[0];
      await this.deps.hooks.delivered(entry, {
        recipients: delivered.map((e) => e.recipient),
        reply: hookReply(delivered[0].reply),
        peer: peer ? { name: peer.name, address: peer.address, port: peer.port } : null,
        tls,
      });
    }
    if (finished) {
      await this.deps.spool.remove(entry);
      this.deps.forget(entry.id);
    }
  }
}
