import type { DispositionKind } from '../core/index.js';
import type { Logger } from 'pino';

/**
 * The fixed set of disposition records, after KumoMTA's log record types: the log's
 * rendering of a core `Disposition` (disposition-record.ts makes it).
 */
export type DispositionType = DispositionKind;

export interface DispositionRecord {
  readonly type: DispositionType;
  /** Queue entry id (`<message id>.<n>`), or the message id for Reception. */
  readonly id: string;
  readonly message_id: string;
  /** The message's Message-ID header (bounded, as received); null when it has none. */
  readonly message_id_header: string | null;
  readonly sender: string;
  /** One recipient; Reception and the Admin… records list theirs in `recipients` instead. */
  readonly recipient?: string;
  readonly recipients?: readonly string[];
  readonly domain?: string;
  readonly attempt?: number;
  /** Absent from the operators' records (Admin…), which answer no one. */
  readonly response?: { readonly code: number; readonly enhanced_code: string | null; readonly content: string };
  readonly peer?: { readonly name: string; readonly address: string; readonly port: number } | null;
  readonly tls?: boolean;
  /** The negotiated TLS version and cipher; null when the session was not encrypted. */
  readonly tls_version?: string | null;
  readonly tls_cipher?: string | null;
  readonly size?: number;
  /** When the message was accepted (ISO 8601). */
  readonly queued_at: string;
  /** When this disposition happened (ISO 8601). */
  readonly timestamp?: string;
  /** When the next attempt is due, for TransientFailure. */
  readonly next_attempt_at?: string;
  /** For the Reception of a delivery status notification: which report, about which original. */
  readonly report?: { readonly kind: string; readonly original_id: string; readonly original_message_id: string; readonly recipients: readonly string[] };
  /** Who asked for an operator's action (Admin… records): the admin API client's address, and the reason given (or null). */
  readonly admin?: { readonly client: string; readonly reason: string | null };
  /** For Reception: the DKIM signatures Tern made (d=, s=, a=), when it signed the message. */
  readonly dkim?: readonly { readonly domain: string; readonly selector: string; readonly algorithm: string }[];
  /** The client that sent it, for Reception. */
  readonly client?: { readonly address: string; readonly name?: string; readonly helo?: string; readonly user?: string; readonly tls: boolean };
}

/**
 * A refused command or message (KumoMTA's `Rejection`): one record per refusal the listener
 * sends to MAIL, RCPT, DATA, AUTH or the end of DATA, including AUTH failures. `client.address`
 * comes before every field a client chooses, so that fail2ban-style patterns can anchor on it.
 */
export interface RejectionRecord {
  readonly type: 'Rejection';
  /** Why, from a fixed list (README, *Logs*); also the `reason` label of tern_rejections_total. */
  readonly reason: string;
  /** MAIL, RCPT, DATA, END-OF-MESSAGE (the reply to the end of DATA) or AUTH. */
  readonly command: string;
  readonly client: { readonly address: string; readonly port?: number; readonly helo?: string; readonly user?: string; readonly tls: boolean };
  /** The user name an AUTH attempt gave (authcid, or authzid when that is empty). */
  readonly auth_user?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly recipients?: readonly string[];
  /** The queue id the message would have had, for refusals at the end of DATA. */
  readonly message_id?: string;
  readonly response: NonNullable<DispositionRecord['response']>;
  /** smtp-server's connection id: the records of one connection share it. */
  readonly session_id: string;
  readonly timestamp: string;
}

/** Writes one Rejection record; like a disposition, its `msg` is its type. */
export function logRejection(logger: Logger, record: RejectionRecord): void {
  logger.info(record, record.type);
}
