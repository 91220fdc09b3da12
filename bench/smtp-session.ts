import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** Nagle's algorithm on the client socket: `off` sets TCP_NODELAY, `on` leaves the kernel's default. */
export type Nagle = 'on' | 'off';

/** A reply longer than this (bytes, all lines) is the server misbehaving: the bench client gives up. */
const MAX_REPLY_BYTES = 64 * 1024;

/**
 * One SMTP client session on a raw socket: no library between the measurement and the
 * wire. Replies are read whole (multi-line ones joined) and matched by their code.
 */
export class Session {
  private buffer = '';
  private lines: string[] = [];
  private replyBytes = 0;
  private waiting?: { resolve: (reply: string) => void; reject: (err: Error) => void };

  private constructor(
    private readonly socket: Socket,
    /** ms from calling connect() to the whole 220 greeting. */
    readonly connectMs: number,
  ) {}

  /**
   * Connects and waits for the greeting; `connectMs` is the time from the connect() call
   * (before the SYN) to the last byte of the 220, what a client waits before it may speak.
   */
  static async open(host: string, port: number, nagle: Nagle = 'off'): Promise<Session> {
    const t0 = process.hrtime.bigint();
    const socket = connect({ host, port });
    socket.setNoDelay(nagle === 'off');
    socket.setEncoding('latin1');
    const greeting = new Promise<string>((resolve, reject) => {
      let early = '';
      const onData = (chunk: string) => {
        early += chunk;
        if (early.length > MAX_REPLY_BYTES) return reject(new Error('greeting too long'));
        // The greeting is complete at the first line with a space (or nothing) after the code.
        if (/^\d{3}(?: [^\n]*)?\r?\n/m.test(early)) {
          socket.off('data', onData);
          resolve(early);
        }
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('connection closed before the greeting')));
    });
    const text = await greeting;
    const connectMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!text.startsWith('220')) {
      socket.destroy();
      throw new Error(`expected 220, got: ${text.trim()}`);
    }
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    return new Session(socket, connectMs).listen();
  }

  private listen(): this {
    this.socket.on('data', (chunk: string) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('connection closed by the server')));
    return this;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      this.replyBytes += line.length;
      // The last line of a reply has a space (or nothing) after the code.
      if (line.length < 4 || line[3] === ' ') {
        const reply = this.lines.join('\n');
        this.lines = [];
        this.replyBytes = 0;
        const w = this.waiting;
        this.waiting = undefined;
        w?.resolve(reply);
      }
    }
    if (this.replyBytes + this.buffer.length > MAX_REPLY_BYTES) {
      this.fail(new Error(`reply over ${MAX_REPLY_BYTES} bytes`));
      this.socket.destroy();
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

  /** QUIT, its 221, then the socket closed from this side (as smtp-source does). */
  async quit(): Promise<void> {
    await this.expect(221, 'QUIT\r\n').catch(() => undefined);
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
