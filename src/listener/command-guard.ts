import type { SMTPServer } from 'smtp-server';

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
}

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

/** Applies Tern's guards to one freshly created smtp-server connection. */
export function guardConnection(connection: unknown): void {
  const conn = connection as ConnectionInternals;

  // Replies whose text already starts with an enhanced status code are sent as given,
  // so that `550 5.7.1` stays 5.7.1 rather than smtp-server's default for 550.
  const send = conn.send.bind(conn);
  conn.send = (code, data, context) => {
    if (typeof data === 'string' && ENHANCED_PREFIX.test(data)) return send(code, data, false);
    return send(code, data, context);
  };

  const onCommand = conn._onCommand.bind(conn);
  conn._onCommand = (command, callback) => {
    if (command.includes(0x0d) || command.includes(0x00)) {
      conn.send(500, '5.5.2 Bare CR or NUL in command line refused (RFC 5321 section 2.3.8)');
      if (callback) setImmediate(callback);
      return;
    }
    onCommand(command, callback);
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
export function guardServer(server: SMTPServer): void {
  const connect = server.connect.bind(server);
  server.connect = (socket, options) => {
    connect(socket, options);
    let newest: unknown;
    for (const c of server.connections) newest = c;
    if (newest) guardConnection(newest);
  };
}
