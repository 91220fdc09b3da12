import { closeSync, fdatasync, fsync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCode, localError, TernError } from '../core/index.js';

/*
 * The spool's file system calls are made synchronously except fsync and fdatasync (and
 * the unlink of a delivered message file, see DiskSpool.remove). On a local file system open, write
 * (to the page cache), read, close and rename take microseconds, while each trip
 * through libuv's thread pool costs tens of microseconds of CPU in thread wake-ups
 * (measured: 35-150 us per async open+close against 4 us sync on the bench machine).
 * A sync waits for the disk, so it goes to the pool.
 */
const fsyncFd = promisify(fsync);
const fdatasyncFd = promisify(fdatasync);

/** fsync a directory so that renames and unlinks in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

export function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Runs a clean-up step whose failure leaves only what the next start settles; says whether it worked. */
export function quietly(action: () => void): boolean {
  try {
    action();
    return true;
  } catch {
    return false;
  }
}

/** Writes all of `buf` at the file's current position (its end, for a file opened to append). */
export function writeFully(fd: number, buf: Buffer): void {
  // writeSync may write less than asked; keep going until all of it is down.
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

/** Fills `buf` from `position` of an open file; `what` names the file when it ends early. */
export function readFully(fd: number, buf: Buffer, position: number, what: string): void {
  for (let got = 0; got < buf.length; ) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) throw new Error(`${what} ends early`);
    got += n;
  }
}

/** Writes a whole file (optionally in several pieces) and fsyncs it before closing. */
export async function writeWholeFile(path: string, pieces: readonly (string | Buffer)[], flags = 'w'): Promise<void> {
  const fd = openSync(path, flags, 0o640);
  try {
    for (const piece of pieces) {
      writeFully(fd, typeof piece === 'string' ? Buffer.from(piece) : piece);
    }
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a whole file durably: temp → fsync → rename. The caller fsyncs the target directory. */
export async function writeFileSynced(tmpPath: string, finalPath: string, data: string | Buffer): Promise<void> {
  try {
    await writeWholeFile(tmpPath, [data]);
    renameSync(tmpPath, finalPath);
  } catch (err) {
    quietly(() => unlinkIfThere(tmpPath));
    throw err;
  }
}

/** Maps a file system failure to the reply a client sees: never 5xx for a local fault. */
export function spoolError(err: unknown): TernError {
  if (err instanceof TernError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new TernError(ErrorCode.SPOOL_FULL, { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage, try again later' }, { cause: err });
  }
  return new TernError(ErrorCode.SPOOL_WRITE, localError('Local error in processing, try again later'), { cause: err });
}

/**
 * Group commit: callers that ask while a sync is running share the next one, so N
 * writers in flight cost about two syncs instead of N. Every caller's write happened
 * before its request, so the sync it waits for (started after the request) covers it.
 */
export class GroupSync {
  private running?: Promise<void>;
  private next?: Promise<void>;

  /**
   * With `gather`, a sync starts only after the current turn of the event loop, so that
   * every write made in that turn (sessions whose data arrived together) shares it.
   */
  constructor(
    private readonly flush: () => Promise<void>,
    private readonly gather = false,
  ) {}

  sync(): Promise<void> {
    if (!this.running) {
      const started = this.gather ? new Promise<void>((resolve) => setImmediate(resolve)).then(this.flush) : this.flush();
      this.running = started.finally(() => (this.running = undefined));
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.sync();
      });
    return this.next;
  }
}

/** Group commit of a directory's renames, creations and unlinks. */
export class DirSync extends GroupSync {
  constructor(dir: string) {
    super(() => fsyncDir(dir));
  }
}

/** Group commit of appends to an open file (fdatasync: its data and its size). */
export class FileSync extends GroupSync {
  constructor(fd: number, gather = false) {
    super(() => fdatasyncFd(fd), gather);
  }
}
