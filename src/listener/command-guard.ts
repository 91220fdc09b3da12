import type { SMTPServer, SMTPServerSession } from 'smtp-server';

/**
 * smtp-server's internals that Tern hooks, pinned by the exact version in package.json
 * and covered by test/integration/listener-guard.test.ts. smtp-server splits commands
 * on a bare LF, turns a bare CR inside a command into a space, and formats every
 * application reply with an enhanced code of its own choosing; Tern needs all three
 * closed, and smtp-server offers no option for them.
 */
interface ConnectionInternals {
  _onCommand(command: Buffer, callback?: () => void): void;
  _parser: { _dataMode: boolean; _write(chunk: Buffer, enc: BufferEncoding, next: (err?: Error) => void): void };
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
  session: SMTPServerSession;
}

/**
 * Sees every 4xx/5xx reply sent while a command is handled or a message is refused:
 * `text` is the reply after its code as sent (enhanced code included), `verb` the command
 * it answers (END-OF-MESSAGE for the reply to the end of DATA), `line` the command line
 * for MAIL and RCPT only (never AUTH's, which carry credentials).
 */
export type ReplyObserver = (session: SMTPServerSession, code: number, text: string, verb: string, line: string | undefined) => void;

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

/** Applies Tern's guards to one freshly created smtp-server connection. */
export function guardConnection(connection: unknown, onReply?: ReplyObserver): void {
  const conn = connection as ConnectionInternals;
  // The command being answered. A line after a 334 continues AUTH (RFC 4954 §4); a reply
  // after a 354 answers the end of DATA.
  let verb = '';
  let line: string | undefined;
  let inCommand = false;
  let lastCode = 0;

  // Replies whose text already starts with an enhanced status code are sent as given,
  // so that `550 5.7.1` stays 5.7.1 rather than smtp-server's default for 550.
  const send = conn.send.bind(conn);
  conn.send = (code, data, context) => {
    if (typeof data === 'string' && ENHANCED_PREFIX.test(data)) send(code, data, false);
    else send(code, data, context);
    // smtp-server keeps the last error reply as sent in session.error (its public API).
    if (onReply && code >= 400 && (inCommand || lastCode === 354)) {
      onReply(conn.session, code, (conn.session.error ?? '').split('\r\n')[0].slice(4), lastCode === 354 ? 'END-OF-MESSAGE' : verb, line);
    }
    lastCode = code;
  };

  const onCommand = conn._onCommand.bind(conn);
  conn._onCommand = (command, callback) => {
    if (lastCode !== 334) {
      verb = /^[A-Za-z]{1,12}/.exec(command.toString('latin1'))?.[0].toUpperCase() ?? '';
      line = verb === 'MAIL' || verb === 'RCPT' ? command.toString('utf8') : undefined;
    }
    inCommand = true;
    const done = () => {
      inCommand = false;
      callback?.();
    };
    if (command.includes(0x0d) || command.includes(0x00)) {
      conn.send(500, '5.5.2 Bare CR or NUL in command line refused (RFC 5321 section 2.3.8)');
      setImmediate(done);
      return;
    }
    onCommand(command, done);
  };

  // A command line must end in CRLF; a bare LF is how smuggling attempts start (Postfix:
  // smtpd_forbid_bare_newline). The session is ended, as Postfix does.
  const parser = conn._parser;
  const write = parser._write.bind(parser);
  let last = -1;
  let refused = false;
  parser._write = (chunk, enc, next) => {
    if (refused) return next();
    if (!parser._dataMode) {
      let i = chunk.indexOf(0x0a);
      while (i !== -1) {
        const before = i === 0 ? last : chunk[i - 1];
        if (before !== 0x0d) {
          refused = true;
          conn.send(521, '5.5.2 Bare LF in command line refused; lines must end with CRLF (RFC 5321 section 2.3.8)');
          conn.close();
          return next();
        }
        i = chunk.indexOf(0x0a, i + 1);
      }
    }
    if (chunk.length) last = chunk[chunk.length - 1];
    write(chunk, enc, next);
  };
}

/** An SMTPServer whose every connection goes through guardConnection(). */
export function guardServer(server: SMTPServer, onReply?: ReplyObserver): void {
  const connect = server.connect.bind(server);
  server.connect = (socket, options) => {
    connect(socket, options);
    let newest: unknown;
    for (const c of server.connections) newest = c;
    if (newest) guardConnection(newest, onReply);
  };
}
