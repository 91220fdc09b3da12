import { closeSync, ftruncateSync, openSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSync, unlinkIfThere, writeFully } from './durable-fs.js';
import type { SegmentDamage } from './segment-aside.js';
import { Segment, SEGMENT_FILE, segmentName } from './segment.js';
import { encodeRecord, RECORD_HEADER_LENGTH } from './segment-file.js';
import { SegmentIndex } from './segment-index.js';
import { SegmentCompactor, settleInterruptedRelocations } from './segment-compaction.js';
import { recoverSegments } from './segment-recovery.js';
import type { SegmentRecoveryOptions } from './segment-recovery.js';
import type { MessageFiles } from './message-files.js';
import type { QueueEntry } from './types.js';

/** A segment is sealed (no more appends) once it passes this size (by default). */
const SEGMENT_BYTES = 16 * 1024 * 1024;
/**
 * Done logs are fdatasynced this long after a write at the latest, not before each
 * removal returns: a crash can then only deliver a message finished in that window
 * again (as Postfix and Haraka do, whose removals are unlinks never synced), never lose one.
 */
const DONE_FLUSH_MS = 50;

/**
 * The queue's segments (`seg/`): small messages appended to one file at a time, each
 * append made durable by an fdatasync shared with every append in flight; a message
 * that leaves the queue is written to the segment's done log (`<segment>.done`), and a
 * sealed segment goes when its last message does.
 */
export class SegmentStore {
  private readonly dirSync: DirSync;
  private readonly index = new SegmentIndex();
  private readonly compactor: SegmentCompactor;
  /** The segment appends go to, and the one being created when there is none. */
  private current?: Segment;
  private opening?: Promise<Segment>;
  private nextNo = 1;
  /** Segments numbered below this were written by an earlier run: recovery's to read. */
  private firstOwn = 1;
  private readonly unsyncedDone = new Set<Segment>();
  private doneFlush?: NodeJS.Timeout;

  readonly dir: string;
  private readonly corruptDir: string;
  /** Where messages copied out of a segment go. */
  private readonly messageFiles: MessageFiles;
  private readonly now: () => number;
  private readonly segmentBytes: number;

  constructor(options: { dir: string; corruptDir: string; messageFiles: MessageFiles; now?: () => number; segmentBytes?: number }) {
    this.dir = options.dir;
    this.corruptDir = options.corruptDir;
    this.messageFiles = options.messageFiles;
    this.now = options.now ?? Date.now;
    this.segmentBytes = options.segmentBytes ?? SEGMENT_BYTES;
    this.dirSync = new DirSync(this.dir);
    this.compactor = new SegmentCompactor({
      index: this.index,
      dirSync: this.dirSync,
      messageFiles: this.messageFiles,
      now: this.now,
      onRetired: (seg) => this.unsyncedDone.delete(seg),
    });
  }

