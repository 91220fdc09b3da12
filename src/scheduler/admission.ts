import type PQueue from 'p-queue';
import type { Clock, SmtpReply } from '../core/index.js';
import type { OutboundConfig, Route } from '../config/index.js';
import type { DestinationHealth, LimitCoordinator } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import { DestinationGate } from './destinations.js';
import type { ParkReason } from './destinations.js';
import type { QueueItem } from './queue-index.js';
import { Shaper } from './shaper.js';
import type { ShapingTicket } from './shaper.js';
import type { DestinationResolver } from './scheduler-options.js';
import { SharedBackoffs } from './shared-backoff.js';

export interface AdmissionDeps {
  readonly clock: Clock;
  readonly limit: (domain: string) => number;
  readonly backoff: { minMs: number; maxMs: number };
  readonly item: (id: string) => QueueItem | undefined;
  readonly inFlight: (id: string) => boolean;
  readonly destinations?: DestinationResolver;
  readonly coordinator?: LimitCoordinator;
  /** Destination health shared with other nodes (redis.ini): one node probes a down destination for all. */
  readonly health?: DestinationHealth;
  readonly logger?: Logger;
  readonly idleMs: () => number;
  readonly endLease: ShaperDeps['endLease'];
  /** Starts an attempt of a shaped entry with its ticket. */
  readonly start: (item: QueueItem, ticket: ShapingTicket) => void;
  /** Queues entries again (a shaped one the gate must park; one whose destination became known). */
  readonly requeue: (ids: readonly string[]) => void;
  readonly wake: () => void;
}

/** The gate's per-domain cap (routes.ini max_connections, else outbound.ini max_domain_connections) and backoff. */
export function gateSettings(config: OutboundConfig, routes?: ReadonlyMap<string, Route>): [(domain: string) => number, { minMs: number; maxMs: number }] {
  const limit = (domain: string) => routes?.get(domain)?.max_connections ?? routes?.get('*')?.max_connections ?? config.max_domain_connections;
  return [limit, { minMs: config.destination_backoff_min * 1000, maxMs: config.destination_backoff_max * 1000 }];
}

/** Waits up to `boundMs` for the attempts in flight; past it, `abort()`s them and gives them 2 s to write what they settled. */
export async function drainWithin(work: PQueue, boundMs: number, abort: () => void): Promise<void> {
  let bound: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([work.onIdle().then(() => false), new Promise<boolean>((resolve) => (bound = setTimeout(() => resolve(true), boundMs)))]);
  clearTimeout(bound);
  if (!timedOut) return;
  abort();
  await Promise.race([work.onIdle(), new Promise((r) => setTimeout(r, 2000).unref())]);
}

type ShaperDeps = ConstructorParameters<typeof Shaper>[0];

/** What an attempt says about its destination: down (with the last reply), answered, or nothing. */
export type AttemptVerdict = { readonly down: SmtpReply } | 'answered' | 'none';

/** How an attempt used its ticket. */
export type TicketUse = 'used' | 'unused' | 'unreachable';

/**
 * Whether an entry that came due starts now. Every entry passes the DestinationGate
 * (suspension, backoff; the per-domain cap of routes.ini and outbound.ini for those
 * limits.ini leaves alone). An entry of a destination under limits.ini then waits in the
 * Shaper for a connection slot and a message token from the LimitCoordinator, which
 * starts it when both are there.
 *
 * Why the scheduler and not delivery: an entry waiting for a slot or a token must cost
 * nothing, not a spool read, a plugin hook, an attempt or a log line. Only the destination
 * key needs the MX hosts (scope=site, `[mx:]` sections); the resolver the daemon hands in
 * answers from a cache, and a first lookup queues the entry again once it is known.
 */
export class Admission {
  readonly gate: DestinationGate;
  private readonly shaper?: Shaper;
  private readonly shared?: SharedBackoffs;

