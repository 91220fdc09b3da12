import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { listenOn } from './ports.js';

/** One SMTP session as the sink saw it (epoch ms). */
export interface RecordedSession {
  readonly id: number;
  readonly openedAt: number;
  /** When the sink answered QUIT, or saw the connection end, whichever came first. */
  closedAt?: number;
  /** Messages accepted in this session. */
  transactions: number;
  /** The name the sender gave in EHLO/HELO (which node of several, when each has its own). */
  helo?: string;
}

/** One accepted message. */
export interface Arrival {
  readonly at: number;
  readonly session: number;
  readonly recipients: readonly string[];
  /** The message's Message-ID header, as sent. */
  readonly messageId?: string;
}

const MAX_LINE = 4096;
const MAX_MESSAGE = 10 * 1024 * 1024;

/**
 * A sink MX that records when each session opens and closes and when each message
 * arrives: what a remote server sees of Tern's traffic shaping (sessions at once, messages
 * per window, transactions per session). Plain SMTP on a raw socket, light enough to take
 * hundreds of messages a second beside the daemon on a small machine; it accepts every
 * recipient. A session counts as closed from the moment the sink answers QUIT: the
 * sender's connection closes after that, so a sender that waits for its close before
 * opening another never shows here as one session too many.
 */
export class RecordingMx {
  readonly sessions: RecordedSession[] = [];
  readonly arrivals: Arrival[] = [];
  /**
   * Messages whose 250 was due when the sender's connection had already ended (a sender
   * killed during DATA): the sender never learnt they arrived, so they are not arrivals.
   */
  unanswered = 0;
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(
    readonly host: string,
    public port = 0,
    /** How long the sink takes to answer the final dot: a slow server keeps its sessions busy. */
    private readonly options: { dataDelayMs?: number } = {},
  ) {}

  async start(): Promise<void> {
    const server = createServer((socket) => this.session(socket));
    server.on('error', () => undefined);
    this.port = await listenOn(server, this.host, this.port);
    this.server = server;
  }

  /** Sessions open now. */
  get open(): number {
    return this.sessions.filter((s) => s.closedAt === undefined).length;
  }

  /** The most sessions open at once, from the recorded open and close times. */
  maxConcurrent(): number {
    const events = this.sessions.flatMap((s) => [
      { at: s.openedAt, d: 1 },
      ...(s.closedAt === undefined ? [] : [{ at: s.closedAt, d: -1 }]),
    ]);
    // At the same millisecond a close counts before an open (the close was answered first).
    events.sort((a, b) => a.at - b.at || a.d - b.d);
    let now = 0;
    let max = 0;
    for (const e of events) max = Math.max(max, (now += e.d));
    return max;
  }

  /** Messages that arrived in each window of `windowMs` sliding by `stepMs` over the arrivals' span. */
  windowCounts(windowMs: number, stepMs: number, from?: number, to?: number): number[] {
    const times = this.arrivals.map((a) => a.at).sort((a, b) => a - b);
    if (times.length === 0) return [];
    const first = from ?? times[0];
    const last = to ?? times[times.length - 1];
    const counts: number[] = [];
    for (let start = first; start + windowMs <= last + 1; start += stepMs) {
      counts.push(times.filter((t) => t >= start && t < start + windowMs).length);
    }
    return counts;
  }

  /** Resolves once `n` messages in all have arrived. */
  waitForArrivals(n: number, timeoutMs = 30_000): Promise<void> {
    if (this.arrivals.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.arrivals.length}/${n} messages at the recording MX within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private arrived(arrival: Arrival): void {
    this.arrivals.push(arrival);
    this.waiters = this.waiters.filter((w) => (this.arrivals.length >= w.n ? (w.resolve(), false) : true));
  }

  private session(socket: Socket): void {
    const record: RecordedSession = { id: this.sessions.length + 1, openedAt: Date.now(), transactions: 0 };
    this.sessions.push(record);
    this.sockets.add(socket);
    const close = () => {
      record.closedAt ??= Date.now();
    };
    socket.on('error', () => undefined);
    socket.on('end', close);
    socket.on('close', () => {
      close();
      this.sockets.delete(socket);
    });
    socket.setNoDelay(true);
    let buffer = '';
    let data: string[] | undefined;
    let size = 0;
    let recipients: string[] = [];
    let inHeader = false;
    let messageId: string | undefined;
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply(`220 ${this.host} recording MX`);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let at: number;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        if (data) {
          if (line === '.') {
            data = undefined;
            const id = messageId;
            const accept = () => {
              if (record.closedAt !== undefined || socket.destroyed) {
                this.unanswered++;
                return;
              }
              record.transactions++;
              this.arrived({ at: Date.now(), session: record.id, recipients, ...(id !== undefined ? { messageId: id } : {}) });
              recipients = [];
              reply('250 2.0.0 Ok: queued');
            };
            if (this.options.dataDelayMs) setTimeout(accept, this.options.dataDelayMs);
            else accept();
          } else {
            if (inHeader && line === '') inHeader = false;
            else if (inHeader && /^message-id:/i.test(line)) messageId = line.slice(11).trim();
            if ((size += line.length + 2) > MAX_MESSAGE) {
              reply('552 5.3.4 Message too big');
              socket.destroy();
            }
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') record.helo = line.slice(5).trim();
        if (verb === 'EHLO') reply(`250-${this.host}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE ${MAX_MESSAGE}`);
        else if (verb === 'HELO') reply(`250 ${this.host}`);
        else if (verb === 'MAIL') {
          recipients = [];
          reply('250 2.1.0 Ok');
        } else if (verb === 'RCPT') {
          recipients.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          reply('250 2.1.5 Ok');
        } else if (verb === 'DATA') {
          data = [];
          size = 0;
          inHeader = true;
          messageId = undefined;
          reply('354 End data with <CR><LF>.<CR><LF>');
        } else if (verb === 'RSET') {
          recipients = [];
          reply('250 2.0.0 Ok');
        } else if (verb === 'NOOP') reply('250 2.0.0 Ok');
        else if (verb === 'QUIT') {
          close();
          reply('221 2.0.0 Bye');
          socket.end();
        } else reply('502 5.5.2 Command not recognised');
      }
      if (buffer.length > (data ? MAX_MESSAGE : MAX_LINE)) {
        reply('500 5.5.6 Line too long');
        socket.destroy();
      }
    });
  }
}
