import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../test/helpers/world.js';
import { RecordingMx } from '../test/helpers/recording-mx.js';
import type { TernProcess } from '../test/helpers/tern-process.js';

/** The test world's three MX addresses (World's tls, dead, plain) and the recording sink's. */
export interface SinkHosts {
  readonly world: { readonly tls: string; readonly dead: string; readonly plain: string };
  readonly sink: string;
}

/** Outbound settings of every shaping bench: enough sessions that only the limits hold mail back. */
export const OUTBOUND = 'concurrency_max=64';

/**
 * The test world (DNS, its MX hosts) and a recording sink MX for `sink.test`, on the
 * bench's own addresses, the sink on the world's MX port (outbound.ini remote_port).
 */
export async function sinkWorld(hosts: SinkHosts, sinkOptions: { dataDelayMs?: number } = {}): Promise<{ world: World; sink: RecordingMx }> {
  const world = await new World(hosts.world).start();
  const sink = new RecordingMx(hosts.sink, world.port, sinkOptions);
  await sink.start();
  world.dns.add('sink.test', { type: 'MX', preference: 10, exchange: 'mx.sink.test' }).add('mx.sink.test', { type: 'A', data: hosts.sink });
  return { world, sink };
}

/**
 * Turns delivery on (outbound.ini without disabled=true, applied live): the whole backlog
 * waits on the limits from then on, with no ingest beside it on the CPU, so the sink sees
 * the shaping and not the load generator's share of two cores.
 */
export function releaseDelivery(world: World, t: TernProcess, outbound = OUTBOUND): void {
  writeFileSync(join(t.configDir, 'outbound.ini'), world.configFiles({ outbound })['outbound.ini']);
}
