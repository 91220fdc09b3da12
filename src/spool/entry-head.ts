import type { EntryHead, QueueEntry } from './types.js';

/**
 * The head of an entry. `messageId` may be passed to share one string among the
 * entries of a message (a million heads in memory).
 */
export function entryHead(e: QueueEntry, messageId = e.messageId): EntryHead {
  return { id: e.id, messageId, domain: e.domain, queuedAt: e.queuedAt, nextAttemptAt: e.nextAttemptAt, attempts: e.attempts, tempFailures: e.tempFailures, held: e.held };
}
