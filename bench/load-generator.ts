import { connect } from 'node:net';
import type { Socket } from 'node:net';

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

/** One SMTP client session on a raw socket: no library between the measurement and the wire. */
class Session {
  private buffer = '';
  private lines: string[] = [];
  private waiting?: { resolve: (reply: string) => void; reject: (err: Error) => void };

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  static async open(host: string, port: number): Promise<Session> {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const session = new Session(socket);
    await session.expect(220);
    return session;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      // The last line of a reply has a space (or nothing) after the code.
      if (line.length < 4 || line[3] === ' ') {
        const reply = this.lines.join('\n');
        this.lines = [];
        const w = this.waiting;
        this.waiting = undefined;
        w?.resolve(reply);
      }
    }
  }

  private fail(err: Error): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }

  private reply(): Promise<string> {
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async expect(code: number, send?: string): Promise<void> {
    const pending = this.reply();
    if (send !== undefined) this.socket.write(send);
    const reply = await pending;
    if (!reply.startsWith(String(code))) throw new Error(`expected ${code}, got: ${reply}`);
  }

  /** Sends one message; resolves with ms from the end of DATA to the 250. */
  async send(from: string, to: string[], body: string): Promise<number> {
    await this.expect(250, `MAIL FROM:<${from}>\r\n`);
    for (const rcpt of to) await this.expect(250, `RCPT TO:<${rcpt}>\r\n`);
    await this.expect(354, 'DATA\r\n');
    const pending = this.reply();
    this.socket.write(body);
    const t0 = process.hrtime.bigint();
    this.socket.write('.\r\n');
    const reply = await pending;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!reply.startsWith('250')) throw new Error(`message refused: ${reply}`);
    return ms;
  }

  async quit(): Promise<void> {
    await this.expect(221, 'QUIT\r\n').catch(() => undefined);
    this.socket.destroy();
  }
}

/**
 * Keeps `concurrency` sessions busy until `messages` messages have had their 250. Like
 * Postfix's smtp-source, each session sends its messages back to back (no RSET between,
 * no pipelining), and the bodies are built before the clock starts.
 */
export async function runLoad(host: string, port: number, shape: LoadShape): Promise<LoadResult> {
  const bodies = Array.from({ length: Math.min(shape.messages, 64) }, (_, i) => messageBody(i, shape.size));
  const latencies: number[] = [];
  let next = 0;
  const sessions = await Promise.all(
    Array.from({ length: Math.min(shape.concurrency, shape.messages) }, async () => {
      const s = await Session.open(host, port);
      await s.expect(250, 'EHLO bench.client.test\r\n');
      return s;
    }),
  );
  const started = process.hrtime.bigint();
  await Promise.all(
    sessions.map(async (s) => {
      while (next < shape.messages) {
        const i = next++;
        latencies.push(await s.send('bench@client.test', recipientsOf(i, shape), bodies[i % bodies.length]));
      }
      await s.quit();
    }),
  );
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

export const percentile = (xs: readonly number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
