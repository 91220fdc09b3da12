import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { PARK_REASONS, QUEUE_STATES } from './metric-labels.js';
import { CENSUS_DEFAULTS, QueueCensus } from './queue-census.js';
import type { CensusSource } from './queue-census.js';
import { SPOOL_USAGE_DEFAULTS, SpoolUsage } from './spool-usage.js';
import type { BuildInfo } from './build-info.js';

/** What the gauges read, all of it read-only: the scheduler, the delivery agent, the queue directory. */
export interface StateSources {
  /** The scheduler's entry heads (all(), isInFlight(), size). */
  readonly queue: CensusSource;
  /** Scheduler: destinations suspended by the operator. */
  suspendedDomains(): readonly unknown[];
  /** Scheduler: destinations backed off because every host refused a session. */
  backedOffDomains(): readonly unknown[];
  /** Scheduler: entries that came due and wait, by reason. */
  parkedCounts(): Readonly<Record<string, number>>;
  /** Delivery agent: SMTP sessions open. */
  openConnections(): number;
  /** The queue directory, for its size on disk; no spool gauges without it. */
  readonly queueDir?: string;
  readonly build: BuildInfo;
  readonly now: () => number;
}

/**
 * Gauges computed when /metrics is scraped. None of them walks the queue on the event
 * loop in one go: the queue's are counted in slices (queue-census.ts), the spool's
 * size by an asynchronous walk at most every so often (spool-usage.ts), and the rest
 * are O(1) or O(destinations in backoff or suspended).
 */
export function registerStateGauges(registry: Registry, sources: StateSources): void {
  const registers = [registry];
  const census = new QueueCensus(sources.queue, { ...CENSUS_DEFAULTS, now: sources.now });
  new Gauge({
    name: 'tern_queue_entries',
    help: 'Queue entries by state',
    labelNames: ['state'],
    registers,
    async collect() {
      const c = await census.current();
      for (const state of QUEUE_STATES) this.set({ state }, c.entries[state]);
    },
  });
  new Gauge({
    name: 'tern_queue_oldest_entry_age_seconds',
    help: 'Age (since acceptance) of the oldest queue entry in each state; 0 when there is none',
    labelNames: ['state'],
    registers,
    async collect() {
      const c = await census.current();
      const now = sources.now();
      for (const state of QUEUE_STATES) {
        const queuedAt = c.oldestQueuedAt[state];
        this.set({ state }, queuedAt === undefined ? 0 : Math.max(0, (now - queuedAt) / 1000));
      }
    },
  });
  new Gauge({
    name: 'tern_queue_destination_entries',
    help: `Queue entries of the ${CENSUS_DEFAULTS.topDomains} destination domains with the most`,
    labelNames: ['domain'],
    registers,
    async collect() {
      const c = await census.current();
      this.reset();
      for (const [domain, n] of c.topDomains) this.set({ domain }, n);
    },
  });
  new Gauge({
    name: 'tern_destinations_backoff',
    help: 'Destination domains backed off because every host refused a session (no attempt until the backoff ends, then one probe)',
    registers,
    collect() {
      this.set(sources.backedOffDomains().length);
    },
  });
  new Gauge({
    name: 'tern_destinations_suspended',
    help: 'Destination domains suspended by the operator',
    registers,
    collect() {
      this.set(sources.suspendedDomains().length);
    },
  });
  new Gauge({
    name: 'tern_queue_parked_entries',
    help: 'Entries that came due but wait, not attempted, by reason: suspended, backoff, connection_limit, rate_limited (limits.ini)',
    labelNames: ['reason'],
    registers,
    collect() {
      const counts = sources.parkedCounts();
      for (const reason of PARK_REASONS) this.set({ reason }, counts[reason] ?? 0);
    },
  });
  new Gauge({
    name: 'tern_outbound_connections_open',
    help: 'SMTP client sessions open to remote mail exchangers',
    registers,
    collect() {
      this.set(sources.openConnections());
    },
  });
  if (sources.queueDir !== undefined) {
    const usage = new SpoolUsage(sources.queueDir, { ...SPOOL_USAGE_DEFAULTS, now: sources.now });
    new Gauge({
      name: 'tern_spool_bytes',
      help: 'Bytes the queue directory takes on disk (allocated blocks, as du counts them), measured at most every 30 s',
      registers,
      async collect() {
        const sample = await usage.sample();
        if (sample) this.set(sample.bytes);
      },
    });
    new Gauge({
      name: 'tern_spool_files',
      help: 'Files and directories under the queue directory, from the same walk as tern_spool_bytes',
      registers,
      async collect() {
        const sample = await usage.sample();
        if (sample) this.set(sample.files);
      },
    });
  }
  const info = new Gauge({
    name: 'tern_build_info',
    help: 'Always 1: the labels say which Tern runs (version, Node.js version, git commit or "unknown")',
    labelNames: ['version', 'node_version', 'commit'],
    registers,
  });
  info.set({ version: sources.build.version, node_version: sources.build.nodeVersion, commit: sources.build.commit }, 1);
}