  /**
   * Creates `seg/` and settles a relocation a crash cut short (its copies go; the
   * segment, with its done log, is still the truth). Reads at most one segment per
   * interrupted relocation, so it stays quick.
   */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const names = readdirSync(this.dir);
    const settled = settleInterruptedRelocations(this.dir, names, this.messageFiles);
    for (const name of names) {
      const seg = SEGMENT_FILE.exec(name);
      if (seg) this.nextNo = Math.max(this.nextNo, parseInt(seg[1], 16) + 1);
    }
    this.firstOwn = this.nextNo;
    if (settled) await this.dirSync.sync();
    this.compactor.start();
  }

  has(messageId: string): boolean {
    return this.index.has(messageId);
  }

  /**
   * Appends a message and resolves once it is durable. On a failed write the segment is
   * cut back to where the record began, so that no partial record sits between whole ones.
   */
  async append(messageId: string, body: readonly Buffer[], bodyLength: number, entries: readonly QueueEntry[]): Promise<void> {
    const active = this.activeSegment();
    const seg = active instanceof Promise ? await active : active;
    const pieces = encodeRecord(body, bodyLength, entries);
    const record = Buffer.concat(pieces);
    const start = seg.size;
    try {
      writeFully(seg.fd, record);
    } catch (err) {
      try {
        ftruncateSync(seg.fd, start);
      } catch {
        this.seal(seg); // cannot cut it back: nothing more goes after the damage
      }
      throw err;
    }
    seg.size += record.length;
    seg.records++;
    seg.pending++;
    try {
      await seg.dataSync.sync();
    } catch (err) {
      // Whether the record reached the disk is unknown: no more appends to this segment,
      // and the client, told 451, will send the message again; the done log says so to
      // a restart that finds the record after all.
      await this.markDone(seg, [messageId]).catch(() => undefined);
      seg.pending--;
      this.seal(seg);
      throw err;
    }
    seg.pending--;
    const trailerLength = pieces[pieces.length - 1].length;
    this.index.locate(messageId, { segment: seg, bodyOffset: start + RECORD_HEADER_LENGTH, bodyLength, trailerLength });
    if (seg.size >= this.segmentBytes) this.seal(seg);
  }

  private activeSegment(): Segment | Promise<Segment> {
    if (this.current) return this.current;
    this.opening ??= this.openSegment().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async openSegment(): Promise<Segment> {
    const no = this.nextNo++;
    const path = join(this.dir, segmentName(no));
    const fd = openSync(path, 'wx+', 0o640);
    try {
      // Its name must survive a crash before any record in it is acknowledged.
      await this.dirSync.sync();
    } catch (err) {
      closeSync(fd);
      unlinkIfThere(path);
      throw err;
    }
    const seg = new Segment(no, this.dir, fd, 0);
    this.index.segments.set(no, seg);
    this.current = seg;
    return seg;
  }

  /** No more appends to `seg`; the next one opens a new segment. */
  private seal(seg: Segment): void {
    if (seg.sealedAt !== undefined) return;
    seg.sealedAt = this.now();
    if (this.current === seg) this.current = undefined;
    this.compactor.retireIfEmpty(seg);
  }

  bodyBytes(messageId: string): Buffer {
    return this.index.body(this.index.get(messageId)!);
  }

  /** The entries the message was queued with. */
  entries(messageId: string): QueueEntry[] {
    return this.index.entries(messageId);
  }

  /**
   * Records that the message left the queue (durably within DONE_FLUSH_MS). Resolves
   * false when the message was meanwhile copied out to a message file of its own: the
   * caller removes that.
   */
  async finish(messageId: string): Promise<boolean> {
    const loc = this.index.get(messageId);
    if (!loc) return false;
    const seg = loc.segment;
    if (seg.retiring) {
      await seg.retiring.catch(() => undefined);
      if (!this.index.has(messageId)) return false;
    }
    this.index.unlocate(messageId);
    try {
      await this.markDone(seg, [messageId]);
    } catch (err) {
      this.index.locate(messageId, loc);
      throw err;
    }
    this.compactor.retireIfEmpty(seg);
    return true;
  }

  private async markDone(seg: Segment, messageIds: readonly string[]): Promise<void> {
    await seg.appendDone(messageIds, this.dirSync);
    this.unsyncedDone.add(seg);
    this.doneFlush ??= setTimeout(() => void this.flushDone(), DONE_FLUSH_MS).unref();
  }

  private async flushDone(): Promise<void> {
    this.doneFlush = undefined;
    const segs = [...this.unsyncedDone];
    this.unsyncedDone.clear();
    // A failed sync leaves only the risk of a second delivery after a crash.
    await Promise.all(segs.map((seg) => seg.syncDone().catch(() => undefined)));
  }

  /**
   * Old segments with few messages left have them copied out to message files and go,
   * empty ones go (what runs every fifteen seconds anyway). Resolves when done.
   */
  retireSparseSegments(): Promise<void> {
    return this.compactor.retireSparseSegments();
  }

  /** Reads back the segments an earlier run left (see segment-recovery.ts). */
  recover(options: SegmentRecoveryOptions): Promise<SegmentDamage[]> {
    return recoverSegments(
      {
        dir: this.dir,
        corruptDir: this.corruptDir,
        firstOwn: this.firstOwn,
        index: this.index,
        now: this.now,
        markDone: (seg, ids) => this.markDone(seg, ids),
        retireIfEmpty: (seg) => this.compactor.retireIfEmpty(seg),
      },
      options,
    );
  }

  /** Waits for removals and relocations in progress; no more start. */
  async close(): Promise<void> {
    await this.compactor.close();
    clearTimeout(this.doneFlush);
    await this.flushDone();
  }
}
