import { crc32 } from 'node:zlib';
import { decodeEntries, encodeEntries } from './entry-codec.js';
import type { QueueEntry } from './types.js';

/**
 * A segment is an append-only file of message records, so that many acceptances share
 * one file and one fdatasync instead of each creating (and fsyncing) a file of its own:
 * creating a file is by far the dearest thing an acceptance did (see bench/README.md).
 *
 * A record is a fixed-size header, the body byte for byte, then the message's entries as
 * queued (JSON):
 *
 *   "TERNS1 <body length, 12 hex> <trailer length, 8 hex> <crc32 of body and trailer, 8 hex>\n"
 *
 * The checksum tells a record that is all there from one cut short by a crash (never
 * acknowledged: its fdatasync had not returned) or damaged later.
 */
const MAGIC = Buffer.from('TERNS1 ');
export const RECORD_HEADER_LENGTH = MAGIC.length + 12 + 1 + 8 + 1 + 8 + 1;

/** The header, body and trailer of one record, ready to be appended in one write. */
export function encodeRecord(body: readonly Buffer[], bodyLength: number, entries: readonly QueueEntry[]): Buffer[] {
  const trailer = encodeEntries(entries);
  let crc = 0;
  for (const piece of body) crc = crc32(piece, crc);
  crc = crc32(trailer, crc);
  const header = Buffer.from(`${MAGIC.toString('latin1')}${hex(bodyLength, 12)} ${hex(trailer.length, 8)} ${hex(crc, 8)}\n`, 'latin1');
  return [header, ...body, trailer];
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

export interface SegmentRecord {
  /** Where the body starts in the segment. */
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly trailerLength: number;
  readonly entries: QueueEntry[];
}

/** What reading a segment finds, in file order. */
export type SegmentItem =
  | { readonly kind: 'record'; readonly record: SegmentRecord }
  /** Bytes that held no valid record but were followed by valid ones: damage. */
  | { readonly kind: 'damaged'; readonly offset: number; readonly length: number; readonly error: string }
  /** Bytes at the end that hold no complete record: a write a crash cut short. */
  | { readonly kind: 'torn'; readonly length: number };

function readRecord(data: Buffer, at: number): { record: SegmentRecord; end: number } | string {
  if (data.length - at < RECORD_HEADER_LENGTH) return 'header cut short';
  if (!data.subarray(at, at + MAGIC.length).equals(MAGIC)) return 'no record header';
  const header = /^([0-9a-f]{12}) ([0-9a-f]{8}) ([0-9a-f]{8})\n$/.exec(data.toString('latin1', at + MAGIC.length, at + RECORD_HEADER_LENGTH));
  if (!header) return 'malformed record header';
  const bodyLength = parseInt(header[1], 16);
  const trailerLength = parseInt(header[2], 16);
  const bodyOffset = at + RECORD_HEADER_LENGTH;
  const end = bodyOffset + bodyLength + trailerLength;
  if (end > data.length) return 'record cut short';
  if (crc32(data.subarray(bodyOffset, end)) !== parseInt(header[3], 16)) return 'checksum mismatch';
  try {
    const entries = decodeEntries(data.toString('utf8', bodyOffset + bodyLength, end));
    if (entries.some((e) => e.messageId !== entries[0].messageId || e.size !== bodyLength)) return 'entries disagree about their message';
    return { record: { bodyOffset, bodyLength, trailerLength, entries }, end };
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Reads a segment's records one at a time (each is checked and parsed only when its
 * turn comes, so that the caller can let the event loop run in between). Past a bad
 * spot it looks for the next record header, so that one damaged record does not cost
 * the ones after it; bad bytes with no valid record after them are the torn tail of the
 * last run.
 */
export function* readSegment(data: Buffer): Generator<SegmentItem> {
  let at = 0;
  while (at < data.length) {
    const read = readRecord(data, at);
    if (typeof read !== 'string') {
      yield { kind: 'record', record: read.record };
      at = read.end;
      continue;
    }
    let next = data.indexOf(MAGIC, at + 1);
    while (next !== -1 && typeof readRecord(data, next) === 'string') next = data.indexOf(MAGIC, next + 1);
    if (next === -1) {
      yield { kind: 'torn', length: data.length - at };
      return;
    }
    yield { kind: 'damaged', offset: at, length: next - at, error: read };
    at = next;
  }
}
