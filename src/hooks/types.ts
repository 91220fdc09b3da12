import type { Envelope, SmtpReply } from '../core/index.js';
import type { DispositionRecord } from '../log/index.js';
import type { QueueEntry } from '../spool/index.js';

/** What a plugin sees of a queue entry: a copy, so that a plugin cannot corrupt the queue. */
export type EntryView = Readonly<Omit<QueueEntry, 'recipients'>> & { readonly recipients: readonly Readonly<QueueEntry['recipients'][number]>[] };

/** A next hop from get_mx, Haraka's HarakaMx as plain data. */
export interface NextHop {
  /** Host name or IP address. */
  readonly host: string;
  readonly port?: number;
  /** Source address to bind to (Haraka's mx.bind). */
  readonly bind?: string;
  /** EHLO name to use (Haraka's mx.bind_helo). */
  readonly bind_helo?: string;
  /** AUTH PLAIN/LOGIN credentials, sent only over TLS. */
  readonly auth_user?: string;
  readonly auth_pass?: string;
}

export type QueueOutboundResult = void | undefined | { readonly action: 'deny'; readonly reply: SmtpReply };
export type SendEmailResult = void | undefined | { readonly action: 'delay'; readonly seconds: number };
export type DeferredResult = void | undefined | { readonly action: 'drop' } | { readonly action: 'delay'; readonly seconds: number };
export type BounceResult = void | undefined | { readonly action: 'suppress' };

/**
 * Haraka's outbound hook points, plus KumoMTA's log_disposition, as async functions with
 * typed arguments. Every hook is optional; the first plugin (in config/plugins order)
 * that returns a result decides; a plugin that throws is logged and skipped.
 */
export interface TernPlugin {
  readonly name?: string;
  /** Called once when the plugin is loaded, with where Tern's config lives. */
  init?(context: { readonly configDir: string }): Promise<void> | void;
  /** Before a message is queued: may refuse it (the client gets the reply at end of DATA). */
  queue_outbound?(message: { readonly envelope: Envelope; readonly headers: string }): Promise<QueueOutboundResult> | QueueOutboundResult;
  /** Just before a delivery attempt: may postpone it. */
  send_email?(entry: EntryView): Promise<SendEmailResult> | SendEmailResult;
  /** Replaces the MX lookup for a domain with the given next hops. */
  get_mx?(entry: EntryView, domain: string): Promise<NextHop[] | void | undefined> | NextHop[] | void | undefined;
  /** After a temporary failure: may change the delay or drop the entry. */
  deferred?(entry: EntryView, info: { readonly delay: number; readonly reply: SmtpReply }): Promise<DeferredResult> | DeferredResult;
  /** After a permanent failure: may suppress the report to the sender. */
  bounce?(entry: EntryView, info: { readonly recipients: readonly string[]; readonly reply: SmtpReply }): Promise<BounceResult> | BounceResult;
  /** After a delivery; the result is ignored (accounting, logging). */
  delivered?(entry: EntryView, info: { readonly recipients: readonly string[]; readonly reply: SmtpReply; readonly peer?: { name: string; address: string; port: number } | null; readonly tls: boolean }): Promise<void> | void;
  /** Every disposition record, as logged. */
  log_disposition?(record: DispositionRecord): Promise<void> | void;
}

export interface LoadedPlugin {
  readonly name: string;
  readonly plugin: TernPlugin;
}
