import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerSession, SMTPServerDataStream } from 'smtp-server';
import type { Clock, Envelope, RecipientDsn, SmtpReply } from '../core/index.js';
import { closedError, localError, TernError } from '../core/index.js';
import type { Closable } from '../core/index.js';
import { configHandle, splitHostPort } from '../config/index.js';
import type { ConfigHandle, ConfigInput } from '../config/index.js';
import type { Logger, RejectionRecord } from '../log/index.js';
import { messageIdHeader } from '../intake/index.js';
import type { MessageIntake } from '../intake/index.js';
import { isRoutableAddress } from '../smtp/index.js';
import { clientKey } from './auth-failure-window.js';
import { AuthGuard } from './auth-guard.js';
import { ClientLimiter } from './client-limits.js';
import type { ClientLimit } from './client-limits.js';
import { ErrorLimits, smtpError } from './error-limits.js';
import type { Refusal } from './error-limits.js';
import type { HookRunner } from '../hooks/index.js';
import { MessageGuard } from './message-guard.js';
import { receivedHeader } from './received-header.js';
import { RelayPolicy } from './relay-policy.js';
import { Rejections } from './rejections.js';
import { adaptServer, endSessions } from './smtp-server-adapter.js';
import { liveOptions, reconfigureServer, tlsOptions } from './reconfigure.js';
import type { AdaptedConnection, ReplyEvent } from './smtp-server-adapter.js';

// Parameters Tern implements; anything else is refused with 555 5.5.4 (RFC 5321 §4.1.1.11)
// rather than silently dropped, since a client that asked for an extension relies on it.
const MAIL_PARAMS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID', 'AUTH']);
const RCPT_PARAMS = new Set(['NOTIFY', 'ORCPT']);

type Callback = (err?: Error | null) => void;

const refusal = (reason: string, code: number, enhanced: string, text: string): Refusal => ({ reason, reply: { code, enhanced, text } });

function unknownParam(address: SMTPServerAddress, known: Set<string>): string | undefined {
  const args = address.args;
  if (!args || typeof args !== 'object') return undefined;
  return Object.keys(args).find((k) => !known.has(k.toUpperCase()));
}

const nonAscii = (s: string) => /[^\x00-\x7f]/.test(s);

/** The envelope of the transaction, as it is queued and shown to queue_outbound plugins. */
function envelopeOf(session: SMTPServerSession): Envelope {
  const env = session.envelope;
  return {
    sender: env.mailFrom ? env.mailFrom.address : '',
    recipients: env.rcptTo.map((r) => {
      const dsn = (r as SMTPServerAddress & { dsn?: { notify?: string[]; orcpt?: string } }).dsn;
      const rdsn: RecipientDsn | undefined =
        dsn && (dsn.notify || dsn.orcpt)
          ? { ...(dsn.notify ? { notify: dsn.notify as RecipientDsn['notify'] } : {}), ...(dsn.orcpt ? { orcpt: dsn.orcpt } : {}) }
          : undefined;
      return { address: r.address, dsn: rdsn };
    }),
    // smtp-server leaves absent DSN parameters as null; the queue stores them as absent.
    dsn: { ...(env.dsn?.ret ? { ret: env.dsn.ret as 'FULL' | 'HDRS' } : {}), ...(env.dsn?.envid ? { envid: env.dsn.envid } : {}) },
    smtpUtf8: !!env.smtpUtf8,
    bodyType: env.bodyType === '8bitmime' ? '8bitmime' : '7bit',
  };
}

/**
 * The client's host name, forward-confirmed, or undefined. It runs in the background and
 * nothing waits for it: whatever is known when a Received header is written is used.
 */
export type ClientNameLookup = (address: string) => Promise<string | undefined>;

export interface ListenerOptions {
  readonly clientName?: ClientNameLookup;
  /** Every reply any connection sends (4xx/5xx included, smtp-server's own too). */
  readonly onReply?: (event: ReplyEvent) => void;
  /** Sees every Rejection record (metrics). */
  readonly onRejection?: (record: RejectionRecord) => void;
}

