import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSync, quietly, readFully, unlinkIfThere, writeFully } from './durable-fs.js';
import { copyDamageAside, moveSegmentAside } from './segment-aside.js';
import type { DamagedBytes, SegmentDamage } from './segment-aside.js';
import { MOVING_MARKER, readDoneLog, Segment, SEGMENT_FILE, segmentName } from './segment.js';
import { decodeEntries } from './entry-codec.js';
import { encodeRecord, RECORD_HEADER_LENGTH, readSegment } from './segment-file.js';
import type { MessageFiles } from './message-files.js';
import type { QueueEntry } from './types.js';

/** A segment is sealed (no more appends) once it passes this size (by default). */
const SEGMENT_BYTES = 16 * 1024 * 1024;
/**
 * A sealed segment whose live messages are at most this share of its records, for at
 * least RELOCATE_AFTER_MS, has them copied out to message files of their own and goes:
 * a few long-deferred messages must not keep megabytes of delivered ones on disk.
 */
const RELOCATE_SHARE = 0.25;
const RELOCATE_AFTER_MS = 60_000;
/**
 * Done logs are fdatasynced this long after a write at the latest, not before each
 * removal returns: a crash can then only deliver a message finished in that window
 * again (as Postfix and Haraka do, whose removals are unlinks never synced), never lose one.
 */
const DONE_FLUSH_MS = 50;
/** Recovery reads a segment this much at a time. */
const READ_PIECE = 1024 * 1024;

interface Location {
  readonly segment: Segment;
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly trailerLength: number;
}

/** What recovery decides for a message read back from a segment. */
export type RecoveredMessage = 'live' | 'gone';

/**
 * The queue's segments (`seg/`): small messages appended to one file at a time, each
 * append made durable by an fdatasync shared with every append in flight; a message
 * that leaves the queue is written to the segment's done log (`<segment>.done`), and a
 * sealed segment goes when its last message does.
 */
