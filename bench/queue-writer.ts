import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeEntry } from '../src/spool/entry-codec.js';
import { encodeRecord } from '../src/spool/segment-file.js';
import type { QueueEntry } from '../src/spool/index.js';
import { message } from '../test/helpers/smtp-client.js';

export interface QueueShape {
  readonly entries: number;
  /** Entries per message (one per destination domain, sharing the message file). */
  readonly perMessage: number;
  /** Destination domain of the k-th entry of a message. */
  domain(k: number): string;
  /** When entry n (0-based, in writing order) is next due. */
  dueAt(n: number): number;
  /** Prefix of the message ids, so that queues written for different scenarios never mix. */
  readonly prefix: string;
}

/** Tern seals a segment past 16 MiB; the written queue does the same. */
const SEGMENT_BYTES = 16 * 1024 * 1024;

/**
 * Writes a queue as a stopped daemon would have left it: small messages in segments,
 * every entry already deferred once, so each has a state file besides its record (the
 * costlier case to read back). Written directly, without fsync: this is setup, not what
 * is measured.
 */
export function writeQueue(dir: string, shape: QueueShape, now = Date.now()): void {
  for (const d of ['entries', 'msg', 'tmp', 'seg']) mkdirSync(join(dir, d), { recursive: true });
  const body = Buffer.from(message(`${shape.prefix} queue`));
  let segment: Buffer[] = [];
  let segmentSize = 0;
  let segmentNo = 0;
  const seal = () => {
    if (!segmentSize) return;
    writeFileSync(join(dir, 'seg', (++segmentNo).toString(16).padStart(8, '0')), Buffer.concat(segment));
    segment = [];
    segmentSize = 0;
  };
  for (let m = 0; m * shape.perMessage < shape.entries; m++) {
    const messageId = `${shape.prefix}${m.toString(36).toUpperCase().padStart(6, '0')}`;
    const siblings = Math.min(shape.perMessage, shape.entries - m * shape.perMessage);
    const queued: QueueEntry[] = [];
    for (let k = 1; k <= siblings; k++) {
      const n = m * shape.perMessage + k - 1;
      const domain = shape.domain(k - 1);
      queued.push({
        id: `${messageId}.${k}`, messageId, domain, sender: 'bench@client.test',
        recipients: [{ address: `${shape.prefix.toLowerCase()}${n}@${domain}`, state: 'pending' }],
        dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: now - 600_000, size: body.length, entriesOfMessage: siblings,
        attempts: 0, tempFailures: 0, nextAttemptAt: now - 600_000,
      });
    }
    const record = Buffer.concat(encodeRecord([body], body.length, queued));
    segment.push(record);
    segmentSize += record.length;
    if (segmentSize >= SEGMENT_BYTES) seal();
    queued.forEach((entry, i) => {
      const deferred: QueueEntry = {
        ...entry,
        recipients: [{ ...entry.recipients[0], state: 'deferred', lastReply: { code: 451, enhanced: '4.4.1', text: 'Connection timed out' } }],
        attempts: 1, tempFailures: 1, nextAttemptAt: shape.dueAt(m * shape.perMessage + i),
      };
      writeFileSync(join(dir, 'entries', `${entry.id}.json`), encodeEntry(deferred));
    });
  }
  seal();
}
