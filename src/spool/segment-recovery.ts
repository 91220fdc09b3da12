import { fstatSync, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readFully, unlinkIfThere } from './durable-fs.js';
import { copyDamageAside, moveSegmentAside } from './segment-aside.js';
import type { DamagedBytes, SegmentDamage } from './segment-aside.js';
import { readDoneLog, Segment, SEGMENT_FILE } from './segment.js';
import { readSegment } from './segment-file.js';
import type { SegmentIndex } from './segment-index.js';
import type { QueueEntry } from './types.js';

/** Recovery reads a segment this much at a time. */
const READ_PIECE = 1024 * 1024;

/** What recovery decides for a message read back from a segment. */
export type RecoveredMessage = 'live' | 'gone';

export interface SegmentRecoveryOptions {
  /** Says what each message not in a done log is: live (kept, located) or gone (every entry finished). */
  decide: (entries: QueueEntry[]) => RecoveredMessage;
  /** Called after each message: where the caller lets the event loop run. */
  between: () => Promise<void> | undefined;
  signal?: AbortSignal;
}

/** What recovery needs of the segment store it reads back into. */
export interface SegmentRecoveryHost {
  readonly dir: string;
  readonly corruptDir: string;
  /** Segments numbered below this were written by an earlier run; the rest are this run's own. */
  readonly firstOwn: number;
  readonly index: SegmentIndex;
  readonly now: () => number;
  /** Lists messages in a segment's done log. */
  markDone(seg: Segment, messageIds: readonly string[]): Promise<void>;
  retireIfEmpty(seg: Segment): void;
}

/**
 * Reads back the segments an earlier run left, oldest first. A message not in its
 * segment's done log is located when `decide` says it is live, and put in the done log
 * when every entry of it finished. Segments left with nothing live go; damaged bytes go
 * to corrupt/, never away.
 */
export async function recoverSegments(host: SegmentRecoveryHost, options: SegmentRecoveryOptions): Promise<SegmentDamage[]> {
  const { decide, between, signal } = options;
  const { dir, corruptDir, firstOwn, index } = host;
  const damage: SegmentDamage[] = [];
  const all = readdirSync(dir);
  const names = all.filter((n) => SEGMENT_FILE.test(n) && parseInt(n, 16) < firstOwn).sort();
  // A done log whose segment went (its removal was cut short) belongs to nothing.
  for (const n of all) {
    const seg = n.slice(0, -'.done'.length);
    if (n.endsWith('.done') && SEGMENT_FILE.test(seg) && parseInt(seg, 16) < firstOwn && !names.includes(seg)) unlinkIfThere(join(dir, n));
  }
  for (const name of names) {
    if (signal?.aborted) break;
    const no = parseInt(name, 16);
    const path = join(dir, name);
    const fd = openSync(path, 'r');
    const seg = new Segment(no, dir, fd, fstatSync(fd).size);
    index.segments.set(no, seg);
    // Read in pieces with the event loop served between them: from a cold disk a whole
    // segment in one read could hold the listener for longer than a slice.
    const data = Buffer.allocUnsafe(seg.size);
    for (let at = 0; at < seg.size; at += READ_PIECE) {
      readFully(fd, data.subarray(at, Math.min(at + READ_PIECE, seg.size)), at, `segment ${name}`);
      const pause = between();
      if (pause) await pause;
    }
    const done = new Set(readDoneLog(`${path}.done`));
    const gone: string[] = [];
    const damaged: DamagedBytes[] = [];
    let torn = false;
    for (const item of readSegment(data)) {
      if (item.kind === 'damaged') damaged.push(item);
      if (item.kind === 'torn') torn = true;
      if (item.kind !== 'record') continue;
      const { record } = item;
      seg.records++;
      const messageId = record.entries[0].messageId;
      if (done.has(messageId)) continue;
      const verdict = decide(record.entries);
      if (verdict === 'gone') gone.push(messageId);
      if (verdict === 'live') {
        const { bodyOffset, bodyLength, trailerLength } = record;
        index.locate(messageId, { segment: seg, bodyOffset, bodyLength, trailerLength });
      }
      const pause = between();
      if (pause) await pause;
      if (signal?.aborted) return damage;
    }
    if (seg.records === 0) {
      // Nothing in it reads back: the whole file goes aside for the operator, never away.
      index.forget(seg);
      const error = damaged[0]?.error ?? (torn ? 'no record, only an append cut short' : 'empty segment, no record');
      damage.push(moveSegmentAside(corruptDir, path, name, error));
      continue;
    }
    damage.push(...(await copyDamageAside(corruptDir, name, data, damaged)));
    // Sealed only now: until the whole segment was read, an empty live set meant nothing.
    seg.sealedAt = host.now();
    if (gone.length && seg.live.size) await host.markDone(seg, gone);
    host.retireIfEmpty(seg);
  }
  return damage;
}
