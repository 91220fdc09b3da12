import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isAdminAction } from '../core/index.js';
import type { Disposition, RecipientDisposition } from '../core/index.js';
import type { EntryHead, QueueEntry } from '../spool/index.js';

export interface QueueSource {
  /** Every entry's head: what the scheduler keeps in memory. */
  all(): IterableIterator<EntryHead>;
  isInFlight(id: string): boolean;
  /** The whole entry, read from disk when needed. */
  load(id: string): Promise<QueueEntry | undefined>;
}

export type EntryState = 'held' | 'in-flight' | 'deferred' | 'scheduled';

export function entryState(entry: Pick<EntryHead, 'held' | 'tempFailures'>, inFlight: boolean): EntryState {
  if (entry.held) return 'held';
  if (inFlight) return 'in-flight';
  return entry.tempFailures > 0 ? 'deferred' : 'scheduled';
}

const TOP_DESTINATIONS = 10;

/**
 * Prometheus metrics on their own registry (no global state). Queue gauges are computed
 * at scrape time from the scheduler's entries, so they cost nothing between scrapes.
 */
export class TernMetrics {
  readonly registry = new Registry();
  private readonly deliveries: Counter<'outcome'>;
  private readonly replies: Counter<'code'>;
  private readonly attemptSeconds: Histogram;
  private readonly queueSeconds: Histogram;
  private readonly bytes: Counter<'direction'>;
  private readonly received: Counter;
  private readonly dsn: Counter<'kind'>;
  private readonly reloads: Counter<'result'>;
  private readonly rejections: Counter<'reason'>;

  constructor(queue: QueueSource, openConnections: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'tern_process_' });
    new Gauge({
      name: 'tern_queue_entries',
      help: 'Queue entries by state',
      labelNames: ['state'],
      registers,
      collect() {
        const counts: Record<EntryState, number> = { held: 0, 'in-flight': 0, deferred: 0, scheduled: 0 };
        for (const e of queue.all()) counts[entryState(e, queue.isInFlight(e.id))]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'tern_queue_destination_entries',
      help: `Queue entries of the ${TOP_DESTINATIONS} destination domains with the most`,
      labelNames: ['domain'],
      registers,
      collect() {
        const byDomain = new Map<string, number>();
        for (const e of queue.all()) byDomain.set(e.domain, (byDomain.get(e.domain) ?? 0) + 1);
        this.reset();
        for (const [domain, n] of [...byDomain].sort((a, b) => b[1] - a[1]).slice(0, TOP_DESTINATIONS)) this.set({ domain }, n);
      },
    });
    new Gauge({
      name: 'tern_outbound_connections_open',
      help: 'SMTP client sessions open to remote mail exchangers',
      registers,
      collect() {
        this.set(openConnections());
      },
    });
    this.deliveries = new Counter({ name: 'tern_dispositions_total', help: 'Recipient dispositions by outcome', labelNames: ['outcome'], registers });
    this.replies = new Counter({ name: 'tern_replies_total', help: 'Replies that decided a recipient outcome, by code', labelNames: ['code'], registers });
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
  }

  /** Every disposition, from the disposition sink: a Reception (a report's too) is a message received. */
  onDisposition(event: Disposition): void {
    if (event.kind === 'Reception') {
      this.received.inc();
      this.bytes.inc({ direction: 'in' }, event.size);
      if (event.reason.kind === 'report') this.dsn.inc({ kind: event.reason.report.kind });
      return;
    }
    // Operators' actions (Admin…) are no delivery outcome; their Bounces are counted as any.
    if (isAdminAction(event)) return;
    this.deliveries.inc({ outcome: event.kind });
    this.replies.inc({ code: String(event.reply.code) });
    if (event.kind === 'Delivery') this.queueSeconds.observe((event.at.getTime() - event.entry.queuedAt) / 1000);
  }

  onAttempt(entry: QueueEntry, events: readonly RecipientDisposition[], durationMs: number): void {
    this.attemptSeconds.observe(durationMs / 1000);
    if (events.some((e) => e.kind === 'Delivery')) this.bytes.inc({ direction: 'out' }, entry.size);
  }

  /** One Rejection record: reasons come from a fixed list, so the label stays small. */
  onRejection(reason: string): void {
    this.rejections.inc({ reason });
  }

  onReload(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'failed' });
  }
}
