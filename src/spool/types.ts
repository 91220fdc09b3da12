import type { Writable, Readable } from 'node:stream';
import type { EnvelopeDsn, Recipient } from '../core/index.js';

/** One destination's share of an accepted message: what one SMTP transaction will carry. */
export interface QueueEntry {
  /** `<messageId>.<n>`: unique in the queue, stable for the entry's life. */
  readonly id: string;
  readonly messageId: string;
  readonly domain: string;
  readonly sender: string;
  readonly recipients: Recipient[];
  readonly dsn: EnvelopeDsn;
  readonly smtpUtf8: boolean;
  readonly bodyType: '7bit' | '8bitmime';
  /** Epoch ms when the message was accepted. */
  readonly queuedAt: number;
  readonly size: number;
  /** Delivery attempts made so far. */
  attempts: number;
  /** Temporary failures so far; what the retry schedule counts. */
  tempFailures: number;
  /** Epoch ms when the next attempt is due. */
  nextAttemptAt: number;
  /** Put on hold by the operator: never attempted until released. */
  held?: boolean;
  /** Where the last attempt ended up, for the operator. */
  lastPeer?: { name: string; address: string; port: number };
}

/** What a new entry needs; the spool fills in the ids and counters. */
export type EntryDraft = Pick<QueueEntry, 'domain' | 'sender' | 'recipients' | 'dsn' | 'smtpUtf8' | 'bodyType'>;

/** A message being received: its body streams to disk before any entry exists. */
export interface IncomingMessage {
  readonly messageId: string;
  /** Where the body goes, byte for byte as it will be sent (CRLF line ends, not dot-stuffed). */
  readonly body: Writable;
  /**
   * Makes the message durable with the given entries. When this resolves, the body and
   * every entry are on disk (files and directory entries fsynced): only then may the
   * client be told 250.
   */
  commit(drafts: readonly EntryDraft[], now: number): Promise<QueueEntry[]>;
  /** Drops everything written so far; nothing of it survives. */
  abort(): Promise<void>;
}

export interface RecoveryReport {
  readonly entries: QueueEntry[];
  /** Entries moved to `corrupt/` because they could not be read. */
  readonly corrupt: { file: string; error: string }[];
  /** Leftovers of acceptances that never completed, removed. */
  readonly removedIncomplete: number;
  readonly removedTemporary: number;
  readonly removedOrphanBodies: number;
}

/** The queue on disk. Every method that resolves has made its change durable. */
export interface Spool {
  /** Creates the layout if needed, cleans up after a crash and returns every live entry. */
  open(): Promise<RecoveryReport>;
  receive(): Promise<IncomingMessage>;
  /** Persists an entry's changed state (attempts, next attempt, recipient states); O(entry), never the body. */
  update(entry: QueueEntry): Promise<void>;
  /** Removes a finished entry; the body goes when the message's last entry does. */
  remove(entry: QueueEntry): Promise<void>;
  readBody(entry: QueueEntry): Readable;
  close(): Promise<void>;
}
