import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { waitForPort } from '../test/helpers/wait-for-port.js';
import type { TestMx } from '../test/helpers/mx-server.js';

export const hasPostfixTools = spawnSync('sh', ['-c', 'command -v smtp-source && command -v smtp-sink'], { encoding: 'utf8' }).status === 0;

/** The receiving end: counts the transactions it accepted and forgets the mail. */
export interface Sink {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  count(): number;
  waitFor(n: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Postfix's smtp-sink: accepts and discards as fast as it can. `-c` prints a running
 * "mesg=N" counter, which is how transactions are counted. It refuses to run as root,
 * hence `-u postfix`.
 */
export async function postfixSink(host: string, port: number): Promise<Sink> {
  const child: ChildProcess = spawn('smtp-sink', ['-c', '-u', 'postfix', `${host}:${port}`, '512'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let received = 0;
  let tail = '';
  child.stdout!.setEncoding('latin1').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-200);
    const all = [...tail.matchAll(/mesg=(\d+)/g)];
    if (all.length) received = Number(all[all.length - 1][1]);
  });
  await waitForPort(host, port, 'smtp-sink', 5000);
  return {
    name: 'smtp-sink',
    host,
    port,
    count: () => received,
    waitFor: (n, timeoutMs) => until(() => received >= n, timeoutMs, `${n} messages at smtp-sink`),
    stop: async () => {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** The test suite's MX (smtp-server) when Postfix's tools are not installed. */
export function testMxSink(mx: TestMx, host: string): Sink {
  const base = mx.mailbox.length;
  return {
    name: 'test MX (smtp-server)',
    host,
    port: 25,
    count: () => mx.mailbox.length - base,
    waitFor: (n, timeoutMs) => until(() => mx.mailbox.length - base >= n, timeoutMs, `${n} messages at the test MX`),
    stop: async () => undefined,
  };
}
