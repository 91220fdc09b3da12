import { open, rename, unlink } from 'node:fs/promises';
import { ErrorCode, TernError } from '../core/index.js';

/** fsync a directory so that renames and unlinks in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a whole file durably: temp → fsync → rename. The caller fsyncs the target directory. */
export async function writeFileSynced(tmpPath: string, finalPath: string, data: string | Buffer): Promise<void> {
  const handle = await open(tmpPath, 'w', 0o640);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmpPath).catch(() => undefined);
    throw err;
  }
  await handle.close();
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
