import type { PeerInfo, SmtpReply } from '../core/index.js';
import type { WireReply } from '../smtp/index.js';

/**
 * What a session does on the wire, as events: transcripts and debug logs are built from
 * these, never by scraping. Every method is optional; a session without a tracer pays
 * nothing for it. Credentials are never passed: an AUTH line arrives as `AUTH PLAIN ****`.
 */
export interface SessionTracer {
  connect?(peer: PeerInfo, local: { readonly address?: string; readonly port?: number }): void;
  /** A command line as written (without CRLF); `<message body, N octets>` for a body. */
  send?(line: string): void;
  reply?(reply: WireReply): void;
  tls?(info: { readonly version: string; readonly cipher: string; readonly authorized: boolean }): void;
  /** The session ended: `why` is the failure that ended it, absent for an orderly close. */
  close?(why?: SmtpReply): void;
}
