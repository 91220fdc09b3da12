import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { asStream, failedStream, withPrefix } from './body-streams.js';
import { decodeEntry, encodeEntry } from './entry-codec.js';
import { DirSync, quietly, spoolError, unlinkIfThere, writeFileSynced } from './durable-fs.js';
import { BodyWriter, IN_MEMORY_BODY } from './body-writer.js';
import { encodeTrailer } from './message-file.js';
import { MessageFiles } from './message-files.js';
import { MessageIds } from './message-ids.js';
import { shardSuffix } from './shards.js';
import { QueueLock } from './queue-lock.js';
import { newEntries, prefixBytes } from './new-entries.js';
import { SegmentStore } from './segment-store.js';
import { recoverQueue } from './recovery.js';
import { closedError } from '../core/index.js';
import { EntryNotFoundError } from './types.js';
import type { EntryDraft, IncomingMessage, QueueEntry, RecoveryOptions, RecoveryReport, Spool } from './types.js';

/**
 * The queue directory:
 *   seg/      segments: small messages (up to IN_MEMORY_BODY) appended one after the
 *             other, each with the entries it was queued with (see segment-store.ts)
 *   tmp/      message files being written; anything here at start was never acknowledged
 *   msg/      one file per large message (or one copied out of a segment): its body,
 *             then its entries (see message-file.ts, message-files.ts); renamed in from
 *             tmp/ when complete
 *   entries/  `<id>.json`, an entry's state once it changed (attempted, held, ...), and
 *             `<id>.done`, an entry finished while others of its message are still queued
 *   corrupt/  files that could not be read, kept for the operator
 *
 * A small message is one append to the current segment and one fdatasync shared with
 * every acceptance in flight: no file is created per message, which on ext4 costs more
 * CPU than everything else an acceptance does. A large one is written to tmp/, fsynced,
 * renamed into msg/ and the directory fsynced (also shared). State changes never touch
 * where the body is.
 */
export class DiskSpool implements Spool {
  private readonly entryDir: string;
  private readonly corruptDir: string;
  /** Live entries of messages queued with several, so that the message goes with the last one. */
  private readonly liveEntries = new Map<string, number>();
  /** While an earlier run's queue is being read back: the messages this run queued itself. */
  private ownDuringRecovery?: Set<string>;
  private readonly messageIds: MessageIds;
  /**
   * Entries known to have had a state file (loaded from one, or updated): only theirs are
   * unlinked on removal, where a failed unlink of a file that never existed costs more
   * than the rest of a removal. One missed is an orphan, which recovery removes.
   */
  private readonly hasStateFile = new WeakSet<QueueEntry>();
  private readonly entryDirSync: DirSync;
  private readonly messageFiles: MessageFiles;
  private readonly segments: SegmentStore;
  private readonly lock: QueueLock;
  private closing?: Promise<void>;

  /**
   * `shard`: a worker's queue shard (`nodes=N`), written into every new message id. The
   * other options are for tests: a clock to age segments (see retireSparseSegments()), a segment size.
   */
  constructor(
    readonly root: string,
    options: { now?: () => number; segmentBytes?: number; shard?: number } = {},
  ) {
    this.messageIds = new MessageIds(options.shard === undefined ? '' : shardSuffix(options.shard));
    this.entryDir = join(root, 'entries');
    this.corruptDir = join(root, 'corrupt');
    this.entryDirSync = new DirSync(this.entryDir);
    this.lock = new QueueLock(root);
    this.messageFiles = new MessageFiles(root);
    this.segments = new SegmentStore({
      dir: join(root, 'seg'),
      corruptDir: this.corruptDir,
      messageFiles: this.messageFiles,
      now: options.now,
      segmentBytes: options.segmentBytes,
    });
  }

  async open(): Promise<{ removedTemporary: number }> {
    await mkdir(this.root, { recursive: true });
    this.lock.take();
    const removedTemporary = await this.messageFiles.open();
    for (const dir of [this.entryDir, this.corruptDir]) await mkdir(dir, { recursive: true });
    await this.segments.open();
    // Messages received from now on are this run's, even those that start before recover()
    // does (the listener opens first): recovery must not take them for an earlier run's.
    this.ownDuringRecovery = new Set();
    return { removedTemporary };
  }

  async recover(options: RecoveryOptions): Promise<RecoveryReport> {
    const own = (this.ownDuringRecovery ??= new Set());
    try {
      return await recoverQueue(
        { messageFiles: this.messageFiles, entryDir: this.entryDir, corruptDir: this.corruptDir, segments: this.segments },
        { isOwn: (id) => own.has(id), setLive: (id, live) => this.liveEntries.set(id, live) },
        options,
      );
    } finally {
      this.ownDuringRecovery = undefined;
    }
  }