// During a DNS outage every lookup waits for its timeout; past this many at once, new
// clients simply go without a name rather than piling up sockets.
const MAX_PENDING_NAME_LOOKUPS = 256;

/** The SMTP listener: relay policy, AUTH, limits and the smuggling guard in front of the spool. */
export class Listener implements Closable {
  private servers: SMTPServer[] = [];
  private readonly configs: ConfigHandle;
  private readonly unsubscribe: () => void;
  private closing?: Promise<void>;
  private relay: RelayPolicy;
  private readonly limiter: ClientLimiter;
  private readonly names = new WeakMap<SMTPServerSession, string>();
  private readonly counted = new WeakSet<SMTPServerSession>();
  private pendingLookups = 0;
  private readonly limits = new ErrorLimits(() => this.config.smtp);
  private readonly auth: AuthGuard;
  private readonly rejections: Rejections;

  constructor(
    config: ConfigInput,
    private readonly intake: MessageIntake,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly hooks?: HookRunner,
    private readonly options: ListenerOptions = {},
  ) {
    this.configs = configHandle(config);
    this.relay = new RelayPolicy(this.config.relayAllow);
    this.limiter = new ClientLimiter(clock);
    this.auth = new AuthGuard(() => this.config, this.limits, clock);
    this.rejections = new Rejections(logger, clock, options.onRejection);
    // A reload: relay networks, users and limits apply to new transactions, the
    // certificate to the next STARTTLS (listen addresses stay as bound).
    this.unsubscribe = this.configs.subscribe((next, _prev, changes) => {
      this.relay = new RelayPolicy(next.relayAllow);
      for (const server of this.servers) reconfigureServer(server, next, changes);
    });
  }

  /** The config of the moment: every setting is read where it is used. */
  private get config() {
    return this.configs.current;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Binds every address of smtp.ini `listen`; each gets its own smtp-server with the same policy. */
  async listen(): Promise<{ host: string; port: number }[]> {
    if (this.closed) throw closedError('listener');
    const bound: { host: string; port: number }[] = [];
    for (const spec of this.config.smtp.listen.split(',').map((s) => s.trim())) {
      const { host, port } = splitHostPort(spec);
      const server = this.createServer();
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(port, host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
      const addr = server.server.address();
      bound.push({ host, port: typeof addr === 'object' && addr ? addr.port : port });
    }
    return bound;
  }

  /** Stops accepting connections; sessions in progress are given smtp-server's close timeout. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe();
      await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    })();
    return this.closing;
  }

  /** Stops accepting and ends every session now: each client is told 421 4.3.2 (RFC 5321 §3.8). */
  destroy(): void {
    void this.close();
    for (const server of this.servers) endSessions(server, closedError('listener').reply);
  }

  private createServer(): SMTPServer {
    const cfg = this.config;
    const server = new SMTPServer({
      ...liveOptions(cfg),
      rejectOversized: true,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: true,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      hideSMTPUTF8: false,
      hide8BITMIME: false,
      hidePIPELINING: false,
      // REQUIRETLS (RFC 8689) is not implemented by delivery yet, so it is not offered.
      hideREQUIRETLS: true,
      ...tlsOptions(cfg),
      logger: false,
      // AUTH is neither offered nor accepted until TLS is up (no passwords in clear), unless
      // auth_insecure says otherwise; and never when no users are configured.
      onConnect: (session, cb) => {
        session.disabledCommands = this.authAllowed(session.secure) ? [] : ['AUTH'];
        cb();
      },
      onSecure: (_socket, session, cb) => {
        session.disabledCommands = this.authAllowed(true) ? [] : ['AUTH'];
        cb();
      },
      onAuth: (auth, session, cb) => void this.auth.authenticate(auth, session, cb),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) =>
        void this.onData(stream, session, cb).catch((err: unknown) => {
          // A fault here must cost one transaction a 451, never the daemon.
          this.logger.error({ err: { message: (err as Error).message } }, 'unexpected error while receiving a message');
          cb(smtpError(localError('Local error in processing, try again later')));
        }),
    });
    adaptServer(server, {
      admit: (conn) => this.admit(conn),
      closed: (conn) => {
        if (this.counted.has(conn.session)) this.limiter.release(clientKey(conn.remoteAddress));
      },
      // Clients that may relay are never held (Haraka's early_talker whitelist does the same).
      greetingDelayMs: (conn) => (this.relay.allows(conn.remoteAddress) ? 0 : this.config.smtp.early_talker_delay * 1000),
      recordDeadlineMs: () => this.config.smtp.line_deadline * 1000,
      sessionMaxMs: () => this.config.smtp.max_session_length * 1000,
      onReply: (event) => {
        // Only refusals are recorded; a reply that accepts costs nothing more here.
        if (event.code >= 400 && event.answersCommand && event.command) {
          const text = `${event.enhanced ? event.enhanced + ' ' : ''}${event.text}`;
          this.rejections.observe(event.session, event.code, text, event.command, event.line, this.limits.takePending(event.session));
        }
        this.options.onReply?.(event);
      },
    });
    // SMTP is a dialogue of small writes: with Nagle's algorithm each reply can wait for
    // the client's delayed ACK (~40 ms on Linux). Replies go out at once.
    server.server.on('connection', (socket) => socket.setNoDelay(true));
    server.on('error', (err) => this.logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'smtp listener error'));
    return server;
  }

