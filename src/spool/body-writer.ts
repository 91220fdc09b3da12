import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Bodies up to this size are held in memory while they arrive and appended to a segment
 * at commit; larger ones stream to a message file of their own from the point they pass it.
 */
export const IN_MEMORY_BODY = 256 * 1024;

/**
 * Receives a message body on its way to the queue and counts its bytes (the entry's
 * size). Most mail is small: held until the end of DATA, it is stored with one write,
 * where streaming costs a thread-pool round trip per chunk. Only bodies past
 * IN_MEMORY_BODY stream, through one file handle.
 */
export class BodyWriter extends Writable {
  size = 0;
  private chunks: Buffer[] = [];
  private handle?: FileHandle;

  constructor(readonly path: string) {
    // No autoDestroy: the handle must outlive 'finish' for the fsync at commit.
    super({ highWaterMark: 64 * 1024, autoDestroy: false });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.handle) {
      this.handle.write(chunk).then(() => done(), done);
      return;
    }
    this.chunks.push(chunk);
    if (this.size <= IN_MEMORY_BODY) return done();
    // Past the in-memory bound: from here on the body streams to disk.
    const held = this.chunks;
    this.chunks = [];
    open(this.path, 'wx', 0o640)
      .then(async (h) => {
        this.handle = h;
        await h.writev(held);
      })
      .then(() => done(), done);
  }

  /**
   * The body, when it was small enough to be held in memory all along (it is then the
   * caller's to store); undefined when it streamed to its temp file. Call once, after
   * the stream has finished.
   */
  takeHeld(): Buffer[] | undefined {
    if (this.handle) return undefined;
    const held = this.chunks;
    this.chunks = [];
    return held;
  }

  /**
   * Appends `trailer` (which does not count towards the size) to a body that streamed
   * to its file, and fsyncs the file. Call once, after the stream has finished.
   */
  async seal(trailer: Buffer): Promise<void> {
    if (!this.handle) throw new Error('seal() is for a body that streamed to its file');
    await this.handle.write(trailer);
    await this.handle.sync();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.chunks = [];
    const h = this.handle;
    this.handle = undefined;
    if (!h) return done(err);
    h.close().then(
      () => done(err),
      () => done(err),
    );
  }
}
