/**
 * Tern benchmarks on loopback. Prints one line of figures per scenario (and JSON with --json).
 *
 *   npm run bench -- [--messages N] [--concurrency C] [--size BYTES] [--json]
 *
 * ingest: messages/s acknowledged with 250 into the durable queue (delivery paused),
 *         and p50/p99 of the time from sending the message to its 250.
 * relay:  messages/s from the first byte sent to the last message received by a sink MX
 *         (on 127.0.0.2:25, needs root), delivery enabled; peak RSS of the daemon.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { World } from '../test/helpers/world.js';
import type { TernProcess } from '../test/helpers/tern-process.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    size: { type: 'string', default: '4096' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.messages);
const C = Number(values.concurrency);
const SIZE = Number(values.size);

function body(i: number): string {
  const head = `From: bench@client.test\r\nTo: sink@good.test\r\nSubject: bench ${i}\r\nMessage-ID: <b${i}@client.test>\r\n\r\n`;
  const line = 'x'.repeat(76) + '\r\n';
  return head + line.repeat(Math.max(1, Math.floor((SIZE - head.length) / line.length)));
}

async function open(port: number): Promise<SMTPConnection> {
  const c = new SMTPConnection({ host: '127.0.0.1', port, name: 'bench.test', socketTimeout: 60000 });
  await new Promise<void>((resolve, reject) => {
    c.once('error', reject);
    c.connect(() => resolve());
  });
  // Like a well-behaved sender (and Postfix's smtp-source), no Nagle stalls on the client side:
  // otherwise every message waits ~40 ms for the server's delayed ACK and the load generator
  // measures itself. nodemailer has no option for it, hence its socket.
  (c as unknown as { _socket: import('node:net').Socket })._socket.setNoDelay(true);
  return c;
}

/** C sessions, each sending its share of N messages back to back over one connection (RSET between). */
async function load(port: number): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: C }, async () => {
      const conn = await open(port);
      while (next < N) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        await new Promise<void>((resolve, reject) =>
          conn.send({ from: 'bench@client.test', to: [`sink${i % 50}@good.test`] }, body(i), (err) => (err ? reject(err) : resolve())),
        );
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await new Promise<void>((resolve, reject) => conn.reset((err) => (err ? reject(err) : resolve())));
      }
      conn.quit();
    }),
  );
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const world = await new World().start();
  const results: Record<string, unknown>[] = [];
  try {
    // ingest: delivery paused, every 250 fsynced
    let tern: TernProcess = await world.tern({ outbound: 'disabled=true' });
    const ingest = await load(tern.port);
    const ingestRss = rssOf(tern.child.pid!);
    await tern.stop();
    results.push({
      scenario: 'ingest', messages: N, concurrency: C, size: SIZE,
      msgs_per_s: +(N / ingest.seconds).toFixed(1),
      p50_ms: +pct(ingest.latencies, 50).toFixed(2), p99_ms: +pct(ingest.latencies, 99).toFixed(2),
      peak_rss_mb: +ingestRss.toFixed(1),
    });

    // relay: accepted and delivered to the sink MX
    tern = await world.tern({ outbound: 'concurrency_max=64' });
    const before = world.mx.mailbox.length;
    const t0 = process.hrtime.bigint();
    await load(tern.port);
    await world.mx.waitForMail(before + N, 600000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const relayRss = rssOf(tern.child.pid!);
    await tern.stop();
    results.push({ scenario: 'relay', messages: N, concurrency: C, size: SIZE, msgs_per_s: +(N / seconds).toFixed(1), peak_rss_mb: +relayRss.toFixed(1) });
  } finally {
    await world.stop();
  }
  for (const r of results) {
    if (values.json) console.log(JSON.stringify(r));
    else console.log(Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' '));
  }
}

await main();
