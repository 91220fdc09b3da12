import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { ConnectionMode, LoadShape } from './load-generator.js';

/**
 * Postfix's `smtp-source` as a second, independent load generator: `-s` sessions, `-m`
 * messages of `-l` bytes of payload, one recipient domain (`sink.test`, `-r` recipients).
 * Without `-d` every message has a connection of its own; with `-d` a session sends all
 * of its messages on one. It times nothing itself: the wall time of the whole run is
 * returned (its start costs a few ms). Spawned asynchronously, as the caller may be
 * reading a sink's counter meanwhile.
 */
export async function smtpSourceSeconds(target: string, shape: LoadShape, connection: ConnectionMode): Promise<number> {
  const args = [
    ...(connection === 'reuse' ? ['-d'] : []),
    '-s', String(shape.concurrency), '-m', String(shape.messages), '-l', String(shape.size), '-r', String(shape.recipients),
    '-M', 'client.bench.test', '-f', 'bench@client.test', '-t', 'sink@sink.test', target,
  ];
  const started = process.hrtime.bigint();
  const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`smtp-source ${args.join(' ')} failed: ${stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Transactions a sink sees from one smtp-source run: all its recipients are in one domain. */
export const smtpSourceTransactions = (shape: LoadShape) => shape.messages;
