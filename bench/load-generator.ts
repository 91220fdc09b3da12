import { Session } from './smtp-session.js';
import type { Nagle } from './smtp-session.js';

export interface LoadShape {
  /** Messages in all. */
  readonly messages: number;
  /** SMTP sessions kept busy at once; each sends its share back to back. */
  readonly concurrency: number;
  /** Bytes per message. */
  readonly size: number;
  /** Recipients per message, spread round robin over `domains` destination domains. */
  readonly recipients: number;
  readonly domains: number;
}

export interface LoadResult {
  readonly seconds: number;
  /** Per message: end of DATA ("." sent) to its 250, in ms. */
  readonly latencies: number[];
  /** Per connection: connect() to the 220 greeting, in ms. */
  readonly connectLatencies: number[];
}

/** Destination domain j of the bench zone; one domain is just `sink.test`. */
export const sinkDomain = (j: number, domains: number) => (domains === 1 ? 'sink.test' : `sink${j}.test`);

/** The recipients of message i: `recipients` addresses over `domains` domains. */
export function recipientsOf(i: number, shape: LoadShape): string[] {
  return Array.from({ length: shape.recipients }, (_, k) => `rcpt${i % 50}.${k}@${sinkDomain((i + k) % shape.domains, shape.domains)}`);
}

/** Transactions a sink should see once all messages are relayed: one per message and destination domain. */
export function expectedTransactions(shape: LoadShape): number {
  let n = 0;
  for (let i = 0; i < shape.messages; i++) n += new Set(recipientsOf(i, shape).map((r) => r.split('@')[1])).size;
  return n;
}

export function messageBody(i: number, size: number): string {
  const head = `From: bench@client.test\r\nTo: sink@sink.test\r\nSubject: bench ${i}\r\nMessage-ID: <b${i}.${Date.now()}@client.test>\r\n\r\n`;
  const line = 'x'.repeat(76) + '\r\n';
  return head + line.repeat(Math.max(1, Math.floor((size - head.length) / line.length)));
}

/** How the load generator uses connections: all messages of a session on one, or one connection per message. */
export type ConnectionMode = 'reuse' | 'per-message';

export interface LoadOptions {
  readonly connection: ConnectionMode;
  readonly nagle: Nagle;
}

/**
 * Keeps `concurrency` sessions busy until `messages` messages have had their 250, with
 * bodies built before the clock starts.
 *
 * - `reuse`: like Postfix's `smtp-source -d`, each session connects and says EHLO before
 *   the clock starts, then sends its messages back to back (no RSET between, no
 *   pipelining).
 * - `per-message`: like `smtp-source` without `-d`, and like the many application mail
 *   libraries that do so, every message has a connection of its own (connect, 220, EHLO,
 *   MAIL, RCPT, DATA, QUIT, close) and the clock includes all of it; `connectLatencies`
 *   holds each connect → 220.
 */
export async function runLoad(host: string, port: number, shape: LoadShape, options: LoadOptions = { connection: 'reuse', nagle: 'off' }): Promise<LoadResult> {
  const bodies = Array.from({ length: Math.min(shape.messages, 64) }, (_, i) => messageBody(i, shape.size));
  const latencies: number[] = [];
  const connectLatencies: number[] = [];
  const sessions = Math.min(shape.concurrency, shape.messages);
  let next = 0;
  const open = async () => {
    const s = await Session.open(host, port, options.nagle);
    connectLatencies.push(s.connectMs);
    await s.expect(250, 'EHLO bench.client.test\r\n');
    return s;
  };
  const send = async (s: Session, i: number) => latencies.push(await s.send('bench@client.test', recipientsOf(i, shape), bodies[i % bodies.length]));
  if (options.connection === 'per-message') {
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: sessions }, async () => {
        while (next < shape.messages) {
          const i = next++;
          const s = await open();
          await send(s, i);
          await s.quit();
        }
      }),
    );
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies, connectLatencies };
  }
  const opened = await Promise.all(Array.from({ length: sessions }, open));
  const started = process.hrtime.bigint();
  await Promise.all(
    opened.map(async (s) => {
      while (next < shape.messages) await send(s, next++);
      await s.quit();
    }),
  );
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies, connectLatencies };
}

export const percentile = (xs: readonly number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
