import { SMTPServer } from 'smtp-server';
import type { SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SmtpReply } from '../core/index.js';

/**
 * The one place where Tern reaches into smtp-server's internals (pinned by the exact
 * version in package.json; the shape this file relies on is asserted by
 * test/unit/listener/smtp-server-adapter.test.ts, so an upgrade fails in CI first).
 *
 * What smtp-server offers no option for, and Tern needs:
 * - the greeting at once: SMTPConnection.init() holds every greeting 100 ms for "early
 *   talkers" and connectionReady() then waits for a reverse lookup by the system resolver;
 * - per-address admission before the greeting, and deadlines the idle timer cannot give
 *   (a line trickled one byte at a time, a session that never ends);
 * - command-line guards (bare LF, bare CR, NUL) on every parser, including the new one
 *   smtp-server creates after STARTTLS (its own defence against command injection);
 * - replies whose text carries an enhanced code sent as given, and every reply observed.
 */

/**
 * One reply the connection sends, and the command it answers (undefined: the greeting, a
 * timeout, a limit); `END-OF-MESSAGE` for the reply to the end of DATA (Postfix's name).
 */
export interface ReplyEvent {
  readonly code: number;
  readonly enhanced?: string;
  readonly text: string;
  readonly command?: string;
  /** The command line, for MAIL and RCPT only (never AUTH's, which carry credentials). */
  readonly line?: string;
  /** Sent while a command was being handled, or as the reply to the end of DATA. */
  readonly answersCommand: boolean;
  readonly session: SMTPServerSession;
}

export interface AdaptedConnection {
  readonly remoteAddress: string;
  readonly session: SMTPServerSession;
}

export interface AdapterOptions {
  /** Before the greeting: a reply refuses the connection (sent, then the connection is closed). */
  admit?(conn: AdaptedConnection): SmtpReply | undefined;
  /** Once, when the client's socket has closed (after admit(), whatever it decided). */
  closed?(conn: AdaptedConnection): void;
  /** Milliseconds the greeting is held; a command sent before it is refused (421) and the connection closed. */
  greetingDelayMs(conn: AdaptedConnection): number;
  /** A line must arrive whole within this many ms of its first byte (Postfix smtpd_per_record_deadline); 0: no limit. */
  recordDeadlineMs(): number;
  /** The longest a session may last, in ms; 0: no limit. */
  sessionMaxMs(): number;
  /** Every reply, including smtp-server's own (a 552 for MAIL SIZE=, a 421 timeout). */
  onReply?(event: ReplyEvent): void;
}

interface Parser {
  _dataMode: boolean;
  _write(chunk: Buffer, enc: BufferEncoding | 'buffer', next: (err?: Error | null) => void): void;
}

const ENHANCED_PREFIX = /^([245]\.\d{1,3}\.\d{1,3}) /;
const BARE_LF: SmtpReply = { code: 521, enhanced: '5.5.2', text: 'Bare LF in command line refused; lines must end with CRLF (RFC 5321 section 2.3.8)' };
const BARE_CR: SmtpReply = { code: 500, enhanced: '5.5.2', text: 'Bare CR or NUL in command line refused (RFC 5321 section 2.3.8)' };
const LINE_DEADLINE: SmtpReply = { code: 421, enhanced: '4.4.2', text: 'Error: timeout exceeded, a line must arrive whole' };
const SESSION_DEADLINE: SmtpReply = { code: 421, enhanced: '4.4.2', text: 'Error: session too long, closing connection' };
const OVERLOAD: SmtpReply = { code: 421, enhanced: '4.3.2', text: 'Too many connected clients, try again in a moment' };
// A session past its deadline while its message is being committed gets its reply first.
const SESSION_RECHECK_MS = 1000;

const say = (conn: SMTPConnection, reply: SmtpReply) => conn.send(reply.code, `${reply.enhanced ? reply.enhanced + ' ' : ''}${reply.text}`, false);