  private admit(conn: AdaptedConnection): SmtpReply | undefined {
    const smtp = this.config.smtp;
    const limit: ClientLimit = this.relay.allows(conn.remoteAddress)
      ? { maxConnections: smtp.relay_max_connections_per_client, maxPerMinute: smtp.relay_max_connection_rate_per_client }
      : { maxConnections: smtp.max_connections_per_client, maxPerMinute: smtp.max_connection_rate_per_client };
    // An IPv6 host holds a whole /64: its addresses share one count, as for AUTH failures.
    const refusal = this.limiter.admit(clientKey(conn.remoteAddress), limit);
    if (refusal) {
      this.logger.warn({ client: conn.remoteAddress, reply: refusal, limit }, 'connection refused: per-client limit');
      return refusal;
    }
    this.counted.add(conn.session);
    this.lookUpName(conn);
    return undefined;
  }

  /** Starts the client's name lookup; the greeting never waits for it. */
  private lookUpName(conn: AdaptedConnection): void {
    const lookup = this.options.clientName;
    if (!lookup || this.pendingLookups >= MAX_PENDING_NAME_LOOKUPS) return;
    this.pendingLookups++;
    lookup(conn.remoteAddress)
      .then(
        (name) => {
          if (name) this.names.set(conn.session, name);
        },
        () => undefined,
      )
      .finally(() => this.pendingLookups--);
  }

  private authAllowed(secure: boolean): boolean {
    return this.config.authUsers.size > 0 && (secure || this.config.smtp.auth_insecure);
  }

  /** Answers a command Tern decides: a connection past its error limit is closed, a refusal counted. */
  private decide(session: SMTPServerSession, verdict: Refusal | undefined, cb: Callback) {
    const refused = this.limits.exhausted(session) ?? verdict;
    if (refused) return this.limits.refuse(session, refused, cb);
    cb();
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback) {
    this.decide(session, this.mailVerdict(address, session), cb);
  }

  private mailVerdict(address: SMTPServerAddress, session: SMTPServerSession): Refusal | undefined {
    const unknown = unknownParam(address, MAIL_PARAMS);
    if (unknown) return refusal('unknown_parameter', 555, '5.5.4', `MAIL FROM parameter ${unknown} not recognized`);
    if (nonAscii(address.address) && !session.envelope.smtpUtf8) {
      return refusal('smtputf8_required', 553, '5.6.7', 'Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)');
    }
    if (address.address && !isRoutableAddress(address.address)) {
      return refusal('bad_sender', 553, '5.1.7', 'Sender address must be a full address or <>');
    }
    return undefined;
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback) {
    this.decide(session, this.rcptVerdict(address, session), cb);
  }