export class SegmentStore {
  private readonly dirSync: DirSync;
  private readonly located = new Map<string, Location>();
  private readonly segments = new Map<number, Segment>();
  /** The segment appends go to, and the one being created when there is none. */
  private current?: Segment;
  private opening?: Promise<Segment>;
  private nextNo = 1;
  /** Segments numbered below this were written by an earlier run: recovery's to read. */
  private firstOwn = 1;
  private readonly background = new Set<Promise<void>>();
  private sweepTimer?: NodeJS.Timeout;
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
  }

  /**
   * Creates `seg/` and settles a relocation a crash cut short (its copies go; the
   * segment, with its done log, is still the truth). Reads at most one segment per
   * interrupted relocation, so it stays quick.
   */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    let settled = false;
    for (const name of readdirSync(this.dir)) {
      const moving = MOVING_MARKER.exec(name);
      if (moving) {
        const path = join(this.dir, moving[1]);
        let data: Buffer | undefined;
        try {
          data = readFileSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        for (const item of data ? readSegment(data) : []) if (item.kind === 'record') this.messageFiles.drop(item.record.entries[0].messageId);
        unlinkIfThere(join(this.dir, name));
        settled = true;
        continue;
      }
      const seg = SEGMENT_FILE.exec(name);
      if (seg) this.nextNo = Math.max(this.nextNo, parseInt(seg[1], 16) + 1);
    }
    this.firstOwn = this.nextNo;
    if (settled) await this.dirSync.sync();
    this.sweepTimer = setInterval(() => void this.sweep(), RELOCATE_AFTER_MS / 4);
    this.sweepTimer.unref();
  }

  has(messageId: string): boolean {
    return this.located.has(messageId);
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
    this.located.set(messageId, { segment: seg, bodyOffset: start + RECORD_HEADER_LENGTH, bodyLength, trailerLength });
    seg.live.add(messageId);
    if (seg.size >= this.segmentBytes) this.seal(seg);
  }

  /** A sealed segment with nothing queued in it and nothing on its way in goes. */
  private retireIfEmpty(seg: Segment): void {
    if (seg.sealedAt !== undefined && seg.live.size === 0 && seg.pending === 0 && !seg.retiring) this.retire(seg, []);
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
    this.segments.set(no, seg);
    this.current = seg;
    return seg;
  }

  /** No more appends to `seg`; the next one opens a new segment. */
  private seal(seg: Segment): void {
    if (seg.sealedAt !== undefined) return;
    seg.sealedAt = this.now();
    if (this.current === seg) this.current = undefined;
    this.retireIfEmpty(seg);
  }

  readBody(messageId: string): Buffer {
    const loc = this.located.get(messageId)!;
    return loc.segment.read(loc.bodyOffset, loc.bodyLength);
  }

  private readTrailer(loc: Location): Buffer {
    return loc.segment.read(loc.bodyOffset + loc.bodyLength, loc.trailerLength);
  }

  /** The entries the message was queued with. */
  entries(messageId: string): QueueEntry[] {
    return decodeEntries(this.readTrailer(this.located.get(messageId)!).toString('utf8'));
  }

  /**
   * Records that the message left the queue (durably within DONE_FLUSH_MS). Resolves
   * false when the message was meanwhile copied out to a message file of its own: the
   * caller removes that.
   */
  async finish(messageId: string): Promise<boolean> {
    const loc = this.located.get(messageId);
    if (!loc) return false;
    const seg = loc.segment;
    if (seg.retiring) {
      await seg.retiring.catch(() => undefined);
      if (!this.located.has(messageId)) return false;
    }
    this.located.delete(messageId);
    seg.live.delete(messageId);
    try {
      await this.markDone(seg, [messageId]);
    } catch (err) {
      this.located.set(messageId, loc);
      seg.live.add(messageId);
      throw err;
    }
    this.retireIfEmpty(seg);
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
   * Sealed segments with few messages left have them copied out; empty ones go. Runs
   * every RELOCATE_AFTER_MS / 4; resolves when what it started is done.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const seg of this.segments.values()) {
      if (seg.sealedAt === undefined || seg.retiring || seg.pending > 0 || now - seg.sealedAt < RELOCATE_AFTER_MS) continue;
      if (seg.live.size === 0 || seg.live.size <= seg.records * RELOCATE_SHARE) this.retire(seg, [...seg.live]);
    }
    await Promise.all(this.background);
  }

  /**
   * Copies `relocate` out to message files, then removes the segment. A `.moving`
   * marker, made durable first, tells a restart that copies may exist whose segment is
   * still the truth (see open()).
   */
  private retire(seg: Segment, relocate: readonly string[]): void {
    const marker = `${seg.path}.moving`;
    seg.retiring = (async () => {
      const copied: string[] = [];
      if (relocate.length) {
        try {
          closeSync(openSync(marker, 'w', 0o640));
          await this.dirSync.sync();
          for (const id of relocate) {
            const loc = this.located.get(id);
            if (!loc) continue; // finished before the copying began
            await this.messageFiles.write(id, this.readBody(id), this.readTrailer(loc));
            copied.push(id);
          }
        } catch (err) {
          // The segment stays the truth: copies left behind would be delivered again
          // once it is gone, so they go now (and a restart drops any left, by the marker).
          // The marker goes only when every copy did.
          const dropped = copied.map((id) => quietly(() => this.messageFiles.drop(id)));
          if (dropped.every(Boolean)) quietly(() => unlinkIfThere(marker));
          throw err;
        }
      }
      unlinkIfThere(seg.path);
      unlinkIfThere(seg.donePath);
      await this.dirSync.sync();
      for (const id of seg.live) this.located.delete(id);
      seg.live.clear();
      this.segments.delete(seg.no);
      this.unsyncedDone.delete(seg);
      seg.close();
      if (relocate.length) unlinkIfThere(marker);
    })();
    const task = seg.retiring.catch(() => {
      // Left as it is; the next sweep or start tries again.
      seg.retiring = undefined;
    });
    this.background.add(task);
    void task.finally(() => this.background.delete(task));
  }

  /**
   * Reads back the segments an earlier run left, oldest first. `decide` says what each
   * message not in a done log is: live (kept, located) or gone (every entry finished:
   * put in the done log). Segments left with nothing live go.
   */
  async recover(options: {
    decide: (entries: QueueEntry[]) => RecoveredMessage;
    /** Called after each message: where the caller lets the event loop run. */
    between: () => Promise<void> | undefined;
    signal?: AbortSignal;
  }): Promise<SegmentDamage[]> {
    const { decide, between, signal } = options;
    const damage: SegmentDamage[] = [];
    const all = readdirSync(this.dir);
    const names = all.filter((n) => SEGMENT_FILE.test(n) && parseInt(n, 16) < this.firstOwn).sort();
    // A done log whose segment went (its removal was cut short) belongs to nothing.
    for (const n of all) {
      const seg = n.slice(0, -'.done'.length);
      if (n.endsWith('.done') && SEGMENT_FILE.test(seg) && parseInt(seg, 16) < this.firstOwn && !names.includes(seg)) unlinkIfThere(join(this.dir, n));
    }
    for (const name of names) {
      if (signal?.aborted) break;
      const no = parseInt(name, 16);
      const path = join(this.dir, name);
      const fd = openSync(path, 'r');
      const seg = new Segment(no, this.dir, fd, fstatSync(fd).size);
      this.segments.set(no, seg);
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
          this.located.set(messageId, { segment: seg, bodyOffset, bodyLength, trailerLength });
          seg.live.add(messageId);
        }
        const pause = between();
        if (pause) await pause;
        if (signal?.aborted) return damage;
      }
      if (seg.records === 0) {
        // Nothing in it reads back: the whole file goes aside for the operator, never away.
        seg.close();
        this.segments.delete(no);
        const error = damaged[0]?.error ?? (torn ? 'no record, only an append cut short' : 'empty segment, no record');
        damage.push(moveSegmentAside(this.corruptDir, path, name, error));
        continue;
      }
      damage.push(...(await copyDamageAside(this.corruptDir, name, data, damaged)));
      // Sealed only now: until the whole segment was read, an empty live set meant nothing.
      seg.sealedAt = this.now();
      if (gone.length && seg.live.size) await this.markDone(seg, gone);
      this.retireIfEmpty(seg);
    }
    return damage;
  }

  /** Waits for removals and relocations in progress; no more start. */
  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all(this.background);
    clearTimeout(this.doneFlush);
    await this.flushDone();
  }
}
