import type { Clock } from '../core/index.js';
import { rateText } from '../config/index.js';
import type { LocalPolicy, OverrideRecord, PolicyChange } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import type { Suspension } from './destinations.js';
import type { OverrideOptions, Overrides } from './overrides.js';
import type { QueueOperations, SuspendOptions } from './queue-operations.js';

/** What an operator (admin API) and automation.ini may do to a destination's policy. */
export interface PolicyOperations {
  suspend(domain: string, options?: SuspendOptions): Promise<Suspension>;
  /** Lifts a suspension (and the domain's backoff); returns how many entries became due. */
  resume(domain: string): Promise<number>;
  suspensions(): Suspension[];
  override(destination: string, options: OverrideOptions): Promise<OverrideRecord>;
  /** Lifts an override; undefined when the destination had none here. */
  clear(destination: string): Promise<OverrideRecord | undefined>;
  overrides(): OverrideRecord[];
}

type Listener = (change: PolicyChange) => void;
/** A suspension or override an automation rule set, lifted before its time; `here`: by a command on this node. */
export interface RuleLift {
  readonly rule: string;
  readonly destination: string;
  readonly here: boolean;
}
type LiftListener = (lift: RuleLift) => void;

/**
 * One node's destination policy: the scheduler's suspensions and the limit overrides. A
 * change made here (operator, automation) is told to the listeners (the cluster's policy
 * sync, which writes it to Redis); a change from elsewhere comes in through apply(), and
 * is not told again. Its clock is the cluster's (Redis's time as this node reckons it) when
 * the policy is shared: records start, end and are judged expired by it.
 */
export class DestinationPolicy implements PolicyOperations, LocalPolicy {
  private readonly listeners = new Set<Listener>();
  private readonly liftListeners = new Set<LiftListener>();

  constructor(
    private readonly queue: Pick<QueueOperations, 'suspend' | 'resume' | 'suspensions'>,
    private readonly book: Overrides,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async suspend(domain: string, options?: SuspendOptions): Promise<Suspension> {
    const s = await this.queue.suspend(domain, options && this.timed(options));
    this.tell({ kind: 'suspension', key: s.domain, record: s, at: s.since });
    return s;
  }

  /** Told when a rule's suspension or override is lifted early (automation.ini counts that rule again). */
  onRuleLift(listener: LiftListener): () => void {
    this.liftListeners.add(listener);
    return () => this.liftListeners.delete(listener);
  }

  async resume(domain: string): Promise<number> {
    const held = this.heldSuspension(domain);
    const released = await this.queue.resume(domain);
    if (held?.rule) this.tellLift({ rule: held.rule, destination: held.domain, here: true });
    // Told even when this node held no suspension: another may (`resume` on any node lifts it everywhere).
    this.tell({ kind: 'suspension', key: domain.toLowerCase(), at: this.clock.now() });
    return released;
  }

  suspensions(): Suspension[] {
    return this.queue.suspensions();
  }

  async override(destination: string, options: OverrideOptions): Promise<OverrideRecord> {
    const o = await this.book.set(destination, this.timed(options));
    this.logger.info({ event: 'override_set', destination: o.destination, max_connections: o.maxConnections ?? null, max_message_rate: o.maxMessageRate ? rateText(o.maxMessageRate) : null, until: new Date(o.until).toISOString(), reason: o.reason, ...(o.rule ? { rule: o.rule } : {}) }, 'destination limits overridden');
    this.tell({ kind: 'override', key: o.destination, record: o, at: o.since });
    return o;
  }

  async clear(destination: string): Promise<OverrideRecord | undefined> {
    const gone = await this.book.clear(destination);
    if (gone?.rule) this.tellLift({ rule: gone.rule, destination: gone.destination, here: true });
    this.tell({ kind: 'override', key: destination.toLowerCase(), at: this.clock.now() });
    return gone;
  }

  overrides(): OverrideRecord[] {
    return this.book.list();
  }

  /** A change made on another node: applied here as it was made there. */
  async apply(change: PolicyChange): Promise<void> {
    if (change.kind === 'suspension') {
      if (!change.record) {
        const held = this.heldSuspension(change.key);
        if (held) {
          // That node's resume lifted the shared backoff already: not again from here.
          await this.queue.resume(change.key, { here: true });
          if (held.rule) this.tellLift({ rule: held.rule, destination: held.domain, here: false });
        }
        return;
      }
      const { domain, reason, since, until, rule } = change.record;
      if (until !== undefined && until <= this.clock.now()) return;
      await this.queue.suspend(domain, { reason, since, ...(until !== undefined ? { until } : {}), ...(rule ? { rule } : {}) });
      return;
    }
    if (!change.record) {
      const gone = await this.book.clear(change.key);
      if (gone?.rule) this.tellLift({ rule: gone.rule, destination: gone.destination, here: false });
      return;
    }
    const o = change.record;
    if (o.until <= this.clock.now()) return;
    await this.book.set(o.destination, { ...o });
  }

  /**
   * A duration made into a start and an end by this policy's clock (Redis's time while the
   * cluster shares the policy), so that every node ends the record at the same moment
   * whatever its own clock says.
   */
  private timed<T extends { readonly durationMs?: number; readonly since?: number; readonly until?: number }>(options: T): T {
    const d = options.durationMs;
    if (d === undefined || !(Number.isFinite(d) && d > 0) || options.since !== undefined || options.until !== undefined) return options;
    const since = this.clock.now();
    return { ...options, since, until: since + d };
  }

  private heldSuspension(domain: string): Suspension | undefined {
    const name = domain.toLowerCase();
    return this.queue.suspensions().find((s) => s.domain === name);
  }

  private tellLift(lift: RuleLift): void {
    for (const listener of this.liftListeners) listener(lift);
  }

  private tell(change: PolicyChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
