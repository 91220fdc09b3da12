import type { DeliveryOutcome, RecipientDisposition, RecipientOutcome, SmtpReply } from '../core/index.js';
import { formatReply } from '../smtp/index.js';
import type { QueueEntry } from '../spool/index.js';
import type { RetrySchedule } from './retry-schedule.js';

export interface AppliedOutcome {
  /** One disposition per recipient whose fate this attempt decided or postponed. */
  readonly events: RecipientDisposition[];
  /** Every recipient has its final state: the entry leaves the queue. */
  readonly finished: boolean;
  /** When the deferred recipients are tried again (the retry schedule's answer), if any are. */
  readonly nextAttemptAt?: number;
}

interface Context {
  readonly now: number;
  readonly schedule: RetrySchedule;
  /** max_queue_lifetime in seconds. */
  readonly lifetime: number;
}

/** What every disposition of this attempt (or of this expiry, this operator's bounce) shares. */
function common(entry: QueueEntry, outcome: DeliveryOutcome | undefined, now: number) {
  return {
    entry,
    attempt: entry.attempts,
    ...(outcome?.peer ? { peer: outcome.peer } : {}),
    tls: outcome?.tls ?? false,
    ...(outcome?.tlsInfo ? { tlsInfo: outcome.tlsInfo } : {}),
    at: new Date(now),
  };
}

export function expiryReply(entry: QueueEntry, now: number, last: SmtpReply | undefined): SmtpReply {
  const hours = ((now - entry.queuedAt) / 3600000).toFixed(1);
  return {
    code: 551,
    enhanced: '5.4.7',
    text: `Delivery time expired: message queued at ${new Date(entry.queuedAt).toISOString()} was still undelivered after ${hours} h` +
      (last ? `; last error: ${formatReply(last)}` : ''),
  };
}

/**
 * Folds one attempt's per-recipient outcomes into the entry (mutating it) and decides
 * what happens next: delivered and failed recipients are final; deferred ones either
 * wait for the retry schedule, or bounce when the retries are used up, or expire when
 * the next attempt would fall after max_queue_lifetime.
 */
export function applyOutcome(entry: QueueEntry, outcome: DeliveryOutcome, ctx: Context): AppliedOutcome {
  const base = common(entry, outcome, ctx.now);
  const events: RecipientDisposition[] = [];
  // Where this attempt ended up, for `tern queue show`.
  if (outcome.peer) entry.lastPeer = { name: outcome.peer.name, address: outcome.peer.address, port: outcome.peer.port };
  const byAddress = new Map<string, RecipientOutcome>(outcome.recipients.map((r) => [r.address, r]));
  const deferred: { address: string; reply: SmtpReply }[] = [];
  let retryAt: number | undefined;

  for (const rcpt of entry.recipients) {
    const result = byAddress.get(rcpt.address);
    if (!result || rcpt.state === 'delivered' || rcpt.state === 'failed') continue;
    rcpt.lastReply = result.reply;
    if (result.result === 'delivered') {
      rcpt.state = 'delivered';
      events.push({ ...base, kind: 'Delivery', recipient: rcpt.address, reply: result.reply });
    } else if (result.result === 'failed') {
      rcpt.state = 'failed';
      events.push({ ...base, kind: 'Bounce', recipient: rcpt.address, reply: result.reply });
    } else {
      rcpt.state = 'deferred';
      deferred.push({ address: rcpt.address, reply: result.reply });
    }
  }

  if (deferred.length > 0) {
    entry.tempFailures += 1;
    const delay = ctx.schedule.delayAfter(entry.tempFailures);
    const next = delay === undefined ? undefined : ctx.now + delay * 1000;
    const expiresAt = entry.queuedAt + ctx.lifetime * 1000;
    for (const d of deferred) {
      const rcpt = entry.recipients.find((r) => r.address === d.address)!;
      if (next === undefined) {
        rcpt.state = 'failed';
        events.push({ ...base, kind: 'Bounce', recipient: d.address, reply: d.reply });
      } else if (next > expiresAt) {
        rcpt.state = 'failed';
        // lastReply keeps the attempt's reply: the report quotes it, not the expiry (RFC 3464 §2.3.6).
        events.push({ ...base, kind: 'Expiration', recipient: d.address, reply: expiryReply(entry, ctx.now, d.reply) });
      } else {
        events.push({ ...base, kind: 'TransientFailure', recipient: d.address, reply: d.reply, nextAttemptAt: new Date(next) });
      }
    }
    retryAt = next;
  }
  const finished = entry.recipients.every((r) => r.state === 'delivered' || r.state === 'failed');
  return { events, finished, nextAttemptAt: retryAt };
}

/**
 * Fails every unsettled recipient of an entry with a reply of Tern's own (expiry, operator
 * bounce). An expiry leaves lastReply alone, so that its report can quote the last real one.
 */
function failUnsettled(entry: QueueEntry, now: number, kind: 'Expiration' | 'Bounce', replyFor: (last?: SmtpReply) => SmtpReply): RecipientDisposition[] {
  const base = common(entry, undefined, now);
  const events: RecipientDisposition[] = [];
  for (const rcpt of entry.recipients) {
    if (rcpt.state === 'delivered' || rcpt.state === 'failed') continue;
    const reply = replyFor(rcpt.lastReply);
    rcpt.state = 'failed';
    if (kind === 'Bounce') rcpt.lastReply = reply;
    events.push({ ...base, kind, recipient: rcpt.address, reply });
  }
  return events;
}

/** Expires every unfinished recipient of an entry that outlived max_queue_lifetime without an attempt. */
export function expireEntry(entry: QueueEntry, now: number): RecipientDisposition[] {
  return failUnsettled(entry, now, 'Expiration', (last) => expiryReply(entry, now, last));
}

/** The operator's bounce: every unfinished recipient fails with the given reply. */
export function bounceEntry(entry: QueueEntry, now: number, reply: SmtpReply): RecipientDisposition[] {
  return failUnsettled(entry, now, 'Bounce', () => reply);
}
