import { SMTPServer } from 'smtp-server';
import { listenOn } from './ports.js';

/**
 * A mail exchanger that takes a message's data and then holds the final reply while
 * `holding` is true (a server slow to answer after the final dot, RFC 5321 §4.5.3.2.6):
 * a delivery stays in flight as long as the test wants. Set `holding = false` and later
 * messages are accepted at once; `release()` answers those held with 250.
 */
export class HoldingMx {
  holding = true;
  /** While true every recipient gets 451 4.3.2 (a server not taking mail now). */
  refusing = false;
  /** Recipients of messages accepted (250 sent). */
  readonly delivered: string[] = [];
  /** Recipients of messages whose data arrived and whose reply is held. */
  readonly held: string[] = [];
  private readonly waiting: (() => void)[] = [];
  private server?: SMTPServer;

  constructor(readonly host: string) {}

  async start(port: number): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideSTARTTLS: true,
      logger: false,
      closeTimeout: 200,
      onRcptTo: (_address, _session, cb) => (this.refusing ? cb(Object.assign(new Error('4.3.2 Not now'), { responseCode: 451 })) : cb()),
      onData: (stream, session, cb) => {
        const to = session.envelope.rcptTo.map((r) => r.address);
        stream.resume();
        stream.on('end', () => {
          const conn = [...server.connections].find((c) => (c as unknown as { session: unknown }).session === session) as unknown as { _socket: { destroyed: boolean } } | undefined;
          const accept = () => {
            // A client gone while held (killed) never got the 250: not delivered.
            if (conn?._socket.destroyed) return;
            this.delivered.push(...to);
            cb(null, '2.0.0 Ok');
          };
          if (!this.holding) return accept();
          this.held.push(...to);
          this.waiting.push(accept);
        });
      },
    });
    server.on('error', () => undefined);
    await listenOn(server.server, this.host, port);
    this.server = server;
  }

  release(): void {
    this.holding = false;
    for (const accept of this.waiting.splice(0)) accept();
  }

  async until(pred: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`holding MX: condition not met within ${timeoutMs} ms (held ${this.held.length}, delivered ${this.delivered.length})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const c of server.connections) (c as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
