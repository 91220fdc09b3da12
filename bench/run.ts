/**
 * Tern benchmarks on loopback, side by side with Haraka and Postfix in one run. Prints one
 * line of figures per scenario (and JSON lines with --json). See bench/README.md.
 *
 *   npm run bench -- [--messages N] [--concurrency C] [--size BYTES] [--recipients R]
 *                    [--domains D] [--peers haraka,postfix] [--only ingest,relay,...] [--json]
 */
import { parseArgs } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { World } from '../test/helpers/world.js';
import { TestMx } from '../test/helpers/mx-server.js';
import { fanOut, retryStorm } from './queue-scenarios.js';
import { bigQueue } from './big-queue.js';
import { expectedTransactions, percentile, runLoad, sinkDomain } from './load-generator.js';
import type { LoadShape } from './load-generator.js';
import { hasPostfixTools, postfixSink, testMxSink } from './sink.js';
import type { Sink } from './sink.js';
import { cpuSeconds, hasPostfix, machineCpuSeconds, peakRssMb, pssMb, startHaraka, startPostfix, startTern } from './systems.js';
import type { Mode, SystemUnderTest } from './systems.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    size: { type: 'string', default: '4096' },
    recipients: { type: 'string', default: '1' },
    domains: { type: 'string', default: '1' },
    peers: { type: 'string', default: 'haraka,postfix' },
    only: { type: 'string', default: 'ceiling,ingest,relay,storm,big-queue,fan-out' },
    json: { type: 'boolean', default: false },
    'storm-entries': { type: 'string', default: '100000' },
    'big-queue-entries': { type: 'string', default: '1000000' },
    'fanout-recipients': { type: 'string', default: '1000' },
    'fanout-domains': { type: 'string', default: '100' },
  },
});
const shape: LoadShape = {
  messages: Number(values.messages),
  concurrency: Number(values.concurrency),
  size: Number(values.size),
  recipients: Number(values.recipients),
  domains: Number(values.domains),
};
const only = new Set(values.only!.split(','));
const peers = new Set(values.peers!.split(',').filter(Boolean));
const SINK_HOST = '127.0.0.121';
const round = (x: number, digits = 1) => +x.toFixed(digits);

function print(result: Record<string, unknown>): void {
  if (values.json) console.log(JSON.stringify(result));
  else console.log(Object.entries(result).map(([k, v]) => `${k}=${v}`).join(' '));
}

/**
 * Postfix's smtp-source into a sink, nothing in between: what loopback SMTP can do here.
 * Spawned asynchronously: the sink's counter is read from a pipe by this process.
 */
