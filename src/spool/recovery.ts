import { readFileSync, renameSync, unlinkSync } from 'node:fs';
import { opendir, readdir } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { join } from 'node:path';
import { decodeEntry } from './entry-codec.js';
import { entryHead } from './entry-head.js';
import { fsyncDir, quietly } from './durable-fs.js';
import type { MessageFiles } from './message-files.js';
import type { SegmentStore } from './segment-store.js';
import type { EntryHead, QueueEntry, RecoveryOptions, RecoveryReport } from './types.js';

export interface QueueDirs {
  readonly messageFiles: MessageFiles;
  readonly entryDir: string;
  readonly corruptDir: string;
  readonly segments: SegmentStore;
}

export interface RecoveryHost {
  /** Messages this process queued itself (during the scan): already known, skipped. */
  isOwn(messageId: string): boolean;
  /** Live entries of a message that was queued with several. */
  setLive(messageId: string, live: number): void;
}

/**
 * Files are read synchronously (from the page cache that is microseconds, where a
 * thread-pool trip costs tens of microseconds of CPU) in slices of this many ms, with
 * the event loop served in between: the listener never waits longer than one slice.
 */
const SLICE_MS = 10;

const messageIdOf = (name: string) => /^([A-Za-z0-9]+)\.\d+\.(json|done)$/.exec(name)?.[1];

/**
 * Reads back a queue left by an earlier run, one message at a time from its file or its
 * segment (which give the entries it was queued with; a state file in entries/
 * overrides one entry, a `.done` marker retires it), and hands the live entries over in
 * batches. Runs while the daemon already accepts mail, so that a queue of a million
 * entries costs no downtime.
 */
export async function recoverQueue(dirs: QueueDirs, host: RecoveryHost, options: RecoveryOptions): Promise<RecoveryReport> {
  const corrupt: { file: string; error: string }[] = [];
  let recovered = 0;
  let removedOrphans = 0;
  const moveAside = (dir: string, name: string, error: string) => {
    corrupt.push({ file: name, error });
    quietly(() => renameSync(join(dir, name), join(dirs.corruptDir, name)));
  };

  // State files by message, taken before the scan: what is left at the end has no message.
  const stateFiles = new Map<string, string[]>();
  for (const name of await readdir(dirs.entryDir)) {
    const messageId = messageIdOf(name);
    if (!messageId) {
      moveAside(dirs.entryDir, name, 'not a state file');
      continue;
    }
    const list = stateFiles.get(messageId);
    if (list) list.push(name);
    else stateFiles.set(messageId, [name]);
  }

  /** The live heads of a message's entries as queued; `gone` when none is left. */
  const settle = (messageId: string, entries: QueueEntry[]): EntryHead[] => {
    const files = stateFiles.get(messageId) ?? [];
    stateFiles.delete(messageId);
    const names = new Set(files);
    const live: EntryHead[] = [];
    for (let entry of entries) {
      if (names.has(`${entry.id}.done`)) continue;
      if (names.has(`${entry.id}.json`)) {
        try {
          const state = decodeEntry(readFileSync(join(dirs.entryDir, `${entry.id}.json`), 'utf8'));
          if (state.id !== entry.id) throw new Error(`file name does not match entry id ${state.id}`);
          entry = state;
        } catch (err) {
          // The entry as queued is still known: deliver it (perhaps twice) rather than lose it.
          moveAside(dirs.entryDir, `${entry.id}.json`, (err as Error).message);
        }
      }
      live.push(entryHead(entry, messageId));
    }
    if (live.length === 0) {
      // Every entry finished but the message's removal was cut short.
      for (const f of files) quietly(() => unlinkSync(join(dirs.entryDir, f)));
      removedOrphans += files.length;
    } else if (entries.length > 1) {
      host.setLive(messageId, live.length);
    }
    return live;
  };

  const readMessageFile = (messageId: string): EntryHead[] => {
    if (host.isOwn(messageId)) return [];
    let entries: QueueEntry[];
    try {
      entries = dirs.messageFiles.entries(messageId);
      if (entries.some((e) => e.messageId !== messageId)) throw new Error('trailer names another message');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      moveAside(dirs.messageFiles.dir, messageId, (err as Error).message);
      for (const f of stateFiles.get(messageId) ?? []) moveAside(dirs.entryDir, f, `state of corrupt message ${messageId}`);
      stateFiles.delete(messageId);
      return [];
    }
    const live = settle(messageId, entries);
    if (live.length === 0) quietly(() => dirs.messageFiles.drop(messageId));
    return live;
  };

  const dir = await opendir(dirs.messageFiles.dir, { bufferSize: 1024 });
  let heads: EntryHead[] = [];
  const handOver = () => {
    recovered += heads.length;
    if (heads.length) options.onBatch(heads);
    heads = [];
  };
  let sliceStart = performance.now();
  const between = (): Promise<void> | undefined => {
    if (performance.now() - sliceStart < SLICE_MS) return undefined;
    handOver();
    return nextTurn().then(() => {
      sliceStart = performance.now();
    });
  };
  // for-await closes the directory however the loop ends (end, break or throw).
  for await (const dirent of dir) {
    if (options.signal?.aborted) break;
    for (const head of readMessageFile(dirent.name)) heads.push(head);
    await between();
  }
  const damage = await dirs.segments.recover({
    decide: (entries) => {
      const live = settle(entries[0].messageId, entries);
      for (const head of live) heads.push(head);
      return live.length ? 'live' : 'gone';
    },
    between,
    signal: options.signal,
  });
  for (const d of damage) corrupt.push(d);
  if (!options.signal?.aborted) handOver();
  if (options.signal?.aborted) return { recovered, corrupt, removedOrphans };

  for (const [messageId, files] of stateFiles) {
    if (host.isOwn(messageId)) continue;
    for (const f of files) quietly(() => unlinkSync(join(dirs.entryDir, f)));
    removedOrphans += files.length;
  }
  await Promise.all([fsyncDir(dirs.entryDir), dirs.messageFiles.syncDir(), fsyncDir(dirs.corruptDir)]);
  return { recovered, corrupt, removedOrphans };
}
