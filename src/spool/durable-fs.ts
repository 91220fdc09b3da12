import { closeSync, fsync, openSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ErrorCode, TernError } from '../core/index.js';

/*
 * Each trip through libuv's thread pool costs tens of microseconds of CPU in thread
 * wake-ups (35-150 us per async open+close on the bench machine, 4 us synchronously),
 * so the spool makes few of them: a message file is written in one go. Calls that
 * create, rename or unlink in a queue directory stay asynchronous all the same: made
 * synchronously they sometimes cost the main thread milliseconds of kernel time each
 * (measured: its system time went from 1 s to 4.9 s for 3,000 acceptances in some
 * runs), stalling every session. Opening a directory to fsync it only looks it up.
 */
const fsyncFd = promisify(fsync);

/** fsync a directory so that renames and unlinks in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a whole file (optionally in several pieces) and fsyncs it before closing. */
export async function writeWholeFile(path: string, pieces: readonly (string | Buffer)[], flags = 'w'): Promise<void> {
  const handle = await open(path, flags, 0o640);
  try {
    await handle.writev(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a whole file durably: temp → fsync → rename. The caller fsyncs the target directory. */
export async function writeFileSynced(tmpPath: string, finalPath: string, data: string | Buffer): Promise<void> {
  try {
    await writeWholeFile(tmpPath, [data]);
  } catch (err) {
    await unlink(tmpPath).catch(() => undefined);
    throw err;
  }
  await rename(tmpPath, finalPath);
}

/** Maps a file system failure to the reply a client sees: never 5xx for a local fault. */
export function spoolError(err: unknown): TernError {
  if (err instanceof TernError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new TernError(ErrorCode.SPOOL_FULL, { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage, try again later' }, { cause: err });
  }
  return new TernError(ErrorCode.SPOOL_WRITE, { code: 451, enhanced: '4.3.0', text: 'Local error in processing, try again later' }, { cause: err });
}

/**
 * Group commit for a directory: callers that ask while an fsync is running share the next
 * one, so N acceptances in flight cost about two directory fsyncs instead of N. Every
 * caller's rename happened before its request, so the fsync it waits for covers it.
 */
export class DirSync {
  private running?: Promise<void>;
  private next?: Promise<void>;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = fsyncDir(this.dir).finally(() => (this.running = undefined));
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
