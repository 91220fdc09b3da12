/** One SMTP reply as seen on the wire or produced by Tern itself. */
export interface SmtpReply {
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.26"; absent when the peer sent none. */
  readonly enhanced?: string;
  readonly text: string;
  /**
   * The mail exchanger that sent this reply. Absent when Tern made the reply itself (DNS
   * failure, connection refused, time-out, expiry, a listener reply): a delivery status
   * notification names a Remote-MTA and an `smtp;` Diagnostic-Code only for a reply a
   * remote MTA really gave (RFC 3464 §2.3.5, §2.3.6).
   */
  readonly remote?: { readonly name: string; readonly address: string };
}

/** RFC 3461 parameters a client gave for one recipient. */
export interface RecipientDsn {
  readonly notify?: readonly ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
  readonly orcpt?: string;
}

/** RFC 3461 parameters a client gave on MAIL FROM. */
export interface EnvelopeDsn {
  readonly ret?: 'FULL' | 'HDRS';
  readonly envid?: string;
}

export type RecipientState = 'pending' | 'delivered' | 'deferred' | 'failed';

export interface Recipient {
  readonly address: string;
  state: RecipientState;
  /**
   * The reply that decided the current state, when there was one; an expiry keeps the last
   * attempt's reply here (its report quotes it), an operator's bounce replaces it.
   */
  lastReply?: SmtpReply;
  readonly dsn?: RecipientDsn;
  /** A NOTIFY=DELAY report has been sent for this recipient (RFC 3461: once). */
  delayReported?: boolean;
}

/** What a client handed over in one SMTP transaction. */
export interface Envelope {
  /** Envelope sender; the empty string is the null sender `<>`. */
  readonly sender: string;
  readonly recipients: readonly { readonly address: string; readonly dsn?: RecipientDsn }[];
  readonly dsn: EnvelopeDsn;
  readonly smtpUtf8: boolean;
  readonly bodyType: '7bit' | '8bitmime';
}

/** The result of one delivery attempt for one recipient. */
export interface RecipientOutcome {
  readonly address: string;
  readonly result: 'delivered' | 'deferred' | 'failed';
  readonly reply: SmtpReply;
}

export interface PeerInfo {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** The result of one delivery attempt of one queue entry. */
export interface DeliveryOutcome {
  readonly recipients: readonly RecipientOutcome[];
  readonly peer?: PeerInfo;
  readonly tls: boolean;
  /** Every host of the destination refused a session (connect, greeting): it is down. */
  readonly unreachable?: boolean;
  /** The negotiated TLS version and cipher, when the session was encrypted. */
  readonly tlsInfo?: { readonly version: string; readonly cipher: string };
  /**
   * The next hop advertised DSN (RFC 3461) in its EHLO reply, so NOTIFY and ORCPT were passed
   * on and success reports are its to send (RFC 3461 §5.2.2); absent when no session got that far.
   */
  readonly nextHopDsn?: boolean;
  /**
   * Delivered with LMTP (RFC 2033), i.e. into the final mailbox store: a success report
   * says `delivered`, where after an SMTP relay it says `relayed` (RFC 3464 §2.3.3).
   */
  readonly lmtp?: boolean;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