  constructor(private readonly deps: AdmissionDeps) {
    const waiting = (id: string) => this.waiting(id);
    this.gate = new DestinationGate(deps.clock, deps.limit, deps.backoff, waiting);
    if (deps.health) this.shared = new SharedBackoffs({ gate: this.gate, health: deps.health, requeue: deps.requeue, logger: deps.logger });
    if (deps.coordinator && deps.destinations) {
      this.shaper = new Shaper({
        coordinator: deps.coordinator,
        clock: deps.clock,
        standing: (id) => {
          const item = deps.item(id);
          if (!item || !this.waiting(id)) return 'gone';
          return this.gate.blocks(item.domain, id) ? 'blocked' : 'go';
        },
        start: (id, ticket) => {
          const item = deps.item(id)!;
          this.gate.started(item.domain, id);
          deps.start(item, ticket);
        },
        requeue: deps.requeue,
        endLease: deps.endLease,
        idleMs: deps.idleMs,
        wake: deps.wake,
      });
    }
  }

  /** True: the entry starts now without a ticket. False: it is parked, waits in the Shaper, or waits for its destination to be known. */
  admit(item: QueueItem): boolean {
    const found = this.shaper ? this.deps.destinations!.resolve(item.domain) : undefined;
    if (found instanceof Promise) {
      // The MX hosts are being looked up: the entry is queued again once they are known (then from the cache).
      void found.catch(() => undefined).then(() => this.deps.requeue([item.id]));
      return false;
    }
    if (!this.gate.admit(item.domain, item.id, found !== undefined).go) return false;
    if (!found) return true;
    this.shaper!.enter(item.id, found);
    return false;
  }

  /**
   * An attempt ended: `down` (every host refused a session, with the last reply), `answered`
   * (a remote server took part in a session), or neither (no verdict on the destination).
   * Returns the parked entries that may be tried again now.
   */
  finished(item: QueueItem, verdict: AttemptVerdict, ticket?: ShapingTicket, use: TicketUse = 'used'): string[] {
    if (ticket) this.shaper?.finished(ticket, use);
    if (verdict === 'answered') return this.gate.finished(item.domain, false);
    if (verdict !== 'none') return this.gate.finished(item.domain, true, verdict.down);
    return this.gate.unsettled(item.domain, item.id);
  }

  /**
   * The operator lifts the backoff of one domain, or of all (flush, resume, SIGHUP): here
   * and, with shared health, on every node (SharedBackoffs.lift). `here`: on this node only
   * (a resume made on another node and heard through the policy sync: that node lifted
   * the shared backoff itself). Returns the entries that waited for it.
   */
  liftBackoff(domain?: string, here = false): string[] {
    return this.shared && !here ? this.shared.lift(domain) : this.gate.resetBackoff(domain);
  }

  reasonOf(id: string): ParkReason | undefined {
    return this.shaper?.reasonOf(id) ?? this.gate.reasonOf(id);
  }

  /** Still queued, not held, not being attempted: a parked entry that may take a freed slot. */
  private waiting(id: string): boolean {
    const item = this.deps.item(id);
    return item !== undefined && !item.held && !this.deps.inFlight(id);
  }

  parkedCounts(): Record<ParkReason, number> {
    const waiting = (id: string) => this.waiting(id);
    const gate = this.gate.parkedCounts();
    const shaped = this.shaper?.parked(waiting) ?? { rate_limited: 0, connection_limit: 0 };
    return { ...gate, rate_limited: shaped.rate_limited, connection_limit: gate.connection_limit + shaped.connection_limit };
  }

  lapse(): void {
    this.shaper?.lapse();
  }

  wakeAt(): number | undefined {
    const times = [this.gate.wakeAt(), this.shaper?.wakeAt()].filter((t): t is number => t !== undefined);
    return times.length ? Math.min(...times) : undefined;
  }

  /** limits.ini changed: the entries waiting for a slot or a token, to be queued again. */
  reshape(): string[] {
    return this.shaper?.handBack() ?? [];
  }

  stop(): void {
    this.shaper?.stop();
    this.shared?.stop();
  }
}

