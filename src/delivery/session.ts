import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import type { RecipientOutcome, SmtpReply } from '../core/index.js';
import { classifyReply, parseReply } from '../smtp/index.js';
import { Transcript } from './transcript.js';
import type { Phase } from './transcript.js';

export type { SessionTimeouts, SessionRequest, TlsMode, SessionResult } from './session-types.js';
import type { SessionRequest, SessionResult } from './session-types.js';

const outcome = (address: string, reply: SmtpReply): RecipientOutcome => {
  const cls = classifyReply(reply);
  return { address, reply, result: cls === 'success' ? 'delivered' : cls === 'transient' ? 'deferred' : 'failed' };
};

interface NodemailerError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
}

/**
 * One SMTP client session with nodemailer's smtp-connection: open() connects, EHLOs,
 * negotiates STARTTLS per the TLS mode and authenticates; transact() runs one
 * MAIL/RCPT/DATA transaction and may be called again after reset() (connection reuse).
 * Results are outcomes per recipient, never exceptions for a remote failure. A watchdog
 * enforces the per-phase timeouts, since a peer that stops mid-reply (a dangling `250-`
 * continuation, say) would otherwise hold the delivery slot forever.
 */
export class DeliverySession {
  private connection?: SMTPConnection;
  private socket?: Socket;
  private transcript = new Transcript();
  private watchdog?: NodeJS.Timeout;
  private req?: SessionRequest;
  /** The operation in progress (open, transact, reset) and how to end it when the connection fails. */
  private op?: { readonly settle: (r: SessionResult) => void; began: boolean };
  /** Transactions completed on this connection. */
  deliveries = 0;
  alive = false;
  /** The last transaction ended with the reply to its data: the server has reset itself. */
  private clean = false;

  /** A fresh connection and one transaction: what a first attempt to a host does. */
  async run(req: SessionRequest): Promise<SessionResult> {
    const failed = await this.open(req);
    return failed ?? this.transact(req);
  }

  private secure(): boolean {
    return Boolean(this.connection?.secure);
  }

  private phaseSeconds(phase: Phase): number {
    const t = this.req!.timeouts;
    return { greeting: t.greeting, command: t.command, mail: t.mail, rcpt: t.rcpt, 'data-init': t.dataInit, 'data-block': t.dataBlock, 'data-done': t.dataDone }[phase];
  }

  private arm(): void {
    clearTimeout(this.watchdog);
    if (!this.op) return;
    const phase = this.transcript.phase;
    const seconds = this.phaseSeconds(phase);
    this.watchdog = setTimeout(() => {
      const peer = this.req!.peer;
      const reply: SmtpReply = { code: 451, enhanced: '4.4.2', text: `timeout after ${seconds} s waiting in the ${phase} phase with ${peer.name} [${peer.address}]` };
      this.fail(this.interrupted(reply));
    }, seconds * 1000);
  }

  /** Runs one operation; `settle` may be called once, by the operation or by a connection failure. */
  private operate(began: boolean, start: (settle: (r: SessionResult | undefined) => void) => void): Promise<SessionResult | undefined> {
    return new Promise((resolve) => {
      let done = false;
      const settle = (r: SessionResult | undefined) => {
        if (done) return;
        done = true;
        this.op = undefined;
        clearTimeout(this.watchdog);
        resolve(r);
      };
      this.op = { settle: (r) => settle(r), began };
      this.arm();
      start(settle);
    });
  }

  /** The connection failed under an operation: end it with this result, and the session with it. */
  private fail(result: SessionResult): void {
    const op = this.op;
    this.destroy();
    op?.settle(result);
  }

