import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFully } from './durable-fs.js';
import { decodeEntries, encodeEntries } from './entry-codec.js';
import type { QueueEntry } from './types.js';

/**
 * A message file is the body, byte for byte, followed by a trailer: the message's
 * entries as first queued (JSON), and a fixed-size footer that says where the trailer
 * starts. One file, one fsync and one rename make an acceptance durable; the body's
 * bytes never move afterwards (a delivery reads [0, size)).
 *
 *   <body> <trailer JSON> "\nTERN1 <offset, 12 hex> <length, 8 hex>\n"
 */
const MAGIC = 'TERN1';
export const FOOTER_LENGTH = 1 + MAGIC.length + 1 + 12 + 1 + 8 + 1;
/** Most trailers fit in the first read from the end; larger ones need a second. */
const TAIL_READ = 64 * 1024;

export function encodeTrailer(offset: number, entries: readonly QueueEntry[]): Buffer {
  return trailerOf(offset, encodeEntries(entries));
}

/** The trailer for entries already encoded as a JSON array (a segment record's). */
export function trailerOf(offset: number, json: Buffer): Buffer {
  const footer = `\n${MAGIC} ${offset.toString(16).padStart(12, '0')} ${json.length.toString(16).padStart(8, '0')}\n`;
  return Buffer.concat([json, Buffer.from(footer)]);
}

/**
 * Reads the entries a message file was queued with (synchronously: a few microseconds
 * from the page cache); throws, saying why, when the trailer is unreadable.
 */
export function readTrailer(path: string): QueueEntry[] {
  const fd = openSync(path, 'r');
  try {
    const { size } = fstatSync(fd);
    if (size < FOOTER_LENGTH) throw new Error('message file too short for its trailer');
    const tailLength = Math.min(size, TAIL_READ);
    const tail = Buffer.allocUnsafe(tailLength);
    readFully(fd, tail, size - tailLength, 'message file');
    const footer = /^\nTERN1 ([0-9a-f]{12}) ([0-9a-f]{8})\n$/.exec(tail.toString('latin1', tailLength - FOOTER_LENGTH));
    if (!footer) throw new Error('no trailer footer');
    const offset = parseInt(footer[1], 16);
    const length = parseInt(footer[2], 16);
    if (offset + length + FOOTER_LENGTH !== size) throw new Error('trailer footer does not match the file size');
    let json: Buffer;
    if (size - offset <= tailLength) {
      const start = tailLength - (size - offset);
      json = tail.subarray(start, start + length);
    } else {
      json = Buffer.allocUnsafe(length);
      readFully(fd, json, offset, 'message file');
    }
    return decodeEntries(json.toString('utf8'));
  } finally {
    closeSync(fd);
  }
}