/** Every connection of this server goes through Tern's adapter instead of SMTPServer.connect(). */
export function adaptServer(server: SMTPServer, options: AdapterOptions): void {
  // Tern looks names up through its own resolver, in the background (see Listener).
  server.options.disableReverseLookup = true;
  server.connect = (socket, socketOptions) => {
    // SMTPServer.connect() minus init(), which adaptConnection() replaces.
    const conn = new SMTPConnection(server, socket, socketOptions);
    server.connections.add(conn);
    conn.on('error', (err) => server._onError(err));
    conn.on('connect', (data) => server._onClientConnect(data));
    adaptConnection(conn, options);
  };
}

/** Ends every session of the server now: the reply, then the connection is closed (shutdown). */
export function endSessions(server: SMTPServer, reply: SmtpReply): void {
  for (const conn of [...server.connections]) {
    say(conn, reply);
    conn.close();
  }
}

function adaptConnection(conn: SMTPConnection, options: AdapterOptions): void {
  const view: AdaptedConnection = { remoteAddress: conn.remoteAddress, session: conn.session };
  let lastCommand: string | undefined;
  let lastLine: string | undefined;
  let inCommand = false;
  let lastCode = 0;
  let admitted = false;
  const timers: NodeJS.Timeout[] = [];

  const send = conn.send.bind(conn);
  conn.send = (code, data, context) => {
    // Replies whose text starts with an enhanced status code are sent as given, so that
    // `550 5.7.1` stays 5.7.1 rather than smtp-server's default for 550.
    const given = typeof data === 'string' ? ENHANCED_PREFIX.exec(data) : null;
    if (given) context = false;
    if (options.onReply) {
      const text = Array.isArray(data) ? data.join('\n') : String(data ?? '');
      const enhanced = given ? given[1] : conn._getEnhancedStatusCode(code, context) || undefined;
      // The answer to the message itself, once the parser has seen its end: a deadline or a
      // lost client in the middle of DATA is no refusal of the message.
      const endOfMessage = lastCode === 354 && !(conn._parser && conn._parser._dataMode);
      options.onReply({
        code,
        enhanced,
        text: given ? text.slice(given[0].length) : text,
        command: endOfMessage ? 'END-OF-MESSAGE' : lastCommand,
        ...(!endOfMessage && lastLine !== undefined ? { line: lastLine } : {}),
        answersCommand: inCommand || endOfMessage,
        session: conn.session,
      });
    }
    lastCode = code;
    send(code, data, context);
  };

  const onCommand = conn._onCommand.bind(conn);
  conn._onCommand = (command, callback) => {
    // A continuation line of AUTH carries credentials, not a verb.
    lastCommand = conn._nextHandler ? 'AUTH' : command.toString('latin1').split(' ', 1)[0].toUpperCase().slice(0, 16);
    lastLine = lastCommand === 'MAIL' || lastCommand === 'RCPT' ? command.toString('utf8') : undefined;
    inCommand = true;
    const done = () => {
      inCommand = false;
      callback?.();
    };
    if (command.includes(0x0d) || command.includes(0x00)) {
      say(conn, BARE_CR);
      // As smtp-server treats a command it does not know: ten end the session, and the next
      // line is read only once the client has taken this reply (no replies piling up).
      if (++conn._unrecognizedCommands >= 10) conn.send(421, 'Error: too many unrecognized commands');
      setImmediate(() => conn._whenWritable(done));
      return;
    }
    onCommand(command, done);
  };

  // As smtp-server's own idle timeout has it: while a handler runs, or the message is in
  // and not yet answered, the client waits for us, and no deadline of the client's runs out.
  // A chunk the parser still holds (the queue is slow to take the message) is the server's
  // delay too: the client's line may well be complete behind it.
  const waitsForUs = () =>
    conn._handlerPending ||
    (!!conn._dataStream && !!conn._parser && !conn._parser._dataMode) ||
    ((conn._parser as unknown as { writableLength?: number } | undefined)?.writableLength ?? 0) > 0;

  const deadline = new LineDeadline(() => {
    if (waitsForUs()) return false;
    lastCommand = undefined;
    say(conn, LINE_DEADLINE);
    return true;
  });
  // STARTTLS retires the parser and creates a new one (RFC 3207 §4.2: nothing from before
  // the handshake survives); every parser gets the same guards.
  guardParser(conn, conn._parser as unknown as Parser, deadline, options);
  const createParser = conn._createParser.bind(conn);
  conn._createParser = () => {
    const parser = createParser();
    deadline.reset();
    guardParser(conn, parser as unknown as Parser, deadline, options);
    return parser;
  };

  // Every end of a session passes through _onClose: the plain socket's close and, after
  // STARTTLS, the TLS socket's (upgrade() strips the listeners off the plain socket).
  const onClose = conn._onClose.bind(conn);
  let gone = false;
  conn._onClose = () => {
    onClose();
    if (gone) return;
    gone = true;
    deadline.reset();
    for (const t of timers) clearTimeout(t);
    if (admitted) options.closed?.(view);
  };

  const sessionMs = options.sessionMaxMs();
  if (sessionMs > 0) {
    const expire = () => {
      // Cutting off a client whose message is being queued would have it send the message again.
      if (waitsForUs()) return void timers.push(setTimeout(expire, SESSION_RECHECK_MS).unref());
      lastCommand = undefined;
      say(conn, SESSION_DEADLINE);
    };
    timers.push(setTimeout(expire, sessionMs).unref());
  }

  // SMTPConnection.init() without its fixed 100 ms pause: the greeting goes out as soon
  // as the connection is admitted, or after the operator's early-talker delay.
  conn._setListeners(() => {
    const max = conn._server.options.maxClients;
    if (max && conn._server.connections.size > max) return say(conn, OVERLOAD);
    admitted = true;
    const refusal = options.admit?.(view);
    if (refusal) {
      say(conn, refusal);
      return conn.close();
    }
    const delay = options.greetingDelayMs(view);
    if (delay > 0) timers.push(setTimeout(() => conn.connectionReady(), delay).unref());
    else conn.connectionReady();
  });
}

