import type { SmtpReply } from '../core/index.js';

/** bounce and expiration are failure reports; delay and success answer RFC 3461 NOTIFY. */
export type DsnKind = 'bounce' | 'expiration' | 'delay' | 'success';

export interface DsnRecipient {
  readonly address: string;
  /** RFC 3461 ORCPT as given, e.g. `rfc822;user@example.com`. */
  readonly orcpt?: string;
  readonly notify?: readonly string[];
  /**
   * The last reply for this recipient: a mail exchanger's (`reply.remote` says which) or
   * Tern's own. For an expiration, the last attempt's reply, not the expiry itself.
   */
  readonly reply: SmtpReply;
  readonly lastAttempt: Date;
}

export interface DsnEvent {
  readonly kind: DsnKind;
  /** Tern's queue id of the original message. */
  readonly messageId: string;
  /** The original envelope sender: the report's recipient. */
  readonly sender: string;
  readonly envid?: string;
  readonly ret?: 'FULL' | 'HDRS';
  readonly arrival: Date;
  /** When the report is made (its Date: header). */
  readonly now: Date;
  /** For delay reports: until when Tern keeps trying. */
  readonly retryUntil?: Date;
  readonly smtpUtf8: boolean;
  /**
   * For success reports: the message reached the recipient's mailbox (LMTP into the store),
   * so the Action is `delivered`; otherwise it was relayed to a next hop without DSN,
   * `relayed` (RFC 3464 §2.3.3).
   */
  readonly finalDelivery?: boolean;
  readonly recipients: readonly DsnRecipient[];
}

export interface DsnParams {
  readonly enableBounce: boolean;
  readonly enableExpiration: boolean;
  readonly includeOriginal: 'FullContent' | 'HeadersOnly' | 'No';
  readonly reportingMta: { readonly type: string; readonly name: string };
  readonly stableContent: boolean;
  /** Haraka's outbound.bounce_message: `{pid} {date} {me} {from} {msgid} {to} {reason}`. */
  readonly template?: string;
  readonly me: string;
  readonly pid: number;
}

/** The original message as far as it was read: `complete` is false when only its head was. */
export interface OriginalMessage {
  readonly bytes: Buffer;
  readonly complete: boolean;
}

export interface DsnMessage {
  readonly bytes: Buffer;
  /** The report holds 8-bit data: send with BODY=8BITMIME. */
  readonly eightBit: boolean;
  /** The report holds UTF-8 headers or addresses (RFC 6533): needs SMTPUTF8. */
  readonly smtpUtf8: boolean;
  /** The recipients the report speaks of, after NOTIFY filtering. */
  readonly reported: readonly string[];
}
