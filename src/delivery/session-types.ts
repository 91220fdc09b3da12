import type { Readable } from 'node:stream';
import type { PeerInfo, RecipientOutcome, SmtpReply } from '../core/index.js';

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
  readonly tls: { readonly minVersion?: string; readonly ciphers?: string; readonly ca?: Buffer };
  readonly timeouts: SessionTimeouts;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly eightBit: boolean;
  /** RFC 3461 parameters passed on when the next hop advertises DSN (nodemailer checks the EHLO). */
  readonly dsn?: { readonly ret?: string; readonly envid?: string; readonly notify?: readonly string[]; readonly orcpt?: string };
  /** The body: small ones whole (sent in one write, no stream to set up), larger ones streamed. */
  readonly body: () => Readable | Buffer;
  /** Applied to every remote reply before it decides an outcome (the rewrite rules). */
  readonly judge: (reply: SmtpReply) => SmtpReply;
}

export type TlsMode = 'opportunistic' | 'required' | 'verify' | 'disabled';

export type SessionResult =
  /** No transaction started (connect failure, bad greeting, 421 before MAIL): try the next host. */
  | { readonly kind: 'unavailable'; readonly reply: SmtpReply; readonly tls: boolean; readonly tlsFailed?: boolean }
  | { readonly kind: 'done'; readonly recipients: readonly RecipientOutcome[]; readonly tls: boolean };
