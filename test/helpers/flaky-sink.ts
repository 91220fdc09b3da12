import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { listenOn } from './ports.js';

/**
 * A mail exchanger that answers every session `421` while `down`, and otherwise accepts
 * everything; it notes each session's source address (each node sends from its own).
 * With `brokenTls` it offers STARTTLS, answers it 220 and then breaks the handshake
 * (noting who asked), so that a client retries in plaintext.
 */
export class FlakySink {
  down = true;
  readonly sessions: { from: string; down: boolean }[] = [];
  readonly received: string[] = [];
  /** Source addresses of the sessions that asked for STARTTLS. */
  readonly starttls: string[] = [];
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly host: string,
    private readonly options: { brokenTls?: boolean } = {},
  ) {}

  async start(port: number): Promise<void> {
    this.server = createServer((socket) => this.session(socket));
    await listenOn(this.server, this.host, port);
  }

  private session(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    this.sessions.push({ from: String(socket.remoteAddress), down: this.down });
    if (this.down) {
      socket.end('421 4.3.2 Service not available, try again later\r\n');
      return;
    }
    socket.write('220 sink ESMTP\r\n');
    let buf = '';
    let inData = false;
    let rcpts: string[] = [];
    let handshake = false;
    socket.on('data', (d: Buffer) => {
      // The client's TLS hello gets plain text back: its handshake fails.
      if (handshake) return void socket.end('this is not TLS\r\n');
      buf += d.toString('latin1');
      if (buf.length > 1 << 20) socket.destroy();
      let i;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line !== '.') continue;
          inData = false;
          this.received.push(...rcpts);
          rcpts = [];
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write(this.options.brokenTls && verb === 'EHLO' ? '250-sink\r\n250 STARTTLS\r\n' : '250 sink\r\n');
        else if (verb === 'STAR' && this.options.brokenTls) {
          this.starttls.push(String(socket.remoteAddress));
          handshake = true;
          socket.write('220 2.0.0 go ahead\r\n');
        } else if (verb === 'MAIL' || verb === 'RSET' || verb === 'NOOP') {
          if (verb === 'RSET') rcpts = [];
          socket.write('250 2.0.0 ok\r\n');
        } else if (verb === 'RCPT') {
          rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          socket.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
        else socket.write('502 5.5.2 what\r\n');
      }
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