  private rcptVerdict(address: SMTPServerAddress, session: SMTPServerSession): Refusal | undefined {
    const unknown = unknownParam(address, RCPT_PARAMS);
    if (unknown) return refusal('unknown_parameter', 555, '5.5.4', `RCPT TO parameter ${unknown} not recognized`);
    if (!session.user && !this.relay.allows(session.remoteAddress)) {
      return refusal('relay_denied', 550, '5.7.1', 'Relaying denied: authenticate or send from an allowed network');
    }
    if (nonAscii(address.address) && !session.envelope.smtpUtf8) {
      return refusal('smtputf8_required', 553, '5.6.7', 'Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)');
    }
    if (!isRoutableAddress(address.address)) {
      return refusal('bad_recipient', 553, '5.1.3', 'Recipient address must be a full address with a domain');
    }
    return undefined;
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) {
    const cfg = this.config;
    const guard = new MessageGuard(cfg.smtp.max_received_headers, cfg.smtp.max_message_size);
    stream.pipe(guard);
    let incoming;
    try {
      incoming = await this.intake.receive();
    } catch (err) {
      guard.resume();
      const reply = err instanceof TernError ? err.reply : localError();
      this.logger.error({ err: { message: (err as Error).message }, reply }, 'cannot start a queue file');
      stream.on('end', () => cb(smtpError(reply)));
      return;
    }
    const messageId = incoming.messageId;
    if (cfg.outbound.received_header !== 'disabled') {
      incoming.body.write(
        receivedHeader({
          helo: session.hostNameAppearsAs ?? '',
          clientAddress: session.remoteAddress,
          clientName: this.names.get(session),
          me: cfg.me,
          text: cfg.outbound.received_header,
          messageId,
          tls: session.secure,
          authenticated: !!session.user,
          smtpUtf8: !!session.envelope.smtpUtf8,
          date: new Date(this.clock.now()),
        }),
      );
    }
    // If the disk fails mid-message, keep draining the client's data so it gets its 451/452
    // at the end of DATA rather than a stalled session; commit() reports the failure.
    incoming.body.once('error', () => {
      guard.unpipe(incoming.body);
      guard.resume();
    });
    guard.pipe(incoming.body);
    // A client that goes away mid-message (or is cut off by a deadline) leaves a stream
    // that closes without ending; its queue file is dropped rather than left open.
    const complete = await new Promise<boolean>((resolve) => {
      guard.once('end', () => resolve(true));
      stream.once('close', () => {
        if (!stream.readableEnded) resolve(false);
      });
    });
    if (!complete) {
      guard.unpipe(incoming.body);
      await incoming.abort();
      this.logger.info({ client: session.remoteAddress, message_id: messageId }, 'client gone before the end of the message');
      return cb(smtpError({ code: 451, enhanced: '4.4.2', text: 'Connection lost before the end of the message' }));
    }

    const refused = guard.violation;
    if (refused) {
      await incoming.abort();
      // The Rejection record says why (message_size, bare_line_ending, mail_loop).
      this.limits.mark(session, { messageId });
      return cb(smtpError(refused));
    }
    const envelope = envelopeOf(session);
    if (this.hooks?.has('queue_outbound')) {
      // A copy: a plugin cannot change what is queued.
      const verdict = await this.hooks.queueOutbound({ envelope: structuredClone(envelope), headers: guard.headers });
      if (verdict?.action === 'deny') {
        await incoming.abort();
        this.limits.mark(session, { reason: { name: 'hook', code: verdict.reply.code }, messageId });
        return cb(smtpError(verdict.reply));
      }
    }
    try {
      await this.intake.insert(incoming, {
        envelope,
        headerMessageId: messageIdHeader(guard.headers),
        reason: {
          kind: 'smtp',
          client: {
            address: session.remoteAddress,
            ...(this.names.has(session) ? { name: this.names.get(session) } : {}),
            helo: session.hostNameAppearsAs ?? undefined,
            user: session.user as string | undefined,
            tls: session.secure,
          },
        },
      });
      this.limits.delivered(session);
      cb(null, `2.0.0 Queued as ${messageId}`);
    } catch (err) {
      const reply = err instanceof TernError ? err.reply : localError();
      this.logger.error({ err: { message: (err as Error).message, cause: String((err as Error).cause ?? '') }, reply, message_id: messageId }, 'queue write failed');
      this.limits.mark(session, { messageId });
      cb(smtpError(reply));
    }
  }
}
