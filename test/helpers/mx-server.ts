import { EventEmitter, once } from 'node:events';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import type { TestCert } from './certs.js';
import { listenOn } from './ports.js';

export interface ReceivedMail {
  readonly from: string;
  readonly to: string[];
  readonly body: Buffer;
  readonly secure: boolean;
  readonly helo: string;
  /** The address the sending MTA connected from. */
  readonly clientAddress: string;
  readonly mailArgs: Record<string, unknown>;
  /** RFC 3461 parameters per recipient, as this server received them. */
  readonly rcptDsn: Record<string, { notify?: string[]; orcpt?: string } | undefined>;
  readonly envelopeDsn: { ret?: string | null; envid?: string | null };
}

/**
 * A test mail exchanger on a real loopback socket (127.0.0.x), built with smtp-server. It
 * listens on `port`, or with port 0 (the default) on a port the kernel picks: `port` holds
 * the real one once started, for outbound.ini `remote_port` or a route's `port`.
 * What it does with a recipient depends on the local part:
 *   tempfail…       451 4.2.1 at RCPT          permfail…     550 5.1.1 at RCPT
 *   flaky…          451 on the first RCPT of that address, then accepts
 *   rejectdata…     554 5.7.1 after the final dot
 *   drop…           closes the connection at RCPT
 *   anything else   accepted
 */
export class TestMx extends EventEmitter {
  readonly mailbox: ReceivedMail[] = [];
  readonly seen = new Map<string, number>();
  connections = 0;
  /** When set, every session is refused at the greeting with this reply (change it to recover). */
  greeting?: { code: number; text: string };
  private server?: SMTPServer;

  constructor(
    readonly host: string,
    public port = 0,
    /** `dsn: false`, `smtpUtf8: false`: the EHLO reply does not advertise DSN (RFC 3461) or SMTPUTF8 (RFC 6531), as many servers do. */
    private readonly options: { cert?: TestCert; greeting?: { code: number; text: string }; dsn?: boolean; smtpUtf8?: boolean } = {},
  ) {
    super();
    this.greeting = options.greeting;
  }

  async start(): Promise<void> {
    const { cert } = this.options;
    const server: SMTPServer = new SMTPServer({
      name: `mx-${this.host}`,
      authOptional: true,
      // Without a certificate there is no STARTTLS at all (smtp-server would otherwise use its built-in one).
      disabledCommands: cert ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      hideSTARTTLS: !cert,
      ...(cert ? { key: cert.key, cert: cert.cert } : {}),
      // Replies carry their enhanced code in the text, exactly as written below.
      hideENHANCEDSTATUSCODES: true,
      hideDSN: this.options.dsn === false,
      hideSMTPUTF8: this.options.smtpUtf8 === false,
      logger: false,
      closeTimeout: 500,
      size: 50 * 1024 * 1024,
      onConnect: (session, cb) => {
        this.connections++;
        if (this.greeting) return cb(Object.assign(new Error(this.greeting.text), { responseCode: this.greeting.code }));
        cb();
      },
      onRcptTo: (address: SMTPServerAddress, session: SMTPServerSession, cb) => {
        const local = address.address.split('@')[0].toLowerCase();
        const n = (this.seen.get(address.address) ?? 0) + 1;
        this.seen.set(address.address, n);
        if (local.startsWith('tempfail')) return cb(Object.assign(new Error('4.2.1 Mailbox busy, try later'), { responseCode: 451 }));
        if (local.startsWith('permfail')) return cb(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }));
        if (local.startsWith('flaky') && n === 1) return cb(Object.assign(new Error('4.3.2 Not now, come back soon'), { responseCode: 451 }));
        if (local.startsWith('drop')) {
          for (const c of server.connections) {
            const conn = c as unknown as { session: SMTPServerSession; _socket: { destroy(): void } };
            if (conn.session === session) conn._socket.destroy();
          }
          return;
        }
        cb();
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const to = session.envelope.rcptTo.map((r) => r.address);
          if (to.some((a) => a.toLowerCase().startsWith('rejectdata'))) {
            return cb(Object.assign(new Error('5.7.1 Message content rejected'), { responseCode: 554 }));
          }
          const mail: ReceivedMail = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to,
            body: Buffer.concat(chunks),
            secure: session.secure,
            helo: session.hostNameAppearsAs ?? '',
            clientAddress: session.remoteAddress,
            mailArgs: (session.envelope.mailFrom && session.envelope.mailFrom.args) || {},
            rcptDsn: Object.fromEntries(session.envelope.rcptTo.map((r) => [r.address, (r as { dsn?: { notify?: string[]; orcpt?: string } }).dsn])),
            envelopeDsn: { ret: session.envelope.dsn?.ret, envid: session.envelope.dsn?.envid },
          };
          this.mailbox.push(mail);
          this.emit('mail', mail);
          cb(null, '2.0.0 Ok: queued as TEST');
        });
      },
    });
    server.on('error', () => undefined);
    this.port = await listenOn(server.server, this.host, this.port);
    this.server = server;
  }

  /** Resolves when `count` messages in all have arrived. */
  async waitForMail(count: number, timeoutMs = 15000): Promise<ReceivedMail[]> {
    const deadline = AbortSignal.timeout(timeoutMs);
    while (this.mailbox.length < count) {
      await once(this, 'mail', { signal: deadline });
    }
    return this.mailbox;
  }

  recipients(): string[] {
    return this.mailbox.flatMap((m) => m.to);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const c of server.connections) (c as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
