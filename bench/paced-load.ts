import { messageBody } from './load-generator.js';
import { Session } from './smtp-session.js';

export interface PacedShape {
  /** Messages a second offered, evenly spaced. */
  readonly rate: number;
  readonly seconds: number;
  /** Sessions (connections reused) that take the messages in turn. */
  readonly sessions: number;
  readonly size: number;
  /** The recipient of message i. */
  readonly to: (i: number) => string;
}

export interface PacedResult {
  readonly offered: number;
  readonly accepted: number;
  /** Messages whose time came while every session still waited on an earlier one, and the window closed before any could take them. */
  readonly missed: number;
  readonly failed: number;
  /** Per accepted message: end of DATA to its 250, in ms. */
  readonly latencies: number[];
  /** From the first message's due time to the last 250. */
  readonly seconds: number;
}

/**
 * A steady offered load, far under what the server can take: message i is due at
 * i / rate seconds and is sent by the first free session. A server that stops answering
 * holds its sessions; messages that fall due meanwhile are sent late, or not at all once
 * the window has closed (counted as missed), so the window stays `seconds` long unless a
 * message is stuck in a session.
 */
export async function runPaced(host: string, port: number, shape: PacedShape): Promise<PacedResult> {
  const bodies = Array.from({ length: 64 }, (_, i) => messageBody(i, shape.size));
  const sessions = await Promise.all(
    Array.from({ length: shape.sessions }, async () => {
      const s = await Session.open(host, port);
      await s.expect(250, 'EHLO bench.client.test\r\n');
      return s;
    }),
  );
  const total = Math.round(shape.rate * shape.seconds);
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  let missed = 0;
  const t0 = performance.now();
  const end = t0 + shape.seconds * 1000;
  await Promise.all(
    sessions.map(async (s) => {
      while (next < total) {
        const i = next++;
        const due = t0 + (i * 1000) / shape.rate;
        const now = performance.now();
        if (now > end) {
          missed++;
          continue;
        }
        if (due > now) await new Promise((r) => setTimeout(r, due - now));
        try {
          latencies.push(await s.send('bench@client.test', [shape.to(i)], bodies[i % bodies.length]));
        } catch {
          failed++;
          return;
        }
      }
      await s.quit();
    }),
  );
  for (const s of sessions) s.destroy();
  // A session that failed left its share behind: those were never sent.
  missed += total - next > 0 ? total - next : 0;
  return { offered: total, accepted: latencies.length, missed, failed, latencies, seconds: (performance.now() - t0) / 1000 };
}
