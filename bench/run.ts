/**
 * Tern benchmarks on loopback, side by side with Haraka and Postfix in one run. Prints one
 * line of figures per scenario (and JSON lines with --json). See bench/README.md.
 *
 *   npm run bench -- [--messages N] [--concurrency C] [--size BYTES] [--recipients R]
 *                    [--domains D] [--peers haraka,postfix] [--only ingest,relay,...]
 *                    [--connection reuse|per-message|both] [--nagle off|on|both]
 *                    [--generators bench,smtp-source] [--hostile-seconds S] [--hostile-rate R]
 *                    [--hostile-messages N] [--hostile-kinds lines,flood,drip]
 *                    [--dkim-sizes 4096,102400] [--dkim-rounds 3] [--json]
 *                    [--nodes 1,2] [--rounds R]
 *                    [--only shaping-rate,shaping-connections --rate R --rate-seconds S --burst B
 *                     --max-connections M --connections-messages N --sink-delay-ms D]
 */
import { parseArgs } from 'node:util';
import { World } from '../test/helpers/world.js';
import { TestMx } from '../test/helpers/mx-server.js';
import { fanOut, retryStorm } from './queue-scenarios.js';
import { bigQueue } from './big-queue.js';
import { dkimIngest } from './dkim-ingest.js';
import { hostileMx } from './hostile-mx.js';
import { SHAPING_OPTIONS, shapingConnections, shapingOptions, shapingRate } from './shaping.js';
import type { HostileKind } from './hostile-servers.js';
import { expectedTransactions, runLoad, sinkDomain } from './load-generator.js';
import type { ConnectionMode, LoadShape } from './load-generator.js';
import { smtpSourceSeconds, smtpSourceTransactions } from './smtp-source.js';
import type { Nagle } from './smtp-session.js';
import { hasPostfixTools, postfixSink, testMxSink } from './sink.js';
import type { Sink } from './sink.js';
import { hasPostfix, startHaraka, startPostfix, startTern } from './systems.js';
import type { Mode } from './systems.js';
import { ingest, relay, variantFields } from './throughput.js';
import type { Start, Variant } from './throughput.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    sessions: { type: 'string' },
    size: { type: 'string', default: '4096' },
    recipients: { type: 'string', default: '1' },
    domains: { type: 'string', default: '1' },
    peers: { type: 'string', default: 'haraka,postfix' },
    only: { type: 'string', default: 'ceiling,ingest,relay,storm,big-queue,fan-out,hostile-mx,dkim-ingest' },
    connection: { type: 'string', default: 'both' },
    nagle: { type: 'string', default: 'off' },
    generators: { type: 'string', default: 'bench,smtp-source' },
    'sink-host': { type: 'string', default: '127.0.0.121' },
    json: { type: 'boolean', default: false },
    'storm-entries': { type: 'string', default: '100000' },
    'big-queue-entries': { type: 'string', default: '1000000' },
    'fanout-recipients': { type: 'string', default: '1000' },
    'fanout-domains': { type: 'string', default: '100' },
    'hostile-seconds': { type: 'string', default: '30' },
    'hostile-rate': { type: 'string', default: '100' },
    'hostile-messages': { type: 'string', default: '1' },
    'hostile-kinds': { type: 'string', default: 'lines,flood,drip' },
    // Traffic shaping (bench/shaping.ts); its scenarios run only when --only names them.
    ...SHAPING_OPTIONS,
    // Tern's smtp.ini nodes: each value is a system of its own (`tern`, `tern-nodes2` …), run in turn.
    nodes: { type: 'string', default: '1' },
    // Ingest and relay again, the systems alternating in each round.
    rounds: { type: 'string', default: '1' },
    'dkim-sizes': { type: 'string', default: '4096,102400' },
    'dkim-rounds': { type: 'string', default: '3' },
  },
});

function choice<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  if (value === 'both') return [...allowed];
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`--${name} must be ${allowed.join(', ')} or both, not ${value}`);
  return [value as T];
}

const shape: LoadShape = {
  messages: Number(values.messages),
  // --sessions is the name smtp-source's users know (-s); --concurrency the older one.
  concurrency: Number(values.sessions ?? values.concurrency),
  size: Number(values.size),
  recipients: Number(values.recipients),
  domains: Number(values.domains),
};
const only = new Set(values.only!.split(','));
const peers = new Set(values.peers!.split(',').filter(Boolean));
const connections = choice<ConnectionMode>('connection', values.connection!, ['reuse', 'per-message']);
const nagles = choice<Nagle>('nagle', values.nagle!, ['off', 'on']);
const generators = new Set(values.generators!.split(',').filter(Boolean));
// Another address lets a run go beside another checkout's (which takes 127.0.0.121:25).
const SINK_HOST = values['sink-host']!;
// The bench's own test MX hosts, apart from the test suite's 127.0.0.2–4, so that a run
// never takes a port an integration test of another checkout is about to bind.
const WORLD_HOSTS = { tls: '127.0.0.122', dead: '127.0.0.123', plain: '127.0.0.124' };
const round = (x: number, digits = 1) => +x.toFixed(digits);

function print(result: Record<string, unknown>): void {
  if (values.json) console.log(JSON.stringify(result));
  else console.log(Object.entries(result).map(([k, v]) => `${k}=${v}`).join(' '));
}

/** Every way the load is sent in this run, in the order they run. */
function variants(): Variant[] {
  const list: Variant[] = [];
  for (const connection of connections) {
    if (generators.has('bench')) for (const nagle of nagles) list.push({ generator: 'bench', connection, nagle });
    if (generators.has('smtp-source') && hasPostfixTools) list.push({ generator: 'smtp-source', connection });
  }
  return list;
}

