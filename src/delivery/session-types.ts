import type { Readable } from 'node:stream';
import type { SecureContext } from 'node:tls';
import type { EnvelopeDsn, PeerInfo, RecipientDsn, RecipientOutcome, SmtpReply } from '../core/index.js';
import type { TlsMode } from '../config/index.js';
import type { SessionTracer } from './tracer.js';

/** One definition, with outbound.ini's and routes.ini's validator. */
export type { TlsMode };

/** Seconds per phase (RFC 5321 §4.5.3.2) plus the TCP connect bound. */
export interface SessionTimeouts {
  readonly connect: number;
  readonly greeting: number;
  readonly command: number;
  readonly mail: number;
  readonly rcpt: number;
  readonly dataInit: number;
  readonly dataBlock: number;
  readonly dataDone: number;
}

export interface SessionRequest {
  readonly peer: PeerInfo;
  /** Resolves when the transaction may begin (limits.ini's rate, smoothed at the wire: see WirePacer). */
  readonly pace?: () => Promise<void>;
  readonly helo: string;
  /** Source address to bind (a route's or get_mx's `bind`). */
  readonly localAddress?: string;
  /** AUTH credentials for a smart host; sent only once the session is encrypted. */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Send AUTH even without TLS (routes.ini auth_insecure: a smart host on a trusted network). */
  readonly authInsecure?: boolean;
  /** Speak LMTP (RFC 2033): LHLO, and a reply per recipient after the message. */
  readonly lmtp?: boolean;
  /**
   * opportunistic: STARTTLS when offered, certificate not checked; required: no STARTTLS,
   * no delivery; verify: required plus a certificate valid for the MX name; disabled: plaintext.
   */
  readonly tlsMode: TlsMode;
  /** `context`, when given, is used as is (built once per config, with the system CAs plus `ca`). */
  readonly tls: { readonly minVersion?: string; readonly ciphers?: string; readonly ca?: Buffer; readonly context?: SecureContext };
  readonly timeouts: SessionTimeouts;
  readonly sender: string;
  /** Each with its own NOTIFY and ORCPT (RFC 3461 §4), passed on when the next hop advertises DSN. */
  readonly recipients: readonly SessionRecipient[];
  readonly size: number;
  readonly eightBit: boolean;
  /** The message needs SMTPUTF8 (RFC 6531); the parameter goes to a server that announces it. */
  readonly smtpUtf8?: boolean;
  /** RET and ENVID (RFC 3461 §4.3, §4.4), passed on when the next hop advertises DSN. */
  readonly dsn?: EnvelopeDsn;
  /** Events of the dialogue, for transcripts and debug logs. */
  readonly tracer?: SessionTracer;
  /** The body: small ones whole (sent in one write, no stream to set up), larger ones streamed. */
  readonly body: () => Readable | Buffer;
  /** Applied to every remote reply before it decides an outcome (the rewrite rules). */
  readonly rewriteReply: (reply: SmtpReply) => SmtpReply;
}

export interface SessionRecipient {
  readonly address: string;
  readonly dsn?: RecipientDsn;
}

export type SessionResult =
  /** No transaction started (connect failure, bad greeting, 421 before MAIL): try the next host. */
  | { readonly kind: 'unavailable'; readonly reply: SmtpReply; readonly tls: boolean; readonly tlsFailed?: boolean; readonly protocolError?: boolean }
  | {
      readonly kind: 'done';
      readonly recipients: readonly RecipientOutcome[];
      readonly tls: boolean;
      /** The server's EHLO announced DSN: NOTIFY and ORCPT went along, and success reports are its to send. */
      readonly nextHopDsn: boolean;
      /** The server broke the protocol mid-transaction (the recipients it had not settled are deferred). */
      readonly protocolError?: boolean;
    };

/** The mail exchanger of a session, as a reply from it names it. */
export function remoteOf(req: Pick<SessionRequest, 'peer'>): NonNullable<SmtpReply['remote']> {
  return { name: req.peer.name, address: req.peer.address };
}
