import { closeSync, createReadStream, openSync, renameSync } from 'node:fs';
import { mkdir, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DirSync, fsyncDir, readFully, unlinkIfThere, writeFileSynced } from './durable-fs.js';
import { readTrailer, trailerOf } from './message-file.js';
import type { QueueEntry } from './types.js';

/**
 * `msg/`, one file per message (see message-file.ts for the format), and `tmp/`, where
 * each is written before it is renamed in. Every way a message file comes to be (a large
 * body streamed at acceptance, a small one copied out of a segment) and goes ends here,
 * with the directory fsync that makes it durable shared among the writers in flight.
 */
export class MessageFiles {
  readonly tmpDir: string;
  readonly dir: string;
  private readonly dirSync: DirSync;

  constructor(root: string) {
    this.tmpDir = join(root, 'tmp');
    this.dir = join(root, 'msg');
    this.dirSync = new DirSync(this.dir);
  }

  /**
   * Creates both directories and empties tmp/: a file still there was never complete, so
   * its message was never acknowledged. Resolves with how many went.
   */
  async open(): Promise<number> {
    for (const dir of [this.tmpDir, this.dir]) await mkdir(dir, { recursive: true });
    const leftovers = await readdir(this.tmpDir);
    for (const name of leftovers) await rm(join(this.tmpDir, name), { force: true, recursive: true });
    if (leftovers.length) await fsyncDir(this.tmpDir);
    return leftovers.length;
  }

  /** Where a file (a message's, or an entry's state) is written before it is complete. */
  tmpPath(name: string): string {
    return join(this.tmpDir, name);
  }

  path(messageId: string): string {
    return join(this.dir, messageId);
  }

  /**
   * Moves a complete, fsynced file from tmp/ into msg/. The message is there after a
   * crash only once syncDir() resolves.
   */
  moveIn(messageId: string): void {
    renameSync(this.tmpPath(messageId), this.path(messageId));
  }

  /** Makes the renames and unlinks in msg/ so far durable (shared with the callers in flight). */
  syncDir(): Promise<void> {
    return this.dirSync.sync();
  }

  /** Writes a message file whole from a body and its entries' JSON (a segment record's), durably. */
  async write(messageId: string, body: Buffer, trailerJson: Buffer): Promise<void> {
    await writeFileSynced(this.tmpPath(messageId), this.path(messageId), Buffer.concat([body, trailerOf(body.length, trailerJson)]));
    await this.syncDir();
  }

  /** Removes a message file at once, without waiting for the directory (a copy no longer wanted). */
  drop(messageId: string): void {
    unlinkIfThere(this.path(messageId));
  }

  /** Removes the file of a message that left the queue; resolves once the removal is durable. */
  async remove(messageId: string): Promise<void> {
    // Unlinking a file with data takes a journal handle, which waits out any commit in
    // progress: in the thread pool that wait does not stall the event loop.
    await unlink(this.path(messageId)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await this.syncDir();
  }

  /** The entries the message was queued with; throws ENOENT when it has no file. */
  entries(messageId: string): QueueEntry[] {
    return readTrailer(this.path(messageId));
  }

  /**
   * The body, which is the file's first `size` bytes (the trailer after it is the
   * spool's own): up to `wholeUpTo` bytes in one read, as it was written (no thread-pool
   * round trips), a larger one as a stream.
   */
  bodyBytesOrStream(messageId: string, size: number, wholeUpTo: number): Buffer | Readable {
    const path = this.path(messageId);
    if (size > wholeUpTo) return createReadStream(path, { start: 0, end: size - 1 });
    const fd = openSync(path, 'r');
    try {
      const body = Buffer.allocUnsafe(size);
      readFully(fd, body, 0, `message file ${messageId}`);
      return body;
    } finally {
      closeSync(fd);
    }
  }
}