const variantKey = (v: Variant) => Object.values(variantFields(v)).join('/');

async function main(): Promise<void> {
  // Port 25: the Postfix sink, Haraka and the hostile peers all sit there.
  const world = new World(WORLD_HOSTS, 25);
  for (let j = 0; j < shape.domains; j++) world.dns.add(sinkDomain(j, shape.domains), { type: 'MX', preference: 10, exchange: 'mx.sink.test' });
  world.dns.add('mx.sink.test', { type: 'A', data: SINK_HOST });
  await world.start();
  const fallbackMx = hasPostfixTools ? undefined : new TestMx(SINK_HOST, 25);
  await fallbackMx?.start();
  const sink: Sink = fallbackMx ? testMxSink(fallbackMx, SINK_HOST) : await postfixSink(SINK_HOST, 25);
  const nodes = values.nodes!.split(',').map(Number);
  if (nodes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--nodes takes whole numbers from 1, not ${values.nodes}`);
  const systems: [string, Start][] = nodes.map((n) => [n === 1 ? 'tern' : `tern-nodes${n}`, (mode: Mode) => startTern(world, mode, n)]);
  if (peers.has('haraka')) systems.push(['haraka', (mode) => startHaraka(mode, world.dns.port)]);
  if (peers.has('postfix') && hasPostfix) systems.push(['postfix', (mode) => startPostfix(mode, { host: SINK_HOST, port: 25 })]);
  if (peers.has('postfix') && !hasPostfix) print({ scenario: 'note', text: 'postfix is not installed: no Postfix figures in this run' });
  if (generators.has('smtp-source') && !hasPostfixTools) print({ scenario: 'note', text: 'smtp-source is not installed: no figures from it in this run' });
  try {
    // The ceiling of each connection mode: smtp-source straight into smtp-sink.
    const ceilings = new Map<ConnectionMode, number>();
    if (only.has('ceiling') && hasPostfixTools) {
      const direct = await postfixSink(SINK_HOST, 2599);
      for (const connection of connections) {
        const ceiling = shape.messages / await smtpSourceSeconds(`${SINK_HOST}:2599`, shape, connection);
        ceilings.set(connection, ceiling);
        const ours: Record<string, number> = {};
        for (const nagle of nagles) ours[`bench_client_nagle_${nagle}_msgs_per_s`] = round(shape.messages / (await runLoad(SINK_HOST, 2599, shape, { connection, nagle })).seconds);
        print({ scenario: 'ceiling', system: 'smtp-source -> smtp-sink', connection, ...shape, msgs_per_s: round(ceiling), ...ours });
      }
      await direct.stop();
    }
    const figures = new Map<string, Record<string, unknown>>();
    // Systems inside each variant: a moment of load from elsewhere on the machine then
    // falls on neighbouring runs of the three, not on all runs of one.
    for (let pass = 1; pass <= Number(values.rounds); pass++) {
      for (const scenario of ['ingest', 'relay'] as const) {
        if (!only.has(scenario)) continue;
        for (const v of variants()) {
          for (const [name, start] of systems) {
            const r = scenario === 'ingest'
              ? await ingest(start, shape, v)
              : await relay(start, sink, shape, v, v.generator === 'smtp-source' ? smtpSourceTransactions(shape) : expectedTransactions(shape), ceilings.get(v.connection));
            figures.set(`${scenario}/${variantKey(v)}/${name}`, r);
            print(Number(values.rounds) > 1 ? { ...r, round: pass } : r);
          }
          const tern = figures.get(`${scenario}/${variantKey(v)}/tern`)?.msgs_per_s as number | undefined;
          for (const [name] of systems.slice(1)) {
            const peer = figures.get(`${scenario}/${variantKey(v)}/${name}`)?.msgs_per_s as number | undefined;
            if (tern && peer) print({ scenario: `${scenario} ratio`, system: `tern/${name}`, ...variantFields(v), ratio: round(tern / peer, 2) });
          }
        }
      }
    }
    if (only.has('dkim-ingest')) {
      // One way of sending (the bench client, connections reused, Nagle off): what differs between the runs is signing.
      const v = { generator: 'bench' as const, connection: connections[0], nagle: nagles[0] };
      await dkimIngest(world, shape, values['dkim-sizes']!.split(',').map(Number), Number(values['dkim-rounds']), v, print);
    }
    if (only.has('storm')) print(await retryStorm(world, Number(values['storm-entries']), shape.concurrency));
    if (only.has('big-queue')) print(await bigQueue(world, Number(values['big-queue-entries'])));
    if (only.has('fan-out')) print(await fanOut(world, Number(values['fanout-recipients']), Number(values['fanout-domains'])));
    if (only.has('hostile-mx')) {
      const kinds = values['hostile-kinds']!.split(',').filter(Boolean);
      for (const k of kinds) if (!['lines', 'flood', 'drip'].includes(k)) throw new Error(`--hostile-kinds takes lines, flood, drip, not ${k}`);
      const hostile = { seconds: Number(values['hostile-seconds']), rate: Number(values['hostile-rate']), perServer: Number(values['hostile-messages']), kinds: kinds as HostileKind[], size: shape.size };
      await hostileMx(world, sink, hostile, print);
    }
    // Shaping runs once per --nodes value, so that `--nodes 1,4` compares one process with four workers.
    for (const n of nodes) {
      if (only.has('shaping-rate')) print(await shapingRate(shapingOptions({ ...values, nodes: String(n) })));
      if (only.has('shaping-connections')) print(await shapingConnections(shapingOptions({ ...values, nodes: String(n) })));
    }
  } finally {
    await sink.stop();
    await fallbackMx?.stop();
    await world.stop();
  }
}

await main();