function guardParser(conn: SMTPConnection, parser: Parser, deadline: LineDeadline, options: AdapterOptions): void {
  const write = parser._write.bind(parser);
  let last = -1;
  let refused = false;
  parser._write = (chunk, enc, next) => {
    if (refused) return next();
    if (!parser._dataMode) {
      // A command line must end in CRLF; a bare LF is how smuggling attempts start
      // (Postfix: smtpd_forbid_bare_newline). The session is ended, as Postfix does.
      let i = chunk.indexOf(0x0a);
      while (i !== -1) {
        const before = i === 0 ? last : chunk[i - 1];
        if (before !== 0x0d) {
          refused = true;
          deadline.reset();
          say(conn, BARE_LF);
          conn.close();
          return next();
        }
        i = chunk.indexOf(0x0a, i + 1);
      }
    }
    if (chunk.length) {
      last = chunk[chunk.length - 1];
      deadline.chunk(chunk, options.recordDeadlineMs());
    }
    write(chunk, enc, next);
  };
}

/**
 * Postfix's smtpd_per_record_deadline for lines: the clock starts at the first byte of a
 * line and stops at its LF, so a client trickling one byte at a time (which keeps
 * resetting the idle timer) is cut off. Applies to command lines and message lines alike.
 */
class LineDeadline {
  private timer?: NodeJS.Timeout;

  /** `expired` returns false when the deadline cannot apply yet (the server is busy); it is then checked again later. */
  constructor(private readonly expired: () => boolean) {}

  chunk(chunk: Buffer, ms: number): void {
    if (ms <= 0) return this.reset();
    const endsLine = chunk[chunk.length - 1] === 0x0a;
    if (endsLine) return this.reset();
    // A new partial line starts here when this chunk completed the previous one (or none was pending).
    if (this.timer && !chunk.includes(0x0a)) return;
    this.reset();
    const fire = () => {
      this.timer = this.expired() ? undefined : setTimeout(fire, ms).unref();
    };
    this.timer = setTimeout(fire, ms).unref();
  }

  reset(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
