import { closeSync, createReadStream, openSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { decodeEntry, encodeEntry } from './entry-codec.js';
import { DirSync, fsyncDir, readFully, spoolError, writeFileSynced } from './durable-fs.js';
import { BodyWriter, IN_MEMORY_BODY } from './body-writer.js';
import { encodeTrailer, readTrailer } from './message-file.js';
import { recoverQueue } from './recovery.js';
import type { EntryDraft, IncomingMessage, QueueEntry, RecoveryOptions, RecoveryReport, Spool } from './types.js';

function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The queue directory:
 *   tmp/      message files being written; anything here at start was never acknowledged
 *   msg/      one file per accepted message: its body, then the entries it was queued
 *             with (see message-file.ts); renamed in from tmp/ when complete
 *   entries/  `<id>.json`, an entry's state once it changed (attempted, held, ...), and
 *             `<id>.done`, an entry finished while others of its message are still queued
 *   corrupt/  files that could not be read, kept for the operator
 *
 * Acceptance writes the message file to tmp/, fsyncs it, renames it into msg/ and
 * fsyncs that directory (shared with every acceptance in flight): one file and one
 * fsync per message. State changes never touch the message file.
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
  private readonly entryDirSync: DirSync;
  private readonly msgDirSync: DirSync;

  constructor(readonly root: string) {
    this.tmpDir = join(root, 'tmp');
    this.msgDir = join(root, 'msg');
    this.entryDir = join(root, 'entries');
    this.corruptDir = join(root, 'corrupt');
    this.entryDirSync = new DirSync(this.entryDir);
    this.msgDirSync = new DirSync(this.msgDir);
  }

  async open(): Promise<{ removedTemporary: number }> {
    for (const dir of [this.root, this.tmpDir, this.msgDir, this.entryDir, this.corruptDir]) await mkdir(dir, { recursive: true });
    const leftovers = await readdir(this.tmpDir);
    for (const name of leftovers) await rm(join(this.tmpDir, name), { force: true, recursive: true });
    if (leftovers.length) await fsyncDir(this.tmpDir);
    return { removedTemporary: leftovers.length };
  }

  async recover(options: RecoveryOptions): Promise<RecoveryReport> {
    const own = (this.ownDuringRecovery = new Set());
    try {
      return await recoverQueue(
        { msgDir: this.msgDir, entryDir: this.entryDir, corruptDir: this.corruptDir },
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
      return decodeEntry(readFileSync(join(this.entryDir, `${id}.json`), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const entry = readTrailer(join(this.msgDir, messageId)).find((e) => e.id === id);
    if (!entry) throw new Error(`message ${messageId} has no entry ${id}`);
    return entry;
  }

  private newMessageId(): string {
    // Time first so that ids sort roughly by arrival; random bits so that two nodes never collide.
    this.sequence = (this.sequence + 1) % 1296;
    return (Date.now().toString(36) + this.sequence.toString(36).padStart(2, '0') + randomBytes(5).toString('hex')).toUpperCase();
  }

  async receive(): Promise<IncomingMessage> {
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
      try {
        unlinkIfThere(renamed ? final : tmp);
      } catch {
        // Nothing more can be done here; a leftover in tmp/ goes at the next start.
      }
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
          await body.seal(encodeTrailer(body.size, entries));
          renameSync(tmp, final);
          renamed = true;
          await this.msgDirSync.sync();
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
    const tmp = join(this.tmpDir, `${entry.id}.${randomBytes(4).toString('hex')}.json`);
    try {
      await writeFileSynced(tmp, join(this.entryDir, `${entry.id}.json`), encodeEntry(entry));
      await this.entryDirSync.sync();
    } catch (err) {
      throw spoolError(err);
    }
  }

  async remove(entry: QueueEntry): Promise<void> {
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
    // Without its message file these are orphans, which recovery would remove anyway.
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
    // The body is the file's first `size` bytes; the trailer after it is the spool's own.
    const path = join(this.msgDir, entry.messageId);
    if (entry.size === 0) return Readable.from([], { objectMode: false });
    if (entry.size > IN_MEMORY_BODY) return createReadStream(path, { start: 0, end: entry.size - 1 });
    // A small body in one read, as it was written: no thread-pool round trips.
    try {
      const fd = openSync(path, 'r');
      try {
        const body = Buffer.allocUnsafe(entry.size);
        readFully(fd, body, 0, `message file ${entry.messageId}`);
        return Readable.from([body], { objectMode: false });
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

  async close(): Promise<void> {
    // Every write is awaited by its caller; nothing is buffered here.
  }
}
