import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import { asStream, failedStream, withPrefix } from './body-streams.js';
import { finished } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IN_MEMORY_BODY } from './body-writer.js';
import { spoolError } from './durable-fs.js';
import { decodeEntry, encodeEntry } from './entry-codec.js';
import { entryHead } from './entry-head.js';
import { MessageIds } from './message-ids.js';
import { newEntries } from './new-entries.js';
import { closedError } from '../core/index.js';
import { EntryNotFoundError } from './types.js';
import type { EntryDraft, EntryHead, IncomingMessage, QueueEntry, RecoveryOptions, RecoveryReport, Spool } from './types.js';

/** Recovery hands over this many messages' entries at a time, letting the event loop run in between. */
const RECOVERY_BATCH = 256;

/** One committed message, as a restart would find it. */
interface StoredMessage {
  readonly body: Buffer;
  /** Its entries as queued, encoded: whoever loads one gets a copy of its own, as from disk. */
  readonly queued: ReadonlyMap<string, string>;
  /** Entries whose state changed since (encoded). */
  readonly states: Map<string, string>;
  /** Entries finished while others of the message are still queued. */
  readonly done: Set<string>;
}

/**
 * A Spool in memory, NOT DURABLE: what it holds is gone with the process. It keeps the
 * same contract as DiskSpool (test/contract/spool-contract.ts) without touching the disk,
 * for fast tests of what sits above the spool (the scheduler with an injected clock).
 * afterRestart() gives a spool over the same messages, as a restart would find them.
 */
export class MemorySpool implements Spool {
  private messages = new Map<string, StoredMessage>();
  /** Messages this spool queued itself: recovery hands over only those an earlier one left. */
  private readonly own = new Set<string>();
  private readonly messageIds = new MessageIds();
  private isClosed = false;

  /** A new spool over this one's messages: what was committed, updated and removed, nothing in flight. */
  afterRestart(): MemorySpool {
    const next = new MemorySpool();
    next.messages = this.messages;
    return next;
  }

  async open(): Promise<{ removedTemporary: number }> {
    // Nothing is kept of a message before its commit: there are no leftovers.
    return { removedTemporary: 0 };
  }

  async recover(options: RecoveryOptions): Promise<RecoveryReport> {
    let recovered = 0;
    let heads: EntryHead[] = [];
    let messages = 0;
    const handOver = () => {
      recovered += heads.length;
      if (heads.length) options.onBatch(heads);
      heads = [];
    };
    for (const [messageId, stored] of [...this.messages]) {
      if (options.signal?.aborted) return { recovered, corrupt: [], removedOrphans: 0 };
      if (this.own.has(messageId) || !this.messages.has(messageId)) continue;
      for (const [id, queued] of stored.queued) {
        if (stored.done.has(id)) continue;
        heads.push(entryHead(decodeEntry(stored.states.get(id) ?? queued), messageId));
      }
      if (++messages % RECOVERY_BATCH === 0) {
        handOver();
        await nextTurn();
      }
    }
    handOver();
    return { recovered, corrupt: [], removedOrphans: 0 };
  }

  async load(id: string): Promise<QueueEntry> {
    const messageId = id.slice(0, id.lastIndexOf('.'));
    const stored = this.messages.get(messageId);
    if (!stored) throw new EntryNotFoundError(id);
    const encoded = stored.states.get(id) ?? stored.queued.get(id);
    if (!encoded) throw new Error(`message ${messageId} has no entry ${id}`);
    return decodeEntry(encoded);
  }

  async receive(): Promise<IncomingMessage> {
    if (this.isClosed) throw closedError('queue');
    const messageId = this.messageIds.next();
    let chunks: Buffer[] = [];
    let size = 0;
    const body = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        size += chunk.length;
        done();
      },
    });
    body.on('error', () => undefined); // surfaced by commit(), as DiskSpool does
    return {
      messageId,
      body,
      commit: async (drafts: readonly EntryDraft[], now: number) => {
        try {
          if (!body.writableEnded) body.end();
          await finished(body, { cleanup: false });
        } catch (err) {
          chunks = [];
          throw spoolError(err);
        }
        const entries = newEntries(messageId, drafts, size, now);
        const queued = new Map(entries.map((e) => [e.id, encodeEntry(e)]));
        this.messages.set(messageId, { body: Buffer.concat(chunks, size), queued, states: new Map(), done: new Set() });
        this.own.add(messageId);
        chunks = [];
        return entries;
      },
      abort: async () => {
        body.destroy();
        chunks = [];
      },
    };
  }

  async update(entry: QueueEntry): Promise<void> {
    if (this.isClosed) throw closedError('queue');
    const stored = this.messages.get(entry.messageId);
    // The state of an entry already gone would be an orphan that recovery drops anyway.
    if (stored && !stored.done.has(entry.id)) stored.states.set(entry.id, encodeEntry(entry));
  }

  async remove(entry: QueueEntry): Promise<void> {
    if (this.isClosed) throw closedError('queue');
    const stored = this.messages.get(entry.messageId);
    if (!stored) return;
    stored.done.add(entry.id);
    stored.states.delete(entry.id);
    if (stored.done.size >= stored.queued.size) this.messages.delete(entry.messageId);
  }

  bodyStream(entry: QueueEntry): Readable {
    return asStream(this.bodyBytesOrStream(entry));
  }

  /** As DiskSpool: bytes up to IN_MEMORY_BODY, a stream past it, so that callers meet both. */
  bodyBytesOrStream(entry: QueueEntry): Buffer | Readable {
    const stored = this.messages.get(entry.messageId);
    if (!stored) {
      return failedStream(new EntryNotFoundError(entry.id));
    }
    return withPrefix(entry.headerPrefix, entry.size > IN_MEMORY_BODY ? asStream(stored.body) : stored.body);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** As DiskSpool: new writes are refused from now on; nothing to flush, nothing was durable. */
  async close(): Promise<void> {
    this.isClosed = true;
  }

  destroy(): void {
    this.isClosed = true;
  }
}
