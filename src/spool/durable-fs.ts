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
