import type { Writable, Readable } from 'node:stream';
import type { EnvelopeDsn, Recipient } from '../core/index.js';

/** One destination's share of an accepted message: what one SMTP transaction will carry. */
export interface QueueEntry {
  /** `<messageId>.<n>`: unique in the queue, stable for the entry's life. */
  readonly id: string;
  readonly messageId: string;
  /** The message's Message-ID header (bounded, as received); absent when it had none, or queued by an older Tern. */
  readonly headerMessageId?: string;
  readonly domain: string;
  /**
   * Header fields put in front of the stored message at intake, ASCII, CRLF-terminated
   * (the DKIM-Signature fields, RFC 6376 §5.6): every reader of the body gets them first,
   * so that a retry sends the signature made once, at acceptance. `size` counts them.
   */
  readonly headerPrefix?: string;
  readonly sender: string;
  readonly recipients: Recipient[];
  readonly dsn: EnvelopeDsn;
  readonly smtpUtf8: boolean;
  readonly bodyType: '7bit' | '8bitmime';
  /** Epoch ms when the message was accepted. */
  readonly queuedAt: number;
  readonly size: number;
  /**
   * How many entries the message was queued with, this one included (`siblings` in the
   * files on disk).
   */
  readonly entriesOfMessage: number;
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
export type EntryDraft = Pick<QueueEntry, 'domain' | 'sender' | 'recipients' | 'dsn' | 'smtpUtf8' | 'bodyType' | 'headerMessageId' | 'headerPrefix'>;

/** A message being received: its body streams to disk before any entry exists. */
export interface IncomingMessage {
  readonly messageId: string;
  /** Where the body goes, byte for byte as it will be sent (CRLF line ends, not dot-stuffed). */
  readonly body: Writable;
  /**
   * Makes the message durable with the given entries. When this resolves, the body and
   * every entry are on disk (fsynced, with the directory entries that lead to them):
   * only then may the client be told 250.
   */
  commit(drafts: readonly EntryDraft[], now: number): Promise<QueueEntry[]>;
  /** Drops everything written so far; nothing of it survives. */
  abort(): Promise<void>;
}

/** What scheduling needs of an entry: the rest stays on disk until an attempt loads it. */
export type EntryHead = Pick<QueueEntry, 'id' | 'messageId' | 'domain' | 'queuedAt' | 'nextAttemptAt' | 'attempts' | 'tempFailures' | 'held'>;

export interface RecoveryReport {
  /** Live entries found and handed over. */
  readonly recovered: number;
  /** Files moved to `corrupt/` because they could not be read. */
  readonly corrupt: { file: string; error: string }[];
  /** State files left behind by messages that had already left the queue, removed. */
  readonly removedOrphans: number;
}

export interface RecoveryOptions {
  /** Called with each batch of live entries as they are read. */
  onBatch(heads: EntryHead[]): void;
  /** Stops the scan (shutdown while recovering). */
  signal?: AbortSignal;
}

/**
 * What load() rejects with when the entry is not queued: its message left the queue (every
 * entry of it finished, or it was removed by hand), or never was. Part of the contract so
 * that callers need not know how an implementation stores entries (a missing file, ...).
 */
export class EntryNotFoundError extends Error {
  readonly code = 'TERN_ERR_ENTRY_NOT_FOUND';

  constructor(
    readonly id: string,
    options?: { cause?: unknown },
  ) {
    super(`no queue entry ${id}`, options);
    this.name = 'EntryNotFoundError';
  }
}

/**
 * The queue. Every method that resolves has made its change durable, except that a
 * removal may reach the disk a few milliseconds later: a crash then delivers the message
 * again, it never loses one. (MemorySpool keeps the same contract for the life of its
 * process only: it is for tests.) test/contract/spool-contract.ts is the contract's suite.
 */
export interface Spool {
  /**
   * Creates the layout if needed and removes leftovers of writes that never completed
   * (never acknowledged). Quick whatever the queue's size: the spool is usable after it.
   */
  open(): Promise<{ removedTemporary: number }>;
  /**
   * Reads every entry an earlier run left, in batches, while the spool is already in
   * use: new messages may be received and entries handed over may be updated or removed
   * meanwhile.
   */
  recover(options: RecoveryOptions): Promise<RecoveryReport>;
  /** The entry's current state, from disk; rejects with EntryNotFoundError when it is not queued. */
  load(id: string): Promise<QueueEntry>;
  receive(): Promise<IncomingMessage>;
  /** Persists an entry's changed state (attempts, next attempt, recipient states); O(entry), never the body. */
  update(entry: QueueEntry): Promise<void>;
  /** Removes a finished entry; the body goes when the message's last entry does. */
  remove(entry: QueueEntry): Promise<void>;
  /** The stored message (its body, as it will be sent, headerPrefix first) as a stream. */
  bodyStream(entry: QueueEntry): Readable;
  /** The stored message for sending: a small one as bytes (one read), a larger one as a stream. */
  bodyBytesOrStream(entry: QueueEntry): Buffer | Readable;
  /**
   * Graceful: refuses new writes (receive, update, remove: a TernError with 421 4.3.2) and
   * waits for background work. Idempotent.
   */
  close(): Promise<void>;
  /** Immediate: refuses new writes and waits for nothing. Idempotent. */
  destroy(): void;
  readonly closed: boolean;
}
