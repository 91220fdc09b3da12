import type { QueueOperations } from '../scheduler/index.js';
import type { QueueEntry } from '../spool/index.js';
import { entryState } from './metrics.js';
import type { EntryState } from './metrics.js';
import { addressMatcher, sliced } from './queue-scan.js';

type QueueView = Pick<QueueOperations, 'all' | 'isInFlight' | 'load' | 'nextAttempt' | 'parkedReason'>;

/** How the queue tools name a parked entry's reason. */
const WAITING_TEXT = { suspended: 'suspended', backoff: 'backoff', connection_limit: 'connection limit', rate_limited: 'rate limited' } as const;

export interface QueueFilter {
  readonly domain?: string;
  readonly state?: EntryState;
  /** Only entries queued at least this many seconds ago. */
  readonly olderThan?: number;
  readonly newerThan?: number;
  /** An address (domain part in any case), `@domain`, or `<>` (queue-scan.ts addressMatcher). */
  readonly sender?: string;
  readonly recipient?: string;
  readonly offset: number;
  readonly limit: number;
}

export interface EntrySummary {
  readonly id: string;
  readonly message_id: string;
  readonly domain: string;
  readonly sender: string;
  /** Every recipient of the entry, with where it stands. */
  readonly recipients: readonly { readonly address: string; readonly state: string }[];
  readonly size: number;
  readonly state: EntryState;
  readonly attempts: number;
  readonly queued_at: string;
  readonly next_attempt_at: string;
  readonly last_reply: string | null;
  /** Why it waits though it is due, in words ("rate limited", "connection limit", "suspended", "backoff"); null when it does not. */
  readonly waiting: string | null;
}

function waitingText(queue: QueueView, id: string): string | null {
  const reason = queue.parkedReason?.(id);
  return reason ? WAITING_TEXT[reason] : null;
}

function summary(queue: QueueView, e: QueueEntry, state: EntryState): EntrySummary {
  const last = e.recipients.find((r) => r.lastReply && r.state !== 'delivered')?.lastReply;
  return {
    id: e.id,
    message_id: e.messageId,
    domain: e.domain,
    sender: e.sender,
    recipients: e.recipients.map((r) => ({ address: r.address, state: r.state })),
    size: e.size,
    state,
    attempts: e.attempts,
    queued_at: new Date(e.queuedAt).toISOString(),
    next_attempt_at: new Date(queue.nextAttempt(e)).toISOString(),
    last_reply: last ? `${last.code}${last.enhanced ? ' ' + last.enhanced : ''} ${last.text}` : null,
    waiting: waitingText(queue, e.id),
  };
}

/** Reads an entry for a filter, letting the event loop run after every few reads (the spool may read synchronously). */
const LOADS_PER_TURN = 64;

/**
 * One page of the queue, in arrival order. Filtering uses the heads in memory; only the
 * page's entries are read from disk, so a million queued entries cost one pass, not a
 * million reads. No body is read. A sender filter reads every entry the other filters
 * leave (a recipient filter only those of the recipient's domain); the pass is sliced,
 * so that it never holds up the event loop.
 */
export async function listQueue(queue: QueueView, filter: QueueFilter, now: number): Promise<{ total: number; entries: EntrySummary[] }> {
  const page: { id: string; state: EntryState; entry?: QueueEntry }[] = [];
  const sender = filter.sender === undefined ? undefined : addressMatcher(filter.sender);
  const recipient = filter.recipient === undefined ? undefined : addressMatcher(filter.recipient);
  let total = 0;
  let loads = 0;
  for await (const e of sliced(queue.all())) {
    if (filter.domain && e.domain !== filter.domain) continue;
    if (recipient?.domain !== undefined && e.domain !== recipient.domain) continue;
    const age = (now - e.queuedAt) / 1000;
    if (filter.olderThan !== undefined && age < filter.olderThan) continue;
    if (filter.newerThan !== undefined && age > filter.newerThan) continue;
    const state = entryState(e, queue.isInFlight(e.id));
    if (filter.state && state !== filter.state) continue;
    let entry: QueueEntry | undefined;
    if (sender || recipient) {
      if (++loads % LOADS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      entry = await queue.load(e.id);
      if (!entry) continue;
      if (sender && !sender.test(entry.sender)) continue;
      if (recipient && !entry.recipients.some((r) => recipient.test(r.address))) continue;
    }
    if (total >= filter.offset && page.length < filter.limit) page.push({ id: e.id, state, entry });
    total++;
  }
  const loaded = await Promise.all(page.map(async ({ id, state, entry }) => ({ entry: entry ?? (await queue.load(id)), state })));
  // An entry that finished between the pass and its read is simply not on the page.
  return { total, entries: loaded.filter((l) => l.entry).map((l) => summary(queue, l.entry!, l.state)) };
}

export function showEntry(queue: QueueView, e: QueueEntry) {
  return { ...summary(queue, e, entryState(e, queue.isInFlight(e.id))), dsn: e.dsn, recipients: e.recipients, last_peer: e.lastPeer ?? null, held: !!e.held };
}
