import { opendir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeEntry } from './entry-codec.js';
import { fsyncDir } from './durable-fs.js';
import { readTrailer } from './message-file.js';
import type { EntryHead, QueueEntry, RecoveryOptions, RecoveryReport } from './types.js';

export interface QueueDirs {
  readonly msgDir: string;
  readonly entryDir: string;
  readonly corruptDir: string;
}

export interface RecoveryHost {
  /** Messages this process queued itself (during the scan): already known, skipped. */
  isOwn(messageId: string): boolean;
  /** Live entries of a message that was queued with several. */
  setLive(messageId: string, live: number): void;
}

/** Messages read at once: enough to keep the thread pool busy, few enough to keep the listener responsive. */
const BATCH = 128;

const headOf = (e: QueueEntry, messageId: string): EntryHead => ({
  id: e.id,
  messageId,
  domain: e.domain,
  queuedAt: e.queuedAt,
  nextAttemptAt: e.nextAttemptAt,
  attempts: e.attempts,
  tempFailures: e.tempFailures,
  held: e.held,
});

const messageIdOf = (name: string) => /^([A-Za-z0-9]+)\.\d+\.(json|done)$/.exec(name)?.[1];

/**
 * Reads back a queue left by an earlier run, one message file at a time (its trailer
 * gives the entries it was queued with; a state file in entries/ overrides one entry, a
 * `.done` marker retires it), and hands the live entries over in batches. Runs while the
 * daemon already accepts mail, so that a queue of a million entries costs no downtime.
 */
export async function recoverQueue(dirs: QueueDirs, host: RecoveryHost, options: RecoveryOptions): Promise<RecoveryReport> {
  const corrupt: { file: string; error: string }[] = [];
  let recovered = 0;
  let removedOrphans = 0;
  const moveAside = async (dir: string, name: string, error: string) => {
    corrupt.push({ file: name, error });
    await rename(join(dir, name), join(dirs.corruptDir, name)).catch(() => undefined);
  };

  // State files by message, taken before the scan: what is left at the end has no message.
  const stateFiles = new Map<string, string[]>();
  for (const name of await readdir(dirs.entryDir)) {
    const messageId = messageIdOf(name);
    if (!messageId) {
      await moveAside(dirs.entryDir, name, 'not a state file');
      continue;
    }
    const list = stateFiles.get(messageId);
    if (list) list.push(name);
    else stateFiles.set(messageId, [name]);
  }

  const readMessage = async (messageId: string): Promise<EntryHead[]> => {
    if (host.isOwn(messageId)) return [];
    const files = stateFiles.get(messageId) ?? [];
    stateFiles.delete(messageId);
    let entries: QueueEntry[];
    try {
      entries = await readTrailer(join(dirs.msgDir, messageId));
      if (entries.some((e) => e.messageId !== messageId)) throw new Error('trailer names another message');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      await moveAside(dirs.msgDir, messageId, (err as Error).message);
      for (const f of files) await moveAside(dirs.entryDir, f, `state of corrupt message ${messageId}`);
      return [];
    }
    const names = new Set(files);
    const live: EntryHead[] = [];
    for (let entry of entries) {
      if (names.has(`${entry.id}.done`)) continue;
      if (names.has(`${entry.id}.json`)) {
        try {
          const state = decodeEntry(await readFile(join(dirs.entryDir, `${entry.id}.json`), 'utf8'));
          if (state.id !== entry.id) throw new Error(`file name does not match entry id ${state.id}`);
          entry = state;
        } catch (err) {
          // The entry as queued is still known: deliver it (perhaps twice) rather than lose it.
          await moveAside(dirs.entryDir, `${entry.id}.json`, (err as Error).message);
        }
      }
      live.push(headOf(entry, messageId));
    }
    if (live.length === 0) {
      // Every entry finished but the message's removal was cut short.
      await unlink(join(dirs.msgDir, messageId)).catch(() => undefined);
      for (const f of files) await unlink(join(dirs.entryDir, f)).catch(() => undefined);
      removedOrphans += files.length;
    } else if (entries.length > 1) {
      host.setLive(messageId, live.length);
    }
    return live;
  };

  const dir = await opendir(dirs.msgDir, { bufferSize: 1024 });
  let batch: string[] = [];
  const flush = async () => {
    const heads = (await Promise.all(batch.map(readMessage))).flat();
    batch = [];
    recovered += heads.length;
    if (heads.length) options.onBatch(heads);
  };
  try {
    for await (const dirent of dir) {
      if (options.signal?.aborted) break;
      batch.push(dirent.name);
      if (batch.length >= BATCH) await flush();
    }
    if (!options.signal?.aborted) await flush();
  } finally {
    // for-await closes the directory when it runs to the end or breaks; a throw needs it too.
    await dir.close().catch(() => undefined);
  }
  if (options.signal?.aborted) return { recovered, corrupt, removedOrphans };

  for (const [messageId, files] of stateFiles) {
    if (host.isOwn(messageId)) continue;
    for (const f of files) await unlink(join(dirs.entryDir, f)).catch(() => undefined);
    removedOrphans += files.length;
  }
  await Promise.all([fsyncDir(dirs.entryDir), fsyncDir(dirs.msgDir), fsyncDir(dirs.corruptDir)]);
  return { recovered, corrupt, removedOrphans };
}