  async load(id: string): Promise<QueueEntry> {
    const messageId = id.slice(0, id.lastIndexOf('.'));
    try {
      const entry = decodeEntry(readFileSync(join(this.entryDir, `${id}.json`), 'utf8'));
      this.hasStateFile.add(entry);
      return entry;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let queued: QueueEntry[];
    try {
      queued = this.segments.has(messageId) ? this.segments.entries(messageId) : this.messageFiles.entries(messageId);
    } catch (err) {
      // Neither in a segment nor in a file of its own: the message left the queue.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new EntryNotFoundError(id, { cause: err });
      throw err;
    }
    const entry = queued.find((e) => e.id === id);
    if (!entry) throw new Error(`message ${messageId} has no entry ${id}`);
    return entry;
  }

  async receive(): Promise<IncomingMessage> {
    if (this.closed) throw closedError('queue');
    const messageId = this.messageIds.next();
    this.ownDuringRecovery?.add(messageId);
    const body = new BodyWriter(this.messageFiles.tmpPath(messageId));
    body.on('error', () => undefined); // surfaced by commit(); an unhandled error would crash the daemon
    let renamed = false;
    const cleanup = async () => {
      // Wait for the handle to close so that the unlink comes after the create.
      if (!body.closed) {
        // Not events.once(): a destroyed stream with writes pending emits 'error' before 'close'.
        const closed = new Promise<void>((resolve) => body.once('close', () => resolve()));
        body.destroy();
        await closed;
      }
      // Nothing more can be done if this fails; a leftover in tmp/ goes at the next start.
      quietly(() => unlinkIfThere(renamed ? this.messageFiles.path(messageId) : this.messageFiles.tmpPath(messageId)));
    };
    return {
      messageId,
      body,
      commit: async (drafts: readonly EntryDraft[], now: number) => {
        try {
          if (!body.writableEnded) body.end();
          await finished(body, { cleanup: false });
          const entries = newEntries(messageId, drafts, body.size, now);
          const held = body.takeHeld();
          if (held) {
            await this.segments.append(messageId, held, body.size, entries);
          } else {
            await body.seal(encodeTrailer(body.size, entries));
            this.messageFiles.moveIn(messageId);
            renamed = true;
            await this.messageFiles.syncDir();
          }
          body.destroy();
          if (entries.length > 1) this.liveEntries.set(messageId, entries.length);
          return entries;
        } catch (err) {
          // No 250 will be sent: nothing of the message may stay behind to be delivered later.
          await cleanup();
          throw spoolError(err);
        }
      },
      abort: cleanup,
    };
  }

  async update(entry: QueueEntry): Promise<void> {
    if (this.closed) throw closedError('queue');
    const tmp = this.messageFiles.tmpPath(`${entry.id}.${randomBytes(4).toString('hex')}.json`);
    try {
      this.hasStateFile.add(entry);
      await writeFileSynced(tmp, join(this.entryDir, `${entry.id}.json`), encodeEntry(entry));
      await this.entryDirSync.sync();
    } catch (err) {
      throw spoolError(err);
    }
  }

  async remove(entry: QueueEntry): Promise<void> {
    if (this.closed) throw closedError('queue');
    const { messageId } = entry;
    // Counted down before any await: entries of one message finishing at the same moment
    // must not both think another is still queued (and both leave the message behind).
    const left = entry.entriesOfMessage > 1 ? (this.liveEntries.get(messageId) ?? entry.entriesOfMessage) - 1 : 0;
    if (left > 0) this.liveEntries.set(messageId, left);
    else this.liveEntries.delete(messageId);
    try {
      if (left > 0) {
        // Others of the message are still queued: retire this one with a marker, durably.
        closeSync(openSync(join(this.entryDir, `${entry.id}.done`), 'w', 0o640));
        await this.entryDirSync.sync();
        unlinkIfThere(join(this.entryDir, `${entry.id}.json`));
        return;
      }
      if (await this.segments.finish(messageId)) return this.removeStates(entry);
      await this.messageFiles.remove(messageId);
    } catch (err) {
      if (entry.entriesOfMessage > 1) this.liveEntries.set(messageId, left + 1);
      throw spoolError(err);
    }
    this.removeStates(entry);
  }

  /** Without their message, state files are orphans, which recovery would remove anyway. */
  private removeStates(entry: QueueEntry): void {
    const { messageId } = entry;
    if (entry.entriesOfMessage === 1 && !this.hasStateFile.has(entry)) return;
    try {
      for (let i = 1; i <= entry.entriesOfMessage; i++) {
        unlinkIfThere(join(this.entryDir, `${messageId}.${i}.json`));
        if (entry.entriesOfMessage > 1) unlinkIfThere(join(this.entryDir, `${messageId}.${i}.done`));
      }
    } catch {
      // Left for recovery, which removes state files whose message is gone.
    }
  }

  bodyStream(entry: QueueEntry): Readable {
    return asStream(this.bodyBytesOrStream(entry));
  }

  bodyBytesOrStream(entry: QueueEntry): Buffer | Readable {
    if (entry.size === 0) return Buffer.alloc(0);
    try {
      if (this.segments.has(entry.messageId)) return withPrefix(entry.headerPrefix, this.segments.bodyBytes(entry.messageId));
      const stored = entry.size - prefixBytes(entry);
      return withPrefix(entry.headerPrefix, this.messageFiles.bodyBytesOrStream(entry.messageId, stored, IN_MEMORY_BODY));
    } catch (err) {
      return failedStream(err as Error);
    }
  }

  /**
   * What runs every fifteen seconds anyway: old segments with few messages left have
   * them copied out to message files and go, empty ones go. Resolves when done.
   */
  retireSparseSegments(): Promise<void> {
    return this.segments.retireSparseSegments();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Refuses new writes, then waits for segment removals in progress. Idempotent. */
  close(): Promise<void> {
    // Every write is awaited by its caller; only segment removals may still be running.
    this.closing ??= this.segments.close().finally(() => this.lock.release());
    return this.closing;
  }

  /**
   * Refuses new writes and waits for nothing: background removals left unfinished are
   * redone by the next start's recovery (an entry may be delivered twice, never lost).
   */
  destroy(): void {
    void this.close().catch(() => undefined);
  }
}
