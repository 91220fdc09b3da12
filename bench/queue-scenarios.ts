import { rmSync } from 'node:fs';
import type { World } from '../test/helpers/world.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import type { TernProcess } from '../test/helpers/tern-process.js';
import { message, sendMail } from '../test/helpers/smtp-client.js';
import { peakRssMb } from './systems.js';
import { writeQueue } from './queue-writer.js';

/** Samples the daemon's open outbound sessions (metrics) until stopped; returns the maximum seen. */
function sampleConnections(tern: TernProcess): { stop: () => Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const text = await (await fetch(`${tern.api}/metrics`)).text().catch(() => '');
      const n = Number(/^tern_outbound_connections_open (\d+)$/m.exec(text)?.[1] ?? 0);
      max = Math.max(max, n);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Fan-out: one message to `recipients` recipients over `domains` domains (all served by the sink MX). */
export async function fanOut(world: World, recipients: number, domains: number): Promise<Record<string, unknown>> {
  for (let d = 0; d < domains; d++) world.dns.add(`fan${d}.test`, { type: 'MX', preference: 10, exchange: 'mx.other.test' });
  const tern = await world.tern({ smtp: `max_recipients=${recipients}`, outbound: 'concurrency_max=64' });
  const to = Array.from({ length: recipients }, (_, i) => `r${i}@fan${i % domains}.test`);
  const t0 = process.hrtime.bigint();
  await sendMail({ port: tern.port, from: 'bench@client.test', to, body: message('fan-out') });
  const accepted = Number(process.hrtime.bigint() - t0) / 1e9;
  await tern.waitForCount((r) => r.type === 'Delivery' && String(r.domain).startsWith('fan'), recipients, 600000);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = peakRssMb([tern.child.pid!]);
  await tern.stop();
  return { scenario: 'fan-out', recipients, domains, accepted_s: +accepted.toFixed(3), delivered_s: +seconds.toFixed(3), rcpts_per_s: +(recipients / seconds).toFixed(1), peak_rss_mb: +rss.toFixed(1) };
}

/**
 * Retry storm: `entries` deferred entries (written to the queue directly, each already
 * failed once and due in an hour), then SIGHUP: time until the queue is empty, and the
 * most outbound sessions open at once (must stay within concurrency_max).
 */
export async function retryStorm(world: World, entries: number, concurrencyMax: number): Promise<Record<string, unknown>> {
  const queue = tempQueue();
  const later = Date.now() + 3600_000;
  writeQueue(queue, { entries, perMessage: 1, domain: () => 'other.test', dueAt: () => later, prefix: 'STORM' });
  const tern = await world.tern({ outbound: `concurrency_max=${concurrencyMax}\nmax_domain_connections=${concurrencyMax}` }, queue);
  // Drain time proper: the queue is read back first (the big-queue scenario times that).
  await tern.waitFor((r) => r.msg === 'queue recovered', 600_000);
  const sampler = sampleConnections(tern);
  const t0 = process.hrtime.bigint();
  tern.signal('SIGHUP');
  await tern.waitForCount((r) => r.type === 'Delivery' && String(r.recipient).startsWith('storm'), entries, 1800000);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const maxOpen = await sampler.stop();
  const rss = peakRssMb([tern.child.pid!]);
  await tern.stop();
  rmSync(queue, { recursive: true, force: true });
  return { scenario: 'retry storm', entries, concurrency_max: concurrencyMax, drained_s: +seconds.toFixed(2), entries_per_s: +(entries / seconds).toFixed(1), max_open_sessions: maxOpen, peak_rss_mb: +rss.toFixed(1) };
}
