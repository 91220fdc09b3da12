import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Writes a message body to its temp file through one file handle, so that the fsync at
 * commit needs no second open, and counts the bytes (the entry's size).
 */
export class BodyWriter extends Writable {
  size = 0;
  private handle?: FileHandle;

  constructor(readonly path: string) {
    // No autoDestroy: the handle must outlive 'finish' for the fsync at commit.
    super({ highWaterMark: 64 * 1024, autoDestroy: false });
  }

  override _construct(done: (err?: Error | null) => void): void {
    open(this.path, 'wx', 0o640).then(
      (h) => {
        this.handle = h;
        done();
      },
      (err: Error) => done(err),
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.size += chunk.length;
    this.handle!.write(chunk).then(() => done(), done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    for (const b of buffers) this.size += b.length;
    this.handle!.writev(buffers).then(() => done(), done);
  }

  /** Writes bytes after the body that do not count towards its size (the message file's trailer). */
  async append(data: Buffer): Promise<void> {
    await this.handle!.write(data);
  }

  /** Flushes the data to disk; call after the stream has finished. */
  async sync(): Promise<void> {
    await this.handle!.sync();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const h = this.handle;
    this.handle = undefined;
    if (!h) return done(err);
    h.close().then(
      () => done(err),
      () => done(err),
    );
  }
}