async function smtpSourceSeconds(target: string): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn('smtp-source', ['-d', '-s', String(shape.concurrency), '-m', String(shape.messages), '-l', String(shape.size), '-f', 'bench@client.test', '-t', 'sink@sink.test', target], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`smtp-source failed: ${stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

type Start = (mode: Mode) => Promise<SystemUnderTest>;

/**
 * Writes back every dirty page before a scenario: with ext4 in ordered mode an fsync
 * commits the whole journal transaction, so the first fsyncs of a scenario would
 * otherwise pay for what the previous one left unwritten (Haraka's queue files are
 * never fsynced).
 */
function settle(): void {
  spawnSync('sync');
}

/**
 * Peak RSS of the serving process (Tern, haraka.js), and the PSS of all of the system's
 * processes at the end of the run: Postfix is a dozen processes sharing pages, whose
 * RSS added up would count the shared ones many times.
 */
function memory(sut: SystemUnderTest): Record<string, number> {
  const serving = sut.servingPid();
  return { ...(serving === undefined ? {} : { peak_rss_mb: round(peakRssMb([serving])) }), pss_mb: round(pssMb(sut.pids())) };
}

/** Scenario 1: messages/s acknowledged with 250 while delivery is paused; latency from "." to 250. */
async function ingest(start: Start): Promise<Record<string, unknown>> {
  settle();
  const sut = await start('ingest');
  try {
    const cpu0 = cpuSeconds(sut.pids());
    const load = await runLoad('127.0.0.1', sut.port, shape);
    const cpu = cpuSeconds(sut.pids()) - cpu0;
    return {
      scenario: 'ingest', system: sut.name, ...shape,
      msgs_per_s: round(shape.messages / load.seconds),
      p50_ms: round(percentile(load.latencies, 50), 2), p99_ms: round(percentile(load.latencies, 99), 2),
      cpu_s_per_1000: round((cpu / shape.messages) * 1000, 2), ...memory(sut),
    };
  } finally {
    await sut.stop();
  }
}

/** Scenario 2: first byte sent to the last transaction received by the sink, delivery on. */
async function relay(start: Start, sink: Sink, ceiling?: number): Promise<Record<string, unknown>> {
  settle();
  const sut = await start('relay');
  try {
    const expected = sink.count() + expectedTransactions(shape);
    const cpu0 = cpuSeconds(sut.pids());
    const machine0 = machineCpuSeconds();
    const t0 = process.hrtime.bigint();
    await runLoad('127.0.0.1', sut.port, shape);
    await sink.waitFor(expected, 900_000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const rate = shape.messages / seconds;
    return {
      scenario: 'relay', system: sut.name, sink: sink.name, ...shape,
      msgs_per_s: round(rate),
      ...(ceiling ? { of_ceiling: round(rate / ceiling, 3) } : {}),
      cpu_s_per_1000: round(((cpuSeconds(sut.pids()) - cpu0) / shape.messages) * 1000, 2),
      machine_cpu_s_per_1000: round(((machineCpuSeconds() - machine0) / shape.messages) * 1000, 2),
      ...memory(sut),
    };
  } finally {
    await sut.stop();
  }
}

async function main(): Promise<void> {
  const world = new World();
  for (let j = 0; j < shape.domains; j++) world.dns.add(sinkDomain(j, shape.domains), { type: 'MX', preference: 10, exchange: 'mx.sink.test' });
  world.dns.add('mx.sink.test', { type: 'A', data: SINK_HOST });
  await world.start();
  const fallbackMx = hasPostfixTools ? undefined : new TestMx(SINK_HOST, 25);
  await fallbackMx?.start();
  const sink: Sink = fallbackMx ? testMxSink(fallbackMx, SINK_HOST) : await postfixSink(SINK_HOST, 25);
  const systems: [string, Start][] = [['tern', (mode) => startTern(world, mode)]];
  if (peers.has('haraka')) systems.push(['haraka', (mode) => startHaraka(mode, world.dns.port)]);
  if (peers.has('postfix') && hasPostfix) systems.push(['postfix', (mode) => startPostfix(mode, { host: SINK_HOST, port: 25 })]);
  if (peers.has('postfix') && !hasPostfix) print({ scenario: 'note', text: 'postfix is not installed: no Postfix figures in this run' });
  try {
    let ceiling: number | undefined;
    if (only.has('ceiling') && hasPostfixTools) {
      const direct = await postfixSink(SINK_HOST, 2599);
      ceiling = shape.messages / await smtpSourceSeconds(`${SINK_HOST}:2599`);
      const ours = await runLoad(SINK_HOST, 2599, shape);
      await direct.stop();
      print({ scenario: 'ceiling', system: 'smtp-source -> smtp-sink', ...shape, msgs_per_s: round(ceiling), bench_client_msgs_per_s: round(shape.messages / ours.seconds) });
    }
    const figures = new Map<string, Record<string, unknown>>();
    for (const [name, start] of systems) {
      if (only.has('ingest')) {
        const r = await ingest(start);
        figures.set(`ingest/${name}`, r);
        print(r);
      }
      if (only.has('relay')) {
        const r = await relay(start, sink, ceiling);
        figures.set(`relay/${name}`, r);
        print(r);
      }
    }
    for (const scenario of ['ingest', 'relay']) {
      const tern = figures.get(`${scenario}/tern`)?.msgs_per_s as number | undefined;
      for (const [name] of systems.slice(1)) {
        const peer = figures.get(`${scenario}/${name}`)?.msgs_per_s as number | undefined;
        if (tern && peer) print({ scenario: `${scenario} ratio`, system: `tern/${name}`, ratio: round(tern / peer, 2) });
      }
    }
    if (only.has('storm')) print(await retryStorm(world, Number(values['storm-entries']), shape.concurrency));
    if (only.has('big-queue')) print(await bigQueue(world, Number(values['big-queue-entries'])));
    if (only.has('fan-out')) print(await fanOut(world, Number(values['fanout-recipients']), Number(values['fanout-domains'])));
  } finally {
    await sink.stop();
    await fallbackMx?.stop();
    await world.stop();
  }
}

await main();
