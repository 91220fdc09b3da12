import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';

/**
 * A raw SMTP dialogue that starts TLS (RFC 3207) before anything else, for what a client
 * library would not do on purpose, such as a run of wrong passwords on one connection.
 */
export class StartTlsSmtp {
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

  /** Connects (from `localAddress` when given), says EHLO, upgrades to TLS and says EHLO again. */
  static async open(port: number, localAddress?: string, host = '127.0.0.1'): Promise<StartTlsSmtp> {
    const plain = connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      plain.once('connect', resolve);
      plain.once('error', reject);
    });
    const smtp = new StartTlsSmtp(plain);
    await smtp.reply();
    await smtp.command('EHLO client.test');
    const ready = await smtp.command('STARTTLS');
    if (!ready.startsWith('220')) throw new Error(`STARTTLS refused: ${ready}`);
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'tern.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    smtp.socket = secure;
    smtp.listen(secure);
    await smtp.command('EHLO client.test');
    return smtp;
  }

  /** The next complete reply; '' once the server has closed the connection. */
  async reply(timeoutMs = 15000): Promise<string> {
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
    this.socket.write(line + '\r\n');
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
