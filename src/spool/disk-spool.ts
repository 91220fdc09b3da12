import { closeSync, createReadStream, openSync, readFileSync, renameSync } from 'node:fs';
import { mkdir, readdir, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { decodeEntry, encodeEntry } from './entry-codec.js';
import { DirSync, fsyncDir, quietly, readFully, spoolError, unlinkIfThere, writeFileSynced } from './durable-fs.js';
import { BodyWriter, IN_MEMORY_BODY } from './body-writer.js';
import { encodeTrailer, readTrailer, trailerOf } from './message-file.js';
import { SegmentStore } from './segment-store.js';
import { recoverQueue } from './recovery.js';
import { closedError } from '../core/index.js';
import type { EntryDraft, IncomingMessage, QueueEntry, RecoveryOptions, RecoveryReport, Spool } from './types.js';

/**
 * The queue directory:
 *   seg/      segments: small messages (up to IN_MEMORY_BODY) appended one after the
 *             other, each with the entries it was queued with (see segment-store.ts)
 *   tmp/      message files being written; anything here at start was never acknowledged
 *   msg/      one file per large message (or one copied out of a segment): its body,
 *             then its entries (see message-file.ts); renamed in from tmp/ when complete
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
  private readonly tmpDir: string;
  private readonly msgDir: string;
  private readonly entryDir: string;
  private readonly corruptDir: string;
  /** Live entries of messages queued with several, so that the message goes with the last one. */
  private readonly liveSiblings = new Map<string, number>();
  /** While an earlier run's queue is being read back: the messages this run queued itself. */
  private ownDuringRecovery?: Set<string>;
  private sequence = 0;
  private randomPool = Buffer.alloc(0);
  private randomAt = 0;
  /**
   * Entries known to have had a state file (loaded from one, or updated): only theirs are
   * unlinked on removal, where a failed unlink of a file that never existed costs more
   * than the rest of a removal. One missed is an orphan, which recovery removes.
   */
  private readonly stated = new WeakSet<QueueEntry>();
  private readonly entryDirSync: DirSync;
  private readonly msgDirSync: DirSync;
  private readonly segments: SegmentStore;
  private closing?: Promise<void>;

  /** The options are for tests: a clock to age segments (see compact()), a segment size. */
  constructor(
    readonly root: string,
    options: { now?: () => number; segmentBytes?: number } = {},
  ) {
    this.tmpDir = join(root, 'tmp');
    this.msgDir = join(root, 'msg');
    this.entryDir = join(root, 'entries');
    this.corruptDir = join(root, 'corrupt');
    this.entryDirSync = new DirSync(this.entryDir);
    this.msgDirSync = new DirSync(this.msgDir);
    this.segments = new SegmentStore({
      dir: join(root, 'seg'),
      corruptDir: this.corruptDir,
      writeMessageFile: (messageId, body, json) => this.writeMessageFile(messageId, body, json),
      dropMessageFile: (messageId) => unlinkIfThere(join(this.msgDir, messageId)),
      now: options.now,
      segmentBytes: options.segmentBytes,
    });
  }

  /** A message copied out of a segment into a file of its own. */
  private async writeMessageFile(messageId: string, body: Buffer, trailerJson: Buffer): Promise<void> {
    await writeFileSynced(join(this.tmpDir, messageId), join(this.msgDir, messageId), Buffer.concat([body, trailerOf(body.length, trailerJson)]));
    await this.msgDirSync.sync();
  }

  async open(): Promise<{ removedTemporary: number }> {
    for (const dir of [this.root, this.tmpDir, this.msgDir, this.entryDir, this.corruptDir]) await mkdir(dir, { recursive: true });
    const leftovers = await readdir(this.tmpDir);
    for (const name of leftovers) await rm(join(this.tmpDir, name), { force: true, recursive: true });
    if (leftovers.length) await fsyncDir(this.tmpDir);
    await this.segments.open();
    return { removedTemporary: leftovers.length };
  }

  async recover(options: RecoveryOptions): Promise<RecoveryReport> {
    const own = (this.ownDuringRecovery = new Set());
    try {
      return await recoverQueue(
        { msgDir: this.msgDir, entryDir: this.entryDir, corruptDir: this.corruptDir, segments: this.segments },
        { isOwn: (id) => own.has(id), setLive: (id, live) => this.liveSiblings.set(id, live) },
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
      this.stated.add(entry);
      return entry;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const queued = this.segments.has(messageId) ? this.segments.entries(messageId) : readTrailer(join(this.msgDir, messageId));
    const entry = queued.find((e) => e.id === id);
    if (!entry) throw new Error(`message ${messageId} has no entry ${id}`);
    return entry;
  }

  private newMessageId(): string {
    // Time first so that ids sort roughly by arrival; random bits so that two nodes never
    // collide, taken from a pool (a call into the CSPRNG per message costs more).
    this.sequence = (this.sequence + 1) % 1296;
    if (this.randomAt + 5 > this.randomPool.length) {
      this.randomPool = randomBytes(5 * 256);
      this.randomAt = 0;
    }
    const random = this.randomPool.toString('hex', this.randomAt, (this.randomAt += 5));
    return (Date.now().toString(36) + this.sequence.toString(36).padStart(2, '0') + random).toUpperCase();
  }

  async receive(): Promise<IncomingMessage> {
    if (this.closed) throw closedError('queue');
    const messageId = this.newMessageId();
    this.ownDuringRecovery?.add(messageId);
    const tmp = join(this.tmpDir, messageId);
    const final = join(this.msgDir, messageId);
    const body = new BodyWriter(tmp);
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
      quietly(() => unlinkIfThere(renamed ? final : tmp));
    };
    return {
      messageId,
      body,
      commit: async (drafts: readonly EntryDraft[], now: number) => {
        try {
          if (!body.writableEnded) body.end();
          await finished(body, { cleanup: false });
          const entries: QueueEntry[] = drafts.map((d, i) => ({
            ...d,
            recipients: d.recipients.map((r) => ({ ...r })),
            id: `${messageId}.${i + 1}`,
            messageId,
            queuedAt: now,
            size: body.size,
            siblings: drafts.length,
            attempts: 0,
            tempFailures: 0,
            nextAttemptAt: now,
          }));
          const held = body.takeHeld();
          if (held) {
            await this.segments.append(messageId, held, body.size, entries);
          } else {
            await body.seal(encodeTrailer(body.size, entries));
            renameSync(tmp, final);
            renamed = true;
            await this.msgDirSync.sync();
          }
          body.destroy();
          if (entries.length > 1) this.liveSiblings.set(messageId, entries.length);
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
    const tmp = join(this.tmpDir, `${entry.id}.${randomBytes(4).toString('hex')}.json`);
    try {
      this.stated.add(entry);
      await writeFileSynced(tmp, join(this.entryDir, `${entry.id}.json`), encodeEntry(entry));
      await this.entryDirSync.sync();
    } catch (err) {
      throw spoolError(err);
    }
  }

  async remove(entry: QueueEntry): Promise<void> {
    if (this.closed) throw closedError('queue');
    const { messageId } = entry;
    // Counted down before any await: siblings finishing at the same moment must not both
    // think another is still queued (and both leave the message behind).
    const left = entry.siblings > 1 ? (this.liveSiblings.get(messageId) ?? entry.siblings) - 1 : 0;
    if (left > 0) this.liveSiblings.set(messageId, left);
    else this.liveSiblings.delete(messageId);
    try {
      if (left > 0) {
        // Others of the message are still queued: retire this one with a marker, durably.
        closeSync(openSync(join(this.entryDir, `${entry.id}.done`), 'w', 0o640));
        await this.entryDirSync.sync();
        unlinkIfThere(join(this.entryDir, `${entry.id}.json`));
        return;
      }
      if (await this.segments.finish(messageId)) return this.removeStates(entry);
      // Unlinking a file with data takes a journal handle, which waits out any commit in
      // progress: in the thread pool that wait does not stall the event loop.
      await unlink(join(this.msgDir, messageId)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await this.msgDirSync.sync();
    } catch (err) {
      if (entry.siblings > 1) this.liveSiblings.set(messageId, left + 1);
      throw spoolError(err);
    }
    this.removeStates(entry);
  }

  /** Without their message, state files are orphans, which recovery would remove anyway. */
  private removeStates(entry: QueueEntry): void {
    const { messageId } = entry;
    if (entry.siblings === 1 && !this.stated.has(entry)) return;
    try {
      for (let i = 1; i <= entry.siblings; i++) {
        unlinkIfThere(join(this.entryDir, `${messageId}.${i}.json`));
        if (entry.siblings > 1) unlinkIfThere(join(this.entryDir, `${messageId}.${i}.done`));
      }
    } catch {
      // Left for recovery, which removes state files whose message is gone.
    }
  }

  readBody(entry: QueueEntry): Readable {
    const body = this.body(entry);
    return Buffer.isBuffer(body) ? Readable.from([body], { objectMode: false }) : body;
  }

  body(entry: QueueEntry): Readable | Buffer {
    if (entry.size === 0) return Buffer.alloc(0);
    try {
      if (this.segments.has(entry.messageId)) return this.segments.readBody(entry.messageId);
      // The body is the file's first `size` bytes; the trailer after it is the spool's own.
      const path = join(this.msgDir, entry.messageId);
      if (entry.size > IN_MEMORY_BODY) return createReadStream(path, { start: 0, end: entry.size - 1 });
      // A small body in one read, as it was written: no thread-pool round trips.
      const fd = openSync(path, 'r');
      try {
        const body = Buffer.allocUnsafe(entry.size);
        readFully(fd, body, 0, `message file ${entry.messageId}`);
        return body;
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      return new Readable({
        read() {
          this.destroy(err as Error);
        },
      });
    }
  }

  /**
   * What runs every fifteen seconds anyway: old segments with few messages left have
   * them copied out to message files and go, empty ones go. Resolves when done.
   */
  compact(): Promise<void> {
    return this.segments.sweep();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Refuses new writes, then waits for segment removals in progress. Idempotent. */
  close(): Promise<void> {
    // Every write is awaited by its caller; only segment removals may still be running.
    this.closing ??= this.segments.close();
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
