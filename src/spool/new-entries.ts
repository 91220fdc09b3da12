import type { EntryDraft, QueueEntry } from './types.js';

/** The entries a message is queued with, one per draft, before any attempt. */
export function newEntries(messageId: string, drafts: readonly EntryDraft[], size: number, now: number): QueueEntry[] {
  return drafts.map((d, i) => ({
    ...d,
    recipients: d.recipients.map((r) => ({ ...r })),
    id: `${messageId}.${i + 1}`,
    messageId,
    queuedAt: now,
    size,
    entriesOfMessage: drafts.length,
    attempts: 0,
    tempFailures: 0,
    nextAttemptAt: now,
  }));
}
