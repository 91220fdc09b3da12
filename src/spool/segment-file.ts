import { crc32 } from 'node:zlib';
import { prefixBytes } from './new-entries.js';
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
  /** Bytes that held no valid record although they were written whole: damage. */
  | { readonly kind: 'damaged'; readonly offset: number; readonly length: number; readonly error: string }
  /** Bytes at the end that hold an append a crash cut short (never acknowledged). */
  | { readonly kind: 'torn'; readonly length: number };

type Attempt =
  | { readonly record: SegmentRecord; readonly end: number }
  /** `end` is where the record ends by its header, when the header is whole and well formed. */
  | { readonly error: string; readonly end?: number; readonly crc?: number; readonly bodyOffset?: number };

const HEADER = /^([0-9a-f]{12}) ([0-9a-f]{8}) ([0-9a-f]{8})\n$/;

function readRecord(data: Buffer, at: number): Attempt {
  if (data.length - at < RECORD_HEADER_LENGTH) return { error: 'header cut short' };
  if (!data.subarray(at, at + MAGIC.length).equals(MAGIC)) return { error: 'no record header' };
  const header = HEADER.exec(data.toString('latin1', at + MAGIC.length, at + RECORD_HEADER_LENGTH));
  if (!header) return { error: 'malformed record header' };
  const bodyLength = parseInt(header[1], 16);
  const trailerLength = parseInt(header[2], 16);
  const crc = parseInt(header[3], 16);
  const bodyOffset = at + RECORD_HEADER_LENGTH;
  const end = bodyOffset + bodyLength + trailerLength;
  if (end > data.length) return { error: 'record cut short', end, crc, bodyOffset };
  if (crc32(data.subarray(bodyOffset, end)) !== crc) return { error: 'checksum mismatch', end };
  try {
    const entries = decodeEntries(data.toString('utf8', bodyOffset + bodyLength, end));
    // An entry's size counts its header prefix, which is stored with the entry, not the body.
    if (entries.some((e) => e.messageId !== entries[0].messageId || e.size !== bodyLength + prefixBytes(e))) return { error: 'entries disagree about their message', end };
    return { record: { bodyOffset, bodyLength, trailerLength, entries }, end };
  } catch (err) {
    return { error: (err as Error).message, end };
  }
}

const isRecordAt = (data: Buffer, at: number) => at < data.length && 'record' in readRecord(data, at);

/** Whether byte `i` of a header may be `byte`: MAGIC, then hex digits, spaces and the newline. */
function fitsHeader(i: number, byte: number): boolean {
  if (i < MAGIC.length) return byte === MAGIC[i];
  const j = i - MAGIC.length;
  if (j === 12 || j === 21) return byte === 0x20;
  if (j === 30) return byte === 0x0a;
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66);
}

/**
 * Whether the bytes from `at` to the end are what an append cut short by a crash leaves:
 * the start of a record whose declared length runs past the end of the file, or nothing
 * but zeros (a file system that made the file's new size durable before its data). Such
 * an append's fdatasync never returned, so it was never acknowledged.
 *
 * A whole header whose length runs past the end while the bytes after it carry the
 * header's checksum is not torn: the record is all there and its length field is what
 * was damaged, so the record goes to corrupt/ like any other damaged one.
 */
function isTornTail(data: Buffer, at: number): boolean {
  const rest = data.subarray(at);
  if (rest.every((b) => b === 0)) return true;
  if (rest.length < RECORD_HEADER_LENGTH) return rest.every((b, i) => fitsHeader(i, b));
  const read = readRecord(data, at);
  if ('record' in read || read.end === undefined || read.end <= data.length) return false;
  return crc32(data.subarray(read.bodyOffset!)) !== read.crc;
}

/**
 * Reads a segment's records one at a time (each is checked and parsed only when its
 * turn comes, so that the caller can let the event loop run in between).
 *
 * Only one kind of damage is legitimate: the last append of a run that a crash cut
 * short, whose fdatasync never returned and which was therefore never acknowledged. It
 * can only sit at the very end of the file (a restart appends to a new segment, and a
 * failed write is cut back before the next append), and it is always shorter than its
 * header says. Everything else that does not read back is damage to something that was
 * acknowledged, and is reported (to corrupt/), wherever it sits:
 *
 * - a whole record (its declared length fits within the file) whose checksum fails;
 * - bad bytes followed by a valid record: a later record exists, so these bytes were
 *   written whole before it, even when a damaged length field points past the end;
 * - bad bytes at the end that are not the start of a record cut short (a damaged
 *   header, or a damaged length field whose record is all there by its checksum).
 *
 * The length field has no checksum of its own, so it is trusted only when it agrees
 * with the file: the record it bounds ends at the end of the file, at a valid record,
 * or at a torn tail. Otherwise the reader looks for the next valid record header, so
 * that one damaged length does not cost the records after it.
 */
export function* readSegment(data: Buffer): Generator<SegmentItem> {
  let at = 0;
  while (at < data.length) {
    const read = readRecord(data, at);
    if ('record' in read) {
      yield { kind: 'record', record: read.record };
      at = read.end;
      continue;
    }
    const { end } = read;
    if (end !== undefined && end > at && end <= data.length && (end === data.length || isRecordAt(data, end) || isTornTail(data, end))) {
      yield { kind: 'damaged', offset: at, length: end - at, error: read.error };
      at = end;
      continue;
    }
    let next = data.indexOf(MAGIC, at + 1);
    while (next !== -1 && !isRecordAt(data, next)) next = data.indexOf(MAGIC, next + 1);
    if (next === -1 && isTornTail(data, at)) {
      yield { kind: 'torn', length: data.length - at };
      return;
    }
    const stop = next === -1 ? data.length : next;
    yield { kind: 'damaged', offset: at, length: stop - at, error: read.error };
    at = stop;
  }
}
