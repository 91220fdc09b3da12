import type { Envelope, PeerInfo, SmtpReply } from './types.js';

/**
 * What the queue decided about a message or one of its recipients, as a domain event
 * (KumoMTA's LogDisposition). Logs, plugins' log_disposition, metrics and reports all
 * start from this; the log record is one rendering of it (log/), made at the edge.
 * Every message accepted gets one Reception; every recipient eventually exactly one of
 * Delivery, Bounce or Expiration, with any number of TransientFailure before it, unless
 * an operator removes its entry (AdminRemove). Operators' actions on an entry are events
 * too (AdminHold, AdminRelease, AdminRemove, AdminBounce), one per entry.
 */
export type Disposition = Reception | RecipientDisposition | AdminAction;

export type DispositionKind = Disposition['kind'];

/** Why a message entered the queue (KumoMTA's InsertReason). */
export type InsertReason =
  | {
      readonly kind: 'smtp';
      /** The client that handed it over. */
      readonly client: { readonly address: string; readonly name?: string; readonly helo?: string; readonly user?: string; readonly tls: boolean };
    }
  | {
      /** A delivery status notification Tern made about another message. */
      readonly kind: 'report';
      readonly report: { readonly kind: string; readonly originalId: string; readonly originalMessageId: string; readonly recipients: readonly string[] };
    };

/** One message made durable in the queue. */
export interface Reception {
  readonly kind: 'Reception';
  /** Tern's queue id of the message. */
  readonly messageId: string;
  /** The message's own Message-ID header (bounded, as received); null when it has none. */
  readonly headerMessageId: string | null;
  readonly envelope: Envelope;
  /** What the client was (or would have been) told: 250 2.0.0 Queued as … */
  readonly reply: SmtpReply;
  readonly size: number;
  /** When the message was accepted. */
  readonly at: Date;
  readonly reason: InsertReason;
  /** The DKIM signatures Tern put on it at acceptance (config/dkim.ini); absent when none. */
  readonly dkim?: readonly { readonly domain: string; readonly selector: string; readonly algorithm: string }[];
}

/** The identity of the queue entry a recipient disposition belongs to. */
export interface DispositionEntry {
  readonly id: string;
  readonly messageId: string;
  readonly headerMessageId?: string;
  readonly sender: string;
  readonly domain: string;
  readonly size: number;
  /** Epoch ms when the message was accepted. */
  readonly queuedAt: number;
}

/** The fate, final or for now, of one recipient of one queue entry. */
export interface RecipientDisposition {
  readonly kind: 'Delivery' | 'TransientFailure' | 'Bounce' | 'Expiration';
  readonly entry: DispositionEntry;
  readonly recipient: string;
  /** The attempt number this came from (0 when the entry was never attempted). */
  readonly attempt: number;
  /** The reply that decided it: the remote's, or Tern's own (expiry, operator, DNS). */
  readonly reply: SmtpReply;
  /** The mail exchanger the attempt ended up with; absent for a disposition without an attempt. */
  readonly peer?: PeerInfo;
  readonly tls: boolean;
  /** The negotiated TLS version and cipher, when the session was encrypted. */
  readonly tlsInfo?: { readonly version: string; readonly cipher: string };
  readonly at: Date;
  /** When the next attempt is due: TransientFailure only. */
  readonly nextAttemptAt?: Date;
}

/** Who asked for an operator's action, and why (KumoMTA's admin bounce carries a reason too). */
export interface AdminRequest {
  /** The admin API client's remote address: the token names no one, so the address is what is known. */
  readonly client: string;
  /** The operator's reason, if one was given (at most 500 characters). */
  readonly reason?: string;
}

export type AdminActionKind = 'AdminHold' | 'AdminRelease' | 'AdminRemove' | 'AdminBounce';

/**
 * An operator's action on one queue entry, recorded once per entry (the action is the
 * entry's, like postsuper's). An AdminBounce is followed by one Bounce per recipient it
 * failed, as any bounce; an AdminRemove is the last word on the recipients it lists.
 */
export interface AdminAction {
  readonly kind: AdminActionKind;
  readonly entry: DispositionEntry;
  /** The recipients the action concerns: those not yet delivered or failed. */
  readonly recipients: readonly string[];
  readonly admin: AdminRequest;
  readonly at: Date;
}

const ADMIN_KINDS: ReadonlySet<string> = new Set<AdminActionKind>(['AdminHold', 'AdminRelease', 'AdminRemove', 'AdminBounce']);

export function isAdminAction(event: Disposition): event is AdminAction {
  return ADMIN_KINDS.has(event.kind);
}
