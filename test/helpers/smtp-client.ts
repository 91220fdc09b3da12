import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';

export interface SendOptions {
  readonly port: number;
  readonly host?: string;
  readonly from: string;
  readonly to: string[];
  readonly body: string | Buffer;
  readonly auth?: { user: string; pass: string };
  readonly localAddress?: string;
  readonly requireTLS?: boolean;
  readonly dsn?: SMTPConnection.DSNOptions;
  /** Declare BODY=8BITMIME. */
  readonly eightBit?: boolean;
}

export interface SendResult {
  readonly accepted: string[];
  readonly rejected: string[];
  readonly response: string;
}

/** Sends one message through Tern with nodemailer's SMTP client, as an application would. */
export async function sendMail(opts: SendOptions): Promise<SendResult> {
  const conn = new SMTPConnection({
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    name: 'client.test',
    localAddress: opts.localAddress,
    requireTLS: opts.requireTLS,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 5000,
    socketTimeout: 20000,
  });
  // nodemailer does not call back when the server vanishes mid-dialogue; its events do.
  const gone = new Promise<never>((_, reject) => {
    conn.once('error', reject);
    conn.once('end', () => reject(new Error('connection closed by the server')));
  });
  gone.catch(() => undefined);
  try {
    await Promise.race([gone, new Promise<void>((resolve) => conn.connect(() => resolve()))]);
    if (opts.auth) {
      await Promise.race([gone, new Promise<void>((resolve, reject) => conn.login(opts.auth!, (err) => (err ? reject(err) : resolve())))]);
    }
    return await Promise.race([
      gone,
      new Promise<SendResult>((resolve, reject) =>
        conn.send({ from: opts.from, to: opts.to, dsn: opts.dsn, use8BitMime: opts.eightBit } as SMTPConnection.Envelope, opts.body, (err, info) =>
          err ? reject(err) : resolve({ accepted: info.accepted as string[], rejected: info.rejected as string[], response: String(info.response) }),
        ),
      ),
    ]);
  } finally {
    conn.on('error', () => undefined);
    conn.quit();
  }
}

/** A plain message with CRLF line ends. */
export function message(subject: string, body = 'Hello from the test suite.', extraHeaders: string[] = []): string {
  return [`From: sender@client.test`, `To: rcpt@good.test`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}@client.test>`, ...extraHeaders, '', body, ''].join('\r\n');
}

/**
 * A raw SMTP dialogue on a socket, for what a well-behaved client library would never
 * send (bare LF, smuggling sequences, unknown parameters). Each `send` writes bytes as
 * given and `reply` reads the next complete reply.
 */
export class RawSmtp {
  private buf = '';
  private waiting?: () => void;
  closed = false;
  private constructor(private socket: Socket) {
    this.listen(socket);
  }

  private listen(socket: Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  /** Connects and reads the greeting. */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawSmtp> {
    const raw = await RawSmtp.connect(port, host, localAddress);
    await raw.reply();
    return raw;
  }

  /** Connects without reading anything: the greeting (or a refusal) is the first reply(). */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawSmtp> {
    const socket = connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawSmtp(socket);
  }

  /** Connects (from `localAddress` when given), says EHLO, upgrades to TLS and says EHLO again. */
  static async openTls(port: number, localAddress?: string, host = '127.0.0.1'): Promise<RawSmtp> {
    const raw = await RawSmtp.open(port, host, localAddress);
    await raw.command('EHLO client.test');
    const ready = await raw.startTls();
    if (!ready.startsWith('220')) throw new Error(`STARTTLS refused: ${ready}`);
    await raw.command('EHLO client.test');
    return raw;
  }

  /** STARTTLS, then the same raw dialogue inside TLS (any certificate accepted). */
  async startTls(): Promise<string> {
    const reply = await this.command('STARTTLS');
    if (!reply.startsWith('220')) return reply;
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
    return reply;
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** The next complete (possibly multi-line) reply; '' when the server closed the connection. */
  async reply(timeoutMs = 10000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (this.closed) return '';
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  async command(line: string): Promise<string> {
    this.send(line + '\r\n');
    return this.reply();
  }

  /** AUTH PLAIN with an initial response (RFC 4954 §4, RFC 4616). */
  authPlain(user: string, pass: string): Promise<string> {
    return this.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  }

  /** AUTH LOGIN, answering the server's two 334 challenges (draft-murchison-sasl-login). */
  async authLogin(user: string, pass: string): Promise<string> {
    const first = await this.command('AUTH LOGIN');
    if (!first.startsWith('334')) return first;
    const second = await this.command(Buffer.from(user).toString('base64'));
    if (!second.startsWith('334')) return second;
    return this.command(Buffer.from(pass).toString('base64'));
  }

  close(): void {
    this.socket.destroy();
  }
}
