import { decodeEntries } from './entry-codec.js';
import type { Segment } from './segment.js';
import type { QueueEntry } from './types.js';

/** Where a queued message sits in a segment. */
export interface Location {
  readonly segment: Segment;
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly trailerLength: number;
}

/**
 * The segments of `seg/` this process has open, and where in them each queued message
 * is: what appends, removals, compaction and recovery share.
 */
export class SegmentIndex {
  readonly segments = new Map<number, Segment>();
  private readonly located = new Map<string, Location>();

  has(messageId: string): boolean {
    return this.located.has(messageId);
  }

  get(messageId: string): Location | undefined {
    return this.located.get(messageId);
  }

  /** Records where a message is; it is then live in its segment. */
  locate(messageId: string, loc: Location): void {
    this.located.set(messageId, loc);
    loc.segment.live.add(messageId);
  }

  /** Forgets where a message is (it left the queue); says where it was. */
  unlocate(messageId: string): Location | undefined {
    const loc = this.located.get(messageId);
    if (!loc) return undefined;
    this.located.delete(messageId);
    loc.segment.live.delete(messageId);
    return loc;
  }

  body(loc: Location): Buffer {
    return loc.segment.read(loc.bodyOffset, loc.bodyLength);
  }

  /** The entries the message was queued with, as their JSON array. */
  trailer(loc: Location): Buffer {
    return loc.segment.read(loc.bodyOffset + loc.bodyLength, loc.trailerLength);
  }

  entries(messageId: string): QueueEntry[] {
    return decodeEntries(this.trailer(this.located.get(messageId)!).toString('utf8'));
  }

  /** Forgets a segment gone from disk and whatever was located in it, and closes its files. */
  forget(seg: Segment): void {
    for (const id of seg.live) this.located.delete(id);
    seg.live.clear();
    this.segments.delete(seg.no);
    seg.close();
  }
}
