import { z } from 'zod';
import type { QueueEntry } from './types.js';

// `remote` says which mail exchanger gave the reply: a report written after a restart
// must still tell a remote's verdict from Tern's own (RFC 3464 §2.3.5, §2.3.6).
const reply = z.object({
  code: z.number().int(),
  enhanced: z.string().optional(),
  text: z.string(),
  remote: z.object({ name: z.string(), address: z.string() }).optional(),
});

// The on-disk form is versioned so that a later Tern can read what an earlier one wrote.
const entrySchema = z.object({
  v: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9]+\.\d+$/),
  messageId: z.string().regex(/^[A-Za-z0-9]+$/),
  headerMessageId: z.string().optional(),
  domain: z.string(),
  headerPrefix: z.string().optional(),
  sender: z.string(),
  recipients: z
    .array(
      z.object({
        address: z.string().min(1),
        state: z.enum(['pending', 'delivered', 'deferred', 'failed']),
        lastReply: reply.optional(),
        dsn: z
          .object({
            notify: z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).optional(),
            orcpt: z.string().optional(),
          })
          .optional(),
        delayReported: z.boolean().optional(),
      }),
    )
    .min(1),
  dsn: z.object({ ret: z.enum(['FULL', 'HDRS']).optional(), envid: z.string().optional() }),
  smtpUtf8: z.boolean(),
  bodyType: z.enum(['7bit', '8bitmime']),
  queuedAt: z.number(),
  size: z.number().int().nonnegative(),
  // QueueEntry.entriesOfMessage; the key keeps its first name so that a queue reads back
  // in Tern versions before and after the rename.
  siblings: z.number().int().positive(),
  attempts: z.number().int().nonnegative(),
  tempFailures: z.number().int().nonnegative(),
  nextAttemptAt: z.number(),
  held: z.boolean().optional(),
  lastPeer: z.object({ name: z.string(), address: z.string(), port: z.number() }).optional(),
});

export function encodeEntry(entry: QueueEntry): string {
  const { entriesOfMessage, ...rest } = entry;
  return JSON.stringify({ v: 1, ...rest, siblings: entriesOfMessage });
}

/** Parses an entry file; throws with a readable reason when the file is not a valid entry. */
export function decodeEntry(text: string): QueueEntry {
  return parseEntry(JSON.parse(text));
}

/** A message's entries as queued, as one JSON array: what a message file's trailer and a segment record hold. */
export function encodeEntries(entries: readonly QueueEntry[]): Buffer {
  return Buffer.from(`[${entries.map(encodeEntry).join(',')}]`);
}

/** Parses what encodeEntries wrote; throws, saying why, when it is not that. */
export function decodeEntries(json: string): QueueEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`trailer is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new Error('trailer has no entries');
  return raw.map(parseEntry);
}

/** Checks an already parsed entry. */
export function parseEntry(raw: unknown): QueueEntry {
  const parsed = entrySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid entry: ${issue.path.join('.')}: ${issue.message}`);
  }
  const { v: _version, siblings, ...entry } = parsed.data;
  return { ...entry, entriesOfMessage: siblings };
}