  /** Connects and gets the session ready for MAIL; resolves undefined when ready, else why not. */
  open(req: SessionRequest): Promise<SessionResult | undefined> {
    this.req = req;
    this.transcript = new Transcript(!!req.lmtp);
    return this.operate(false, (settle) => {
      // Tern opens the TCP connection itself so that it can turn Nagle's algorithm off: with it
      // on, the final dot waits for the server's delayed ACK (~40 ms a message on Linux).
      const socket = netConnect({ host: req.peer.address, port: req.peer.port, noDelay: true, ...(req.localAddress ? { localAddress: req.localAddress } : {}) });
      this.socket = socket;
      const connectTimer = setTimeout(() => onConnectError(Object.assign(new Error(`connect timeout after ${req.timeouts.connect} s`), { code: 'ETIMEDOUT' })), req.timeouts.connect * 1000);
      const onConnectError = (err: NodeJS.ErrnoException) => {
        clearTimeout(connectTimer);
        socket.destroy();
        settle({ kind: 'unavailable', reply: { code: 451, enhanced: '4.4.1', text: `cannot connect to ${req.peer.name} [${req.peer.address}]:${req.peer.port}: ${err.code ?? err.message}` }, tls: false });
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        clearTimeout(connectTimer);
        socket.off('error', onConnectError);
        if (this.op) this.startSmtp(req, socket, settle);
      });
    });
  }

  private startSmtp(req: SessionRequest, socket: Socket, settle: (r: SessionResult | undefined) => void): void {
    const transcript = this.transcript;
    const connection = new SMTPConnection({
      connection: socket,
      host: req.peer.address,
      port: req.peer.port,
      name: req.helo,
      lmtp: !!req.lmtp,
      greetingTimeout: req.timeouts.greeting * 1000,
      // The watchdog owns the phase timeouts; this is only a last resort (also for idle pooled sessions).
      socketTimeout: Math.max(...Object.values(req.timeouts)) * 2000,
      opportunisticTLS: req.tlsMode === 'opportunistic',
      ignoreTLS: req.tlsMode === 'disabled',
      requireTLS: req.tlsMode === 'required' || req.tlsMode === 'verify',
      tls: {
        servername: req.peer.name,
        rejectUnauthorized: req.tlsMode === 'verify',
        ...(req.tls.ca ? { ca: req.tls.ca } : {}),
        ...(req.tls.minVersion ? { minVersion: req.tls.minVersion as 'TLSv1.2' } : {}),
        ...(req.tls.ciphers ? { ciphers: req.tls.ciphers } : {}),
      },
      transactionLog: true,
      logger: {
        level: () => undefined,
        trace: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
        fatal: () => undefined,
        debug: (entry: { tnx?: string }, message: string) => {
          if (entry?.tnx === 'client') transcript.onClient(String(message));
          else if (entry?.tnx === 'server') {
            transcript.onServer(String(message));
            if (String(message).startsWith('354')) this.corkData();
          } else return;
          this.arm();
        },
      } as unknown as SMTPConnection.Options['logger'],
    } as SMTPConnection.Options);
    this.connection = connection;

    connection.on('error', (err: NodemailerError) => this.fail(this.fromError(err)));
    connection.on('end', () => {
      const peer = req.peer;
      this.fail(this.interrupted({ code: 451, enhanced: '4.4.2', text: `connection closed by ${peer.name} [${peer.address}]` }));
    });

    connection.connect(() => {
      if (!req.auth) {
        this.alive = true;
        return settle(undefined);
      }
      if (!connection.secure && !req.authInsecure) {
        this.destroy();
        return settle({ kind: 'unavailable', reply: { code: 451, enhanced: '4.7.10', text: `${req.peer.name} offered no TLS; credentials are never sent in clear` }, tls: false });
      }
      connection.login({ user: req.auth.user, pass: req.auth.pass }, (err) => {
        if (!err) {
          this.alive = true;
          return settle(undefined);
        }
        const reply = (err as NodemailerError).response ? parseReply((err as NodemailerError).response!) : undefined;
        this.destroy();
        settle({ kind: 'unavailable', reply: reply ?? { code: 451, enhanced: '4.7.0', text: `authentication with ${req.peer.name} failed: ${err.message}` }, tls: this.secure() });
      });
    });
  }

  /** One transaction on the open session. */
  async transact(req: SessionRequest): Promise<SessionResult> {
    const connection = this.connection;
    if (!connection || !this.alive) return { kind: 'unavailable', reply: { code: 451, enhanced: '4.4.2', text: 'session is closed' }, tls: false };
    this.req = req;
    this.clean = false;
    this.transcript.beginTransaction();
    const result = await this.operate(true, (settle) => {
      const transcript = this.transcript;
      const source = req.body();
      let body: Readable | Buffer;
      if (Buffer.isBuffer(source)) {
        // All of it is at hand: as a stream that had read ahead to its end.
        transcript.onBody(true);
        body = source;
      } else {
        // Observing chunks through a Transform, not a 'data' listener, keeps the file
        // stream paused until nodemailer pipes it after the 354.
        const arm = () => this.arm();
        const observed = new Transform({
          transform(chunk, _enc, done) {
            transcript.onBody(false);
            arm();
            done(null, chunk);
          },
          flush(done) {
            transcript.onBody(true);
            arm();
            done();
          },
        });
        source.on('error', (err) => observed.destroy(err));
        source.pipe(observed);
        body = observed;
      }
      connection.send(
        { from: req.sender, to: [...req.recipients], size: req.size, use8BitMime: req.eightBit, ...(req.dsn ? { dsn: { ...req.dsn, notify: req.dsn.notify && [...req.dsn.notify] } } : {}) } as SMTPConnection.Envelope,
        body,
        (err: NodemailerError | null) => {
          if (err) {
            const failed = this.fromError(err);
            this.destroy();
            return settle(failed);
          }
          this.deliveries++;
          this.clean = true;
          settle({ kind: 'done', recipients: this.collect(transcript, req, undefined), tls: this.secure() });
        },
      );
    });
    return result!;
  }

  /**
   * Logged before nodemailer acts on the 354, which writes the body and then the final
   * dot in separate writes: held back until the turn is over, a small message goes out
   * in one segment, not two (one write fewer per message, for both ends).
   */
  private corkData(): void {
    const socket = (this.connection as unknown as { _socket?: Socket } | undefined)?._socket;
    if (!socket || socket.destroyed) return;
    socket.cork();
    setImmediate(() => socket.uncork());
  }

  /** RSET before the next transaction on a reused session; false when the session is no longer usable. */
  async reset(): Promise<boolean> {
    const connection = this.connection;
    if (!connection || !this.alive) return false;
    // After the reply to DATA the transaction is over on both sides (RFC 5321 4.1.1.4):
    // a RSET would cost a round trip per message and tell nothing new. nodemailer's own
    // pool reuses sessions the same way; a session that died idle fails its next MAIL
    // before any data is sent, and a fresh session takes over.
    if (this.clean) return true;
    const result = await this.operate(true, (settle) => connection.reset((err) => settle(err ? { kind: 'unavailable', reply: { code: 451, text: 'RSET failed' }, tls: false } : undefined)));
    if (result) this.destroy();
    return !result;
  }

  /** Ends a session politely (QUIT). */
  quit(): void {
    this.alive = false;
    const c = this.connection;
    if (!c) return;
    c.removeAllListeners('end');
    c.on('error', () => undefined);
    c.quit();
  }

  /** The TLS version and cipher of the session, when STARTTLS succeeded. */
  tlsInfo(): { version: string; cipher: string } | undefined {
    // nodemailer replaces its socket with the TLSSocket after STARTTLS; it offers no accessor.
    const socket = (this.connection as unknown as { _socket?: TLSSocket } | undefined)?._socket;
    if (!this.connection?.secure || !socket || typeof socket.getProtocol !== 'function') return undefined;
    return { version: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher()?.name ?? 'unknown' };
  }

  /** Ends the session at once. */
  destroy(): void {
    this.alive = false;
    clearTimeout(this.watchdog);
    this.socket?.destroy();
    const c = this.connection;
    if (c) {
      c.removeAllListeners('end');
      c.on('error', () => undefined);
      c.close();
    }
  }

  /** The reply that decides each recipient: its own RCPT failure, else MAIL's, DATA's, or the final one. */
  private collect(t: Transcript, req: SessionRequest, fallback: SmtpReply | undefined): RecipientOutcome[] {
    return req.recipients.map((address) => {
      const rcpt = t.rcptReplies.get(address);
      const remote =
        (rcpt && rcpt.code >= 400 && rcpt) ||
        (t.mailReply && t.mailReply.code >= 400 && t.mailReply) ||
        (t.dataReply && t.dataReply.code >= 400 && t.dataReply) ||
        t.lmtpReplies.get(address) ||
        t.finalReply;
      if (remote) return outcome(address, req.judge(remote));
      return outcome(address, fallback ?? { code: 451, enhanced: '4.4.2', text: 'session ended before the message was accepted' });
    });
  }

  private fromError(err: NodemailerError): SessionResult {
    const t = this.transcript;
    const req = this.req!;
    const began = this.op?.began ?? true;
    const tls = this.secure();
    const parsed = err.response ? parseReply(err.response) : undefined;
    const remote = parsed && req.judge(parsed);
    if (!began) {
      if (err.code === 'ETLS' || t.tlsPending) {
        // A TLS failure is never the remote's verdict on the message: it defers (or, when
        // opportunistic, the agent retries the host in plaintext).
        const missing = !!remote && remote.code >= 400;
        const text = missing
          ? `TLS is ${req.tlsMode} for ${req.peer.name} but STARTTLS was refused: ${remote!.code} ${remote!.text}`
          : `TLS with ${req.peer.name} [${req.peer.address}] failed (${req.tlsMode}): ${err.message}`;
        return { kind: 'unavailable', reply: { code: 451, enhanced: missing ? '4.7.10' : '4.7.5', text }, tls, tlsFailed: true };
      }
      const reply = remote ?? { code: 451, enhanced: '4.4.1', text: `cannot talk to the mail exchanger: ${err.code ?? 'error'} ${err.message}` };
      return { kind: 'unavailable', reply, tls };
    }
    if (err.code === 'EMESSAGE' && !err.response) {
      // nodemailer refuses before MAIL when the message exceeds the server's SIZE (RFC 1870).
      return { kind: 'done', recipients: req.recipients.map((a) => outcome(a, { code: 552, enhanced: '5.3.4', text: err.message })), tls };
    }
    return this.interrupted(remote ?? { code: 451, enhanced: '4.4.2', text: `session failed: ${err.code ?? 'error'} ${err.message}` });
  }

  private interrupted(reply: SmtpReply): SessionResult {
    const t = this.transcript;
    const req = this.req!;
    const began = this.op?.began ?? true;
    const tls = this.secure();
    // Before MAIL was answered no transaction exists: the next host may do better (a 421,
    // a dropped connection, a stalled EHLO or STARTTLS).
    if (!began || !t.mailReply) return { kind: 'unavailable', reply, tls };
    return { kind: 'done', recipients: this.collect(t, req, toTransient(reply)), tls };
  }
}

/** A session-level failure defers: only a reply addressed to the transaction may fail it for good. */
function toTransient(reply: SmtpReply): SmtpReply {
  return reply.code < 500 ? reply : { ...reply, code: 451 };
}
