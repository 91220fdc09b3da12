import { fileURLToPath } from 'node:url';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { isAdminAction } from '../core/index.js';
import type { Disposition, RecipientDisposition } from '../core/index.js';
import type { EntryHead, QueueEntry } from '../spool/index.js';
import { buildInfo } from './build-info.js';
import { EventMetrics } from './event-metrics.js';
import { registerStateGauges } from './state-gauges.js';

export { entryState } from './queue-census.js';
export type { EntryState } from './metric-labels.js';

export interface QueueSource {
  /** Every entry's head: what the scheduler keeps in memory. */
  all(): IterableIterator<EntryHead>;
  isInFlight(id: string): boolean;
  /** The whole entry, read from disk when needed. */
  load(id: string): Promise<QueueEntry | undefined>;
}

/** The scheduler, as the metrics read it (read-only getters). */
export interface MetricsQueue extends QueueSource {
  readonly size: number;
  /** Suspensions in force (expired ones excluded). */
  suspensions(): readonly unknown[];
  backedOffDomains(): readonly unknown[];
  /** Entries that came due and wait, by reason (limits, suspension, backoff). */
  parkedCounts?(): Readonly<Record<string, number>>;
}

export interface MetricsOptions {
  /** The queue directory, for tern_spool_bytes. */
  readonly queueDir?: string;
  readonly now?: () => number;
}

/**
 * prom-client's default metrics that promtool rejects: gauges named like counters.
 * Their sums are `sum(nodejs_active_handles)` and so on, from the per-type gauges kept.
 */
const GAUGES_NAMED_LIKE_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Prometheus metrics on their own registry (no global state). Node's process metrics
 * keep prom-client's own names (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`,
 * …) with no prefix: they are the names the usual Node.js dashboards query, and the
 * job/instance labels already say which process they come from. Tern's own start with
 * `tern_`. Gauges of the queue are computed at scrape time with bounded work per turn of
 * the event loop (state-gauges.ts); counters are fed by events.
 */
export class TernMetrics {
  readonly registry = new Registry();
  private readonly events: EventMetrics;

  constructor(queue: MetricsQueue, openConnections: () => number, options: MetricsOptions = {}) {
    const now = options.now ?? Date.now;
    collectDefaultMetrics({ register: this.registry });
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(name);
    registerStateGauges(this.registry, {
      queue,
      suspendedDomains: () => queue.suspensions(),
      backedOffDomains: () => queue.backedOffDomains(),
      parkedCounts: () => queue.parkedCounts?.() ?? {},
      openConnections,
      queueDir: options.queueDir,
      build: buildInfo(fileURLToPath(new URL('../../../', import.meta.url))),
      now,
    });
    this.events = new EventMetrics(this.registry, now);
  }

  // The inputs: each only picks the plain values out of what it is given.

  /** Every disposition, from the disposition sink: a Reception (a report's too) is a message received. */
  onDisposition(event: Disposition): void {
    if (event.kind === 'Reception') {
      this.events.messageReceived(event.size);
      if (event.reason.kind === 'report') this.events.report(event.reason.report.kind);
      return;
    }
    // Operators' actions (Admin…) are no delivery outcome; their Bounces are counted as any.
    if (isAdminAction(event)) return;
    this.events.disposition({
      outcome: event.kind,
      domain: event.entry.domain,
      tls: event.tls,
      code: event.reply.code,
      queueSeconds: event.kind === 'Delivery' ? (event.at.getTime() - event.entry.queuedAt) / 1000 : undefined,
    });
  }

  onAttempt(entry: QueueEntry, events: readonly RecipientDisposition[], durationMs: number): void {
    this.events.attempt(durationMs / 1000, events.some((e) => e.kind === 'Delivery') ? entry.size : 0);
  }

  /** One Rejection record (reason, and the command refused: AUTH failures are counted apart too). */
  onRejection(reason: string, command = ''): void {
    this.events.rejection(reason, command);
  }

  onReload(ok: boolean): void {
    this.events.reload(ok);
  }

  /** A DNS lookup that every server failed (the resolver's onFailure). */
  onDnsFailure(type: string, reason: string): void {
    this.events.dnsFailure(type, reason);
  }
}
