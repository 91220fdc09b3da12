import { rmSync } from 'node:fs';
import type { World } from '../test/helpers/world.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import { peakRssMb, rssMb } from './systems.js';
import { writeQueue } from './queue-writer.js';
import { measureScrapes } from './metrics-scrape.js';

const ENTRIES_PER_MESSAGE = 10;
/** Entries due right away when the daemon starts (the rest wait an hour): what "first delivery" measures. */
const DUE_NOW = 1000;

/**
 * Big queue: a restart with `entries` queued entries. Seconds from spawning the daemon
 * until its listener answers, until the first delivery, and until every entry is back
 * under the scheduler; RSS once the due entries are delivered and the queue is idle.
 */
export async function bigQueue(world: World, entries: number): Promise<Record<string, unknown>> {
  for (let k = 0; k < ENTRIES_PER_MESSAGE; k++) world.dns.add(`bq${k}.test`, { type: 'MX', preference: 10, exchange: 'mx.other.test' });
  const queue = tempQueue();
  const w0 = process.hrtime.bigint();
  const now = Date.now();
  writeQueue(queue, {
    entries,
    perMessage: ENTRIES_PER_MESSAGE,
    domain: (k) => `bq${k}.test`,
    dueAt: (n) => (n < DUE_NOW ? now - 1000 : now + 3600_000),
    prefix: 'BQ',
  }, now);
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
      const idleRss = rssMb([pid]);
      const scrapes = await measureScrapes(tern.api);
      return {
        scenario: 'big queue', entries, written_s: +writeSeconds.toFixed(1),
        listening_s: +listening.toFixed(2), first_delivery_s: +firstDelivery.toFixed(2), recovered_s: +recoveredSeconds.toFixed(2),
        recovered_entries: recovered.entries, idle_rss_mb: +idleRss.toFixed(1), peak_rss_mb: +peakRssMb([pid]).toFixed(1),
        ...scrapes,
      };
    } finally {
      await tern.stop();
    }
  } finally {
    rmSync(queue, { recursive: true, force: true });
  }
}
