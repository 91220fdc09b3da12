import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { PeerInfo, SmtpReply } from '../core/index.js';
import { ReplyParser } from '../smtp/index.js';
import type { WireReply } from '../smtp/index.js';
import type { SessionTracer } from './tracer.js';

/** The phases of RFC 5321 §4.5.3.2, each with its own time limit. */
export type Phase = 'greeting' | 'command' | 'mail' | 'rcpt' | 'data-init' | 'data-block' | 'data-done';

/** Why the wire gave up: a reply of Tern's own saying what the server did (or did not do). */
export class WireFailure extends Error {
  constructor(
    readonly reply: SmtpReply,
    readonly kind: 'connect' | 'timeout' | 'closed' | 'protocol' | 'tls' | 'local',
  ) {
    super(`${reply.code} ${reply.enhanced ?? ''} ${reply.text}`);
    this.name = 'WireFailure';
  }
}

interface Waiter {
  readonly phase: Phase;
  readonly resolve: (r: WireReply) => void;
  readonly reject: (f: WireFailure) => void;
  /** The reply to STARTTLS: a 2xx hands the socket to TLS, and nothing may follow it. */
  readonly tlsGo?: boolean;
}

export interface WireOptions {
  readonly peer: PeerInfo;
  readonly localAddress?: string;
  /** Seconds for the TCP connect. */
  readonly connectTimeout: number;
  /** Seconds per phase. */
  readonly phaseSeconds: (phase: Phase) => number;
  readonly tracer?: SessionTracer;
}

/**
 * One SMTP client connection on a socket: writes commands, hands back replies in command
 * order (RFC 2920 §3.1, also when pipelined) and enforces a time per phase, counted from
 * the command (or the previous reply), never extended by a trickle of bytes. Any failure
 * (timeout, close, a protocol error, TLS) ends the connection and rejects whatever waits,
 * with a WireFailure carrying the reply that explains it.
 */
export class SmtpWire {
  private socket: Socket;
  private parser = new ReplyParser();
  private readonly waiters: Waiter[] = [];
  private timer?: NodeJS.Timeout;
  private drainWaiter?: { resolve: () => void; reject: (f: WireFailure) => void };
  private failure?: WireFailure;
  private quitting = false;
  private readonly onData = (chunk: Buffer) => this.received(chunk);
  secure = false;
  /** Where the dialogue is traced; a reused connection traces each transaction under its own entry. */
  tracer?: SessionTracer;
  /** Called once when the connection ends, for whatever reason. */
  onClose?: () => void;
  /** The server's greeting, awaited from the moment of connecting (RFC 5321 §4.5.3.2.1). */
  readonly greeting: Promise<WireReply>;

  private constructor(
    socket: Socket,
    private readonly opts: WireOptions,
  ) {
    this.socket = socket;
    this.tracer = opts.tracer;
    this.listen(socket);
    this.greeting = this.expect('greeting');
    this.greeting.catch(() => undefined);
  }

