import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeEntry } from '../src/spool/entry-codec.js';
import { encodeTrailer } from '../src/spool/message-file.js';
import type { QueueEntry } from '../src/spool/index.js';
import type { World } from '../test/helpers/world.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import { message } from '../test/helpers/smtp-client.js';
import { peakRssMb } from './systems.js';

const ENTRIES_PER_MESSAGE = 10;
/** Entries due right away when the daemon starts (the rest wait an hour): what "first delivery" measures. */
const DUE_NOW = 1000;

function currentRssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/**
 * Writes a queue as a stopped daemon would have left it: `entries` entries, ten per
 * message (one per destination domain, sharing the message file), each already deferred
 * once (so each has a state file too: the costlier case to read back). Written directly,
 * without fsync: this is setup, not what is measured.
 */
function writeQueue(dir: string, entries: number, now: number): void {
  for (const d of ['entries', 'msg', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  const body = Buffer.from(message('big queue'));
  for (let m = 0; m * ENTRIES_PER_MESSAGE < entries; m++) {
    const messageId = `BQ${m.toString(36).toUpperCase().padStart(6, '0')}`;
    const siblings = Math.min(ENTRIES_PER_MESSAGE, entries - m * ENTRIES_PER_MESSAGE);
    const queued: QueueEntry[] = [];
    for (let k = 1; k <= siblings; k++) {
      const n = m * ENTRIES_PER_MESSAGE + k - 1;
      const domain = `bq${k - 1}.test`;
      queued.push({
        id: `${messageId}.${k}`, messageId, domain, sender: 'bench@client.test',
        recipients: [{ address: `user${n}@${domain}`, state: 'pending' }],
        dsn: {}, smtpUtf8: false, bodyType: '7bit', queuedAt: now - 600_000, size: body.length, siblings,
        attempts: 0, tempFailures: 0, nextAttemptAt: now - 600_000,
      });
    }
    writeFileSync(join(dir, 'msg', messageId), Buffer.concat([body, encodeTrailer(body.length, queued)]));
    for (const entry of queued) {
      const n = m * ENTRIES_PER_MESSAGE + Number(entry.id.split('.')[1]) - 1;
      const deferred: QueueEntry = {
        ...entry,
        recipients: [{ ...entry.recipients[0], state: 'deferred', lastReply: { code: 451, enhanced: '4.4.1', text: 'Connection timed out' } }],
        attempts: 1, tempFailures: 1, nextAttemptAt: n < DUE_NOW ? now - 1000 : now + 3600_000,
      };
      writeFileSync(join(dir, 'entries', `${entry.id}.json`), encodeEntry(deferred));
    }
  }
}

/**
 * Big queue: a restart with `entries` queued entries. Seconds from spawning the daemon
 * until its listener answers, until the first delivery, and until every entry is back
 * under the scheduler; RSS once the due entries are delivered and the queue is idle.
 */
export async function bigQueue(world: World, entries: number): Promise<Record<string, unknown>> {
  for (let k = 0; k < ENTRIES_PER_MESSAGE; k++) world.dns.add(`bq${k}.test`, { type: 'MX', preference: 10, exchange: 'mx.other.test' });
  const queue = tempQueue();
  const w0 = process.hrtime.bigint();
  writeQueue(queue, entries, Date.now());
  const writeSeconds = Number(process.hrtime.bigint() - w0) / 1e9;
  const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e9;
  try {
    const t0 = process.hrtime.bigint();
    const tern = await world.tern({ outbound: 'concurrency_max=64' }, queue);
    const listening = since(t0);
    try {
      await tern.waitFor((r) => r.type === 'Delivery' && String(r.domain).startsWith('bq'), 600_000);
      const firstDelivery = since(t0);
      const recovered = await tern.waitFor((r) => r.msg === 'queue recovered', 1_800_000);
      const recoveredSeconds = since(t0);
      await tern.waitForCount((r) => r.type === 'Delivery' && String(r.domain).startsWith('bq'), Math.min(DUE_NOW, entries), 600_000);
      // Let the collector settle after the recovery burst before sampling what idle costs.
      await new Promise((r) => setTimeout(r, 5000));
      const pid = tern.child.pid!;
      return {
        scenario: 'big queue', entries, written_s: +writeSeconds.toFixed(1),
        listening_s: +listening.toFixed(2), first_delivery_s: +firstDelivery.toFixed(2), recovered_s: +recoveredSeconds.toFixed(2),
        recovered_entries: recovered.entries, idle_rss_mb: +currentRssMb(pid).toFixed(1), peak_rss_mb: +peakRssMb([pid]).toFixed(1),
      };
    } finally {
      await tern.stop();
    }
  } finally {
    rmSync(queue, { recursive: true, force: true });
  }
}
