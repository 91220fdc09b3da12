import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { quietly, unlinkIfThere } from './durable-fs.js';
import type { DirSync } from './durable-fs.js';
import type { MessageFiles } from './message-files.js';
import { MOVING_MARKER } from './segment.js';
import type { Segment } from './segment.js';
import { readSegment } from './segment-file.js';
import type { SegmentIndex } from './segment-index.js';

/**
 * A sealed segment whose live messages are at most this share of its records, for at
 * least RELOCATE_AFTER_MS, has them copied out to message files of their own and goes:
 * a few long-deferred messages must not keep megabytes of delivered ones on disk.
 */
const RELOCATE_SHARE = 0.25;
const RELOCATE_AFTER_MS = 60_000;

/**
 * Removes segments nothing is queued in any more, and copies the last few messages of
 * old, sparse ones out to message files so that the segment can go. A `.moving` marker,
 * made durable before the first copy, tells a restart that copies may exist whose
 * segment is still the truth (see settleInterruptedRelocations()).
 */
export class SegmentCompactor {
  private readonly background = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly deps: {
      readonly index: SegmentIndex;
      /** Group commit of `seg/`'s directory. */
      readonly dirSync: DirSync;
      readonly messageFiles: MessageFiles;
      readonly now: () => number;
      /** Called as a segment is removed: its done log needs no more syncing. */
      readonly onRetired: (seg: Segment) => void;
    },
  ) {}

  /** Checks every RELOCATE_AFTER_MS / 4 from now on. */
  start(): void {
    this.timer = setInterval(() => void this.retireSparseSegments(), RELOCATE_AFTER_MS / 4);
    this.timer.unref();
  }

  /** A sealed segment with nothing queued in it and nothing on its way in goes. */
  retireIfEmpty(seg: Segment): void {
    if (seg.sealedAt !== undefined && seg.live.size === 0 && seg.pending === 0 && !seg.retiring) this.retire(seg, []);
  }

  /**
   * Sealed segments with few messages left have them copied out; empty ones go.
   * Resolves when what it started is done.
   */
  async retireSparseSegments(): Promise<void> {
    const now = this.deps.now();
    for (const seg of this.deps.index.segments.values()) {
      if (seg.sealedAt === undefined || seg.retiring || seg.pending > 0 || now - seg.sealedAt < RELOCATE_AFTER_MS) continue;
      if (seg.live.size === 0 || seg.live.size <= seg.records * RELOCATE_SHARE) this.retire(seg, [...seg.live]);
    }
    await Promise.all(this.background);
  }

  /** Copies `relocate` out to message files, then removes the segment. */
  private retire(seg: Segment, relocate: readonly string[]): void {
    const { index, dirSync, messageFiles } = this.deps;
    const marker = `${seg.path}.moving`;
    seg.retiring = (async () => {
      const copied: string[] = [];
      if (relocate.length) {
        try {
          closeSync(openSync(marker, 'w', 0o640));
          await dirSync.sync();
          for (const id of relocate) {
            const loc = index.get(id);
            if (!loc) continue; // finished before the copying began
            await messageFiles.write(id, index.body(loc), index.trailer(loc));
            copied.push(id);
          }
        } catch (err) {
          // The segment stays the truth: copies left behind would be delivered again
          // once it is gone, so they go now (and a restart drops any left, by the marker).
          // The marker goes only when every copy did.
          const dropped = copied.map((id) => quietly(() => messageFiles.drop(id)));
          if (dropped.every(Boolean)) quietly(() => unlinkIfThere(marker));
          throw err;
        }
      }
      unlinkIfThere(seg.path);
      unlinkIfThere(seg.donePath);
      await dirSync.sync();
      this.deps.onRetired(seg);
      index.forget(seg);
      if (relocate.length) unlinkIfThere(marker);
    })();
    const task = seg.retiring.catch(() => {
      // Left as it is; the next check or start tries again.
      seg.retiring = undefined;
    });
    this.background.add(task);
    void task.finally(() => this.background.delete(task));
  }

  /** Stops the checks and waits for removals and relocations in progress. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.background);
  }
}

/**
 * Settles relocations a crash cut short: their copies go, the segment (with its done
 * log) is still the truth. Reads at most one segment per interrupted relocation, so it
 * stays quick. `names` are the files in `dir`. Says whether there was any (then `seg/`
 * needs an fsync).
 */
export function settleInterruptedRelocations(dir: string, names: readonly string[], messageFiles: MessageFiles): boolean {
  let settled = false;
  for (const name of names) {
    const moving = MOVING_MARKER.exec(name);
    if (!moving) continue;
    let data: Buffer | undefined;
    try {
      data = readFileSync(join(dir, moving[1]));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const item of data ? readSegment(data) : []) if (item.kind === 'record') messageFiles.drop(item.record.entries[0].messageId);
    unlinkIfThere(join(dir, name));
    settled = true;
  }
  return settled;
}