  /** Connects (Nagle off: a command must not wait for the peer's delayed ACK). */
  static connect(opts: WireOptions): Promise<SmtpWire> {
    const { peer } = opts;
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: peer.address, port: peer.port, noDelay: true, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new WireFailure({ code: 451, enhanced: '4.4.1', text: `cannot connect to ${peer.name} [${peer.address}]:${peer.port}: ${why}` }, 'connect'));
      };
      const timer = setTimeout(() => fail(`connect timeout after ${opts.connectTimeout} s`), opts.connectTimeout * 1000);
      const onError = (err: NodeJS.ErrnoException) => fail(err.code ?? err.message);
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        opts.tracer?.connect?.(peer, { address: socket.localAddress, port: socket.localPort });
        resolve(new SmtpWire(socket, opts));
      });
    });
  }

  private readonly onError = (err: NodeJS.ErrnoException) => this.fail(this.closedFailure(`connection error: ${err.code ?? err.message}`));
  private readonly onEnd = () => this.fail(this.closedFailure('connection closed by'));

  private listen(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  /** Takes Tern's listeners off a socket, leaving Node's own (a TLSSocket frees its native state on 'close'). */
  private unlisten(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('end', this.onEnd);
    socket.off('close', this.onEnd);
  }

  private closedFailure(what: string): WireFailure {
    const { peer } = this.opts;
    const text = what.endsWith(' by') ? `${what} ${peer.name} [${peer.address}]` : `${what} with ${peer.name} [${peer.address}]`;
    return new WireFailure({ code: 451, enhanced: '4.4.2', text }, 'closed');
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  private received(chunk: Buffer): void {
    if (this.failure) return;
    const { replies, error } = this.parser.feed(chunk);
    for (let i = 0; i < replies.length; i++) {
      const reply = replies[i];
      this.tracer?.reply?.(reply);
      const waiter = this.waiters[0];
      if (!waiter) {
        // Unasked-for: a 421 before closing an idle session (RFC 5321 §3.8), or a QUIT's 221.
        if (this.quitting) continue;
        if (reply.code === 421) return this.fail(new WireFailure({ code: 421, enhanced: '4.4.2', text: `${this.opts.peer.name} closed the session: ${reply.lines.join(' ')}` }, 'closed'));
        return this.fail(this.protocolFailure(`sent a reply nobody asked for (${reply.code})`));
      }
      const go = waiter.tlsGo === true && reply.code >= 200 && reply.code < 300;
      if (go) {
        // RFC 3207 §4.2 / CVE-2011-0411: anything after the go-ahead and before the handshake
        // was injected to be read as if it came over TLS.
        if (i < replies.length - 1 || error || this.parser.pendingBytes > 0) {
          return this.fail(
            new WireFailure({ code: 451, enhanced: '4.7.5', text: `TLS with ${this.opts.peer.name} [${this.opts.peer.address}] failed: the server sent data after its ${reply.code} to STARTTLS (command injection)` }, 'tls'),
          );
        }
        this.socket.off('data', this.onData);
        this.socket.pause();
      }
      this.waiters.shift();
      this.disarm();
      if (this.waiters.length > 0) this.arm(this.waiters[0].phase);
      waiter.resolve(reply);
      if (go) return;
    }
    if (error) this.fail(new WireFailure({ ...error, text: `${error.text} (${this.opts.peer.name} [${this.opts.peer.address}])` }, 'protocol'));
  }

  private protocolFailure(what: string): WireFailure {
    return new WireFailure({ code: 451, enhanced: '4.5.0', text: `protocol error: ${this.opts.peer.name} [${this.opts.peer.address}] ${what}` }, 'protocol');
  }

  private arm(phase: Phase): void {
    clearTimeout(this.timer);
    const seconds = this.opts.phaseSeconds(phase);
    const { peer } = this.opts;
    this.timer = setTimeout(
      () => this.fail(new WireFailure({ code: 451, enhanced: '4.4.2', text: `timeout after ${seconds} s waiting in the ${phase} phase with ${peer.name} [${peer.address}]` }, 'timeout')),
      seconds * 1000,
    );
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The next reply, in order (the greeting, or one more after a pipelined group). */
  expect(phase: Phase, tlsGo = false): Promise<WireReply> {
    return new Promise<WireReply>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiters.push({ phase, resolve, reject, tlsGo });
      if (this.waiters.length === 1) this.arm(phase);
    });
  }

  /** Writes raw bytes (the body, or lines already formatted). */
  write(data: string | Buffer, traced?: string): void {
    if (traced) this.tracer?.send?.(traced);
    if (!this.failure) this.socket.write(data);
  }

  command(line: string, phase: Phase, traced = line): Promise<WireReply> {
    this.tracer?.send?.(traced);
    const reply = this.expect(phase);
    this.write(`${line}\r\n`);
    return reply;
  }

  /**
   * Several commands in one write (RFC 2920): the replies, one promise each, in order. A
   * failure rejects every promise still open; each carries a no-op catch so that the
   * caller may stop awaiting after the first.
   */
  pipeline(commands: readonly { readonly line: string; readonly phase: Phase }[]): Promise<WireReply>[] {
    const replies = commands.map((c) => {
      this.tracer?.send?.(c.line);
      const p = this.expect(c.phase);
      p.catch(() => undefined);
      return p;
    });
    this.write(commands.map((c) => `${c.line}\r\n`).join(''));
    return replies;
  }

  /** STARTTLS: its reply; after a 2xx the socket is paused and checked for injected data. */
  startTls(): Promise<WireReply> {
    this.tracer?.send?.('STARTTLS');
    const reply = this.expect('command', true);
    this.write('STARTTLS\r\n');
    return reply;
  }

  /** The TLS handshake on the paused socket (after a 2xx to STARTTLS); a fresh parser after it. */
  upgrade(options: ConnectionOptions, mode: string): Promise<void> {
    const { peer } = this.opts;
    const plain = this.socket;
    return new Promise<void>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      // From here on the TLS socket reports what happens underneath.
      this.unlisten(plain);
      plain.on('error', () => undefined);
      const secure: TLSSocket = tlsConnect({ ...options, socket: plain });
      const failed = (why: string) => {
        clearTimeout(timer);
        const f = new WireFailure({ code: 451, enhanced: '4.7.5', text: `TLS with ${peer.name} [${peer.address}] failed (${mode}): ${why}` }, 'tls');
        this.fail(f);
        reject(f);
      };
      const seconds = this.opts.phaseSeconds('command');
      const timer = setTimeout(() => failed(`no handshake within ${seconds} s`), seconds * 1000);
      const onHandshakeError = (err: Error) => failed(err.message);
      const onHandshakeClose = () => failed('connection closed during the handshake');
      secure.once('error', onHandshakeError);
      secure.once('close', onHandshakeClose);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        secure.off('error', onHandshakeError);
        secure.off('close', onHandshakeClose);
        if (this.failure) return reject(this.failure);
        this.socket = secure;
        this.secure = true;
        this.parser = new ReplyParser();
        this.listen(secure);
        this.tracer?.tls?.({ version: secure.getProtocol() ?? 'unknown', cipher: secure.getCipher()?.name ?? 'unknown', authorized: secure.authorized });
        resolve();
      });
      this.socket = secure;
    });
  }

  /**
   * Streams a (dot-stuffed, terminated) body with backpressure: each write that fills the
   * socket's buffer waits for 'drain', at most the data-block time (RFC 5321 §4.5.3.2.5,
   * "each TCP SEND call").
   */
  async writeStream(body: Readable): Promise<void> {
    let bytes = 0;
    try {
      for await (const chunk of body) {
        if (this.failure) throw this.failure;
        bytes += (chunk as Buffer).length;
        if (!this.socket.write(chunk as Buffer)) await this.drained();
      }
    } finally {
      this.tracer?.send?.(`<message body, ${bytes} octets>`);
    }
  }

  private drained(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.arm('data-block');
      const done = () => {
        this.disarm();
        this.drainWaiter = undefined;
        resolve();
      };
      this.socket.once('drain', done);
      this.drainWaiter = {
        resolve: done,
        reject: (f) => {
          this.socket.off('drain', done);
          reject(f);
        },
      };
    });
  }

  tlsInfo(): { version: string; cipher: string } | undefined {
    if (!this.secure) return undefined;
    const s = this.socket as TLSSocket;
    return { version: s.getProtocol() ?? 'unknown', cipher: s.getCipher()?.name ?? 'unknown' };
  }

  /** QUIT, and close without waiting long for the 221 (the server may be gone). */
  quit(): void {
    if (this.failure) return;
    this.quitting = true;
    this.tracer?.send?.('QUIT');
    this.socket.end('QUIT\r\n');
    const timer = setTimeout(() => this.destroy(), 5000);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
  }

  destroy(why?: WireFailure): void {
    this.fail(why ?? new WireFailure({ code: 451, enhanced: '4.4.2', text: 'session closed by Tern' }, 'local'), why === undefined);
  }

  private fail(failure: WireFailure, orderly = false): void {
    if (this.failure) return;
    this.failure = failure;
    this.disarm();
    this.socket.off('data', this.onData);
    this.socket.on('error', () => undefined);
    this.socket.destroy();
    for (const w of this.waiters.splice(0)) w.reject(failure);
    this.drainWaiter?.reject(failure);
    this.tracer?.close?.(orderly || this.quitting ? undefined : failure.reply);
    this.onClose?.();
  }
}
