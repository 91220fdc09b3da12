/**
 * Tern benchmarks on loopback. Prints one line of figures per scenario (and JSON with --json).
 *
 *   npm run bench -- [--messages N] [--concurrency C] [--size BYTES] [--json]
 *
 * ingest: messages/s acknowledged with 250 into the durable queue (delivery paused),
 *         and p50/p99 of the time from sending the message to its 250.
 * relay:  messages/s from the first byte sent to the last message received by a sink MX
 *         (on 127.0.0.2:25, needs root), delivery enabled; peak RSS of the daemon.
 * retry storm: --storm-entries deferred entries flushed with SIGHUP; drain time, most sessions open.
 * fan-out: one message to --fanout-recipients recipients over --fanout-domains domains.
 */
import { parseArgs } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { World } from '../test/helpers/world.js';
import { fanOut, retryStorm } from './queue-scenarios.js';
import type { TernProcess } from '../test/helpers/tern-process.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    size: { type: 'string', default: '4096' },
    json: { type: 'boolean', default: false },
    'storm-entries': { type: 'string', default: '5000' },
    'fanout-recipients': { type: 'string', default: '1000' },
    'fanout-domains': { type: 'string', default: '100' },
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

const hasPostfixTools = spawnSync('sh', ['-c', 'command -v smtp-source && command -v smtp-sink'], { encoding: 'utf8' }).status === 0;

/** Postfix's smtp-source as the load generator: N messages of SIZE bytes over C sessions, reusing connections. */
function smtpSource(target: string): number {
  const started = process.hrtime.bigint();
  const res = spawnSync('smtp-source', ['-d', '-s', String(C), '-m', String(N), '-l', String(SIZE), '-f', 'bench@client.test', '-t', 'sink@sink.test', target], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`smtp-source failed: ${res.stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Postfix's smtp-sink: accepts and discards as fast as it can (-u: it refuses to run as root). */
async function smtpSink(target: string): Promise<ChildProcess> {
  const child = spawn('smtp-sink', ['-u', 'postfix', target, '256'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

async function main(): Promise<void> {
  const world = new World();
  world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: '127.0.0.121' });
  await world.start();
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

    if (hasPostfixTools) {
      // The loopback ceiling: Postfix's own tools talking to each other, nothing in between.
      const direct = await smtpSink('127.0.0.121:2599');
      const ceiling = N / smtpSource('127.0.0.121:2599');
      direct.kill();
      results.push({ scenario: 'ceiling (smtp-source -> smtp-sink)', messages: N, concurrency: C, size: SIZE, msgs_per_s: +ceiling.toFixed(1) });

      tern = await world.tern({ outbound: 'disabled=true' });
      const ingestSeconds = smtpSource(`127.0.0.1:${tern.port}`);
      await tern.stop();
      results.push({ scenario: 'ingest (smtp-source)', messages: N, concurrency: C, size: SIZE, msgs_per_s: +(N / ingestSeconds).toFixed(1), of_ceiling: +(N / ingestSeconds / ceiling).toFixed(3) });

      const sink = await smtpSink('127.0.0.121:25');
      tern = await world.tern({ outbound: 'concurrency_max=64' });
      const t1 = process.hrtime.bigint();
      smtpSource(`127.0.0.1:${tern.port}`);
      await tern.waitForCount((r) => r.type === 'Delivery' && r.domain === 'sink.test', N, 600000);
      const relaySeconds = Number(process.hrtime.bigint() - t1) / 1e9;
      const rss = rssOf(tern.child.pid!);
      await tern.stop();
      sink.kill();
      results.push({
        scenario: 'relay (smtp-source -> tern -> smtp-sink)', messages: N, concurrency: C, size: SIZE,
        msgs_per_s: +(N / relaySeconds).toFixed(1), of_ceiling: +(N / relaySeconds / ceiling).toFixed(3), peak_rss_mb: +rss.toFixed(1),
      });
    }
    results.push(await retryStorm(world, Number(values['storm-entries']), C));
    results.push(await fanOut(world, Number(values['fanout-recipients']), Number(values['fanout-domains'])));
  } finally {
    await world.stop();
  }
  for (const r of results) {
    if (values.json) console.log(JSON.stringify(r));
    else console.log(Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' '));
  }
}

await main();
