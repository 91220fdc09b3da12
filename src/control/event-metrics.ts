import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import {
  AUTH_FAILURE_REASONS,
  BYTE_DIRECTIONS,
  DNS_FAILURE_REASONS,
  DNS_RECORD_TYPES,
  DSN_KINDS,
  OTHER_DESTINATIONS,
  OUTCOMES,
  REJECTION_REASON_LABELS,
  RELOAD_RESULTS,
  TRANSPORTS,
  zeroSeries,
} from './metric-labels.js';
import { TOP_DESTINATION_DEFAULTS, TopDestinations } from './top-destinations.js';

/** One recipient's disposition, as plain values: what the counters need of it. */
export interface DispositionFacts {
  /** Delivery, TransientFailure, Bounce or Expiration. */
  readonly outcome: string;
  /** The destination domain of the entry. */
  readonly domain: string;
  /** Whether the session that decided it was encrypted. */
  readonly tls: boolean;
  /** The reply code that decided it. */
  readonly code: number;
  /** For a Delivery: seconds from acceptance to delivery. */
  readonly queueSeconds?: number;
}

/**
 * The counters and histograms that events feed. Every method takes plain values, so
 * that whoever produces the events only has to say which values they carry.
 */
export class EventMetrics {
  private readonly dispositions: Counter<'outcome'>;
  private readonly replies: Counter<'code'>;
  private readonly deliveries: Counter<'transport'>;
  private readonly deferrals: Counter<'domain'>;
  private readonly bounces: Counter<'domain'>;
  private readonly attemptSeconds: Histogram;
  private readonly queueSeconds: Histogram;
  private readonly bytes: Counter<'direction'>;
  private readonly received: Counter;
  private readonly dsn: Counter<'kind'>;
  private readonly reloads: Counter<'result'>;
  private readonly rejections: Counter<'reason'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly dnsFailures: Counter<'type' | 'reason'>;
  private readonly top: TopDestinations;

  constructor(registry: Registry, now: () => number) {
    const registers = [registry];
    this.dispositions = new Counter({ name: 'tern_dispositions_total', help: 'Recipient dispositions by outcome', labelNames: ['outcome'], registers });
    this.replies = new Counter({ name: 'tern_replies_total', help: 'Replies that decided a recipient outcome, by code', labelNames: ['code'], registers });
    this.deliveries = new Counter({ name: 'tern_deliveries_total', help: 'Recipients delivered, by whether the session was encrypted (tls) or not (plaintext)', labelNames: ['transport'], registers });
    this.deferrals = new Counter({ name: 'tern_destination_deferrals_total', help: `Temporary failures (TransientFailure records) by destination domain: the ${TOP_DESTINATION_DEFAULTS.slots} busiest lately, the rest as "${OTHER_DESTINATIONS}"`, labelNames: ['domain'], registers });
    this.bounces = new Counter({ name: 'tern_destination_bounces_total', help: `Permanent failures (Bounce and Expiration records) by destination domain: the ${TOP_DESTINATION_DEFAULTS.slots} busiest lately, the rest as "${OTHER_DESTINATIONS}"`, labelNames: ['domain'], registers });
    this.attemptSeconds = new Histogram({ name: 'tern_delivery_attempt_seconds', help: 'Duration of delivery attempts', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers });
    this.queueSeconds = new Histogram({
      name: 'tern_queue_time_seconds',
      help: 'Time from acceptance to delivery',
      buckets: [0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400, 432000],
      registers,
    });
    this.bytes = new Counter({ name: 'tern_bytes_total', help: 'Message bytes received and delivered', labelNames: ['direction'], registers });
    this.received = new Counter({ name: 'tern_messages_received_total', help: 'Messages accepted into the queue', registers });
    this.dsn = new Counter({ name: 'tern_dsn_generated_total', help: 'Delivery status notifications queued, by kind', labelNames: ['kind'], registers });
    this.reloads = new Counter({ name: 'tern_config_reloads_total', help: 'Config reloads by result', labelNames: ['result'], registers });
    this.rejections = new Counter({ name: 'tern_rejections_total', help: 'Commands and messages the listener refused, by reason', labelNames: ['reason'], registers });
    this.authFailures = new Counter({ name: 'tern_auth_failures_total', help: 'AUTH refused: wrong credentials (auth_failed), address locked out (auth_locked), connection closed after too many (auth_limit)', labelNames: ['reason'], registers });
    this.dnsFailures = new Counter({ name: 'tern_dns_failures_total', help: 'DNS lookups that every configured server failed, by record type and the last failure', labelNames: ['type', 'reason'], registers });

    zeroSeries(this.dispositions, { outcome: OUTCOMES });
    zeroSeries(this.deliveries, { transport: TRANSPORTS });
    zeroSeries(this.deferrals, { domain: [OTHER_DESTINATIONS] });
    zeroSeries(this.bounces, { domain: [OTHER_DESTINATIONS] });
    zeroSeries(this.bytes, { direction: BYTE_DIRECTIONS });
    zeroSeries(this.dsn, { kind: DSN_KINDS });
    zeroSeries(this.reloads, { result: RELOAD_RESULTS });
    zeroSeries(this.rejections, { reason: REJECTION_REASON_LABELS });
    zeroSeries(this.authFailures, { reason: AUTH_FAILURE_REASONS });
    zeroSeries(this.dnsFailures, { type: DNS_RECORD_TYPES, reason: DNS_FAILURE_REASONS });

    this.top = new TopDestinations({
      ...TOP_DESTINATION_DEFAULTS,
      now,
      onEvict: (domain) => {
        this.deferrals.remove({ domain });
        this.bounces.remove({ domain });
      },
    });
  }

  messageReceived(bytes: number): void {
    this.received.inc();
    this.bytes.inc({ direction: 'in' }, bytes);
  }

  disposition(facts: DispositionFacts): void {
    this.dispositions.inc({ outcome: facts.outcome });
    this.replies.inc({ code: String(facts.code) });
    switch (facts.outcome) {
      case 'Delivery':
        this.deliveries.inc({ transport: facts.tls ? 'tls' : 'plaintext' });
        if (facts.queueSeconds !== undefined && Number.isFinite(facts.queueSeconds)) this.queueSeconds.observe(Math.max(0, facts.queueSeconds));
        break;
      case 'TransientFailure':
        this.deferrals.inc({ domain: this.top.label(facts.domain) });
        break;
      case 'Bounce':
      case 'Expiration':
        this.bounces.inc({ domain: this.top.label(facts.domain) });
        break;
    }
  }

  /** One delivery attempt ended; `deliveredBytes` is the message size when any recipient took it. */
  attempt(seconds: number, deliveredBytes: number): void {
    this.attemptSeconds.observe(seconds);
    if (deliveredBytes > 0) this.bytes.inc({ direction: 'out' }, deliveredBytes);
  }

  report(kind: string): void {
    this.dsn.inc({ kind });
  }

  /** One Rejection record: reasons come from a fixed list, so the label stays small. */
  rejection(reason: string, command: string): void {
    this.rejections.inc({ reason });
    if (command === 'AUTH' && (AUTH_FAILURE_REASONS as readonly string[]).includes(reason)) this.authFailures.inc({ reason });
  }

  reload(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'failed' });
  }

  dnsFailure(type: string, reason: string): void {
    this.dnsFailures.inc({ type, reason });
  }
}
