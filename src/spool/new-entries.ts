import type { EntryDraft, QueueEntry } from './types.js';

/**
 * The entries a message is queued with, one per draft, before any attempt. `size` is what
 * was stored; an entry's size adds its header prefix, which is sent in front of it.
 */
export function newEntries(messageId: string, drafts: readonly EntryDraft[], size: number, now: number): QueueEntry[] {
  return drafts.map((d, i) => ({
    ...d,
    recipients: d.recipients.map((r) => ({ ...r })),
    id: `${messageId}.${i + 1}`,
    messageId,
    queuedAt: now,
    size: size + prefixBytes(d),
    entriesOfMessage: drafts.length,
    attempts: 0,
    tempFailures: 0,
    nextAttemptAt: now,
  }));
}

/** How many bytes of an entry's size are its header prefix (not stored with the body). */
export function prefixBytes(entry: Pick<QueueEntry, 'headerPrefix'>): number {
  return entry.headerPrefix ? Buffer.byteLength(entry.headerPrefix, 'latin1') : 0;
}
