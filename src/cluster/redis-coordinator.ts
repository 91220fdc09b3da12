import type { Clock } from '../core/index.js';
import type { RedisSettings } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { ConnectionLease, DestinationLimits, LimitCoordinator, SlotAnswer, TokenAnswer } from './coordinator.js';
import { LocalCoordinator } from './local-coordinator.js';
import { LocalBucket, rateShare, slotShare } from './local-share.js';
import { NodeRegistry } from './node-registry.js';
import type { NodeCounts, NodeView } from './node-registry.js';
import { RedisLeases } from './redis-leases.js';
import { PROBE_EVERY_MS } from './redis-link.js';
import type { RedisLink } from './redis-link.js';
import { RejoinFence } from './rejoin-fence.js';
import { HOLD_MS, TokenChunks } from './redis-tokens.js';

export interface RedisCoordinatorOptions {
  readonly link: RedisLink;
  readonly settings: Pick<RedisSettings, 'failure_mode' | 'lease_ttl' | 'heartbeat_interval' | 'url' | 'cluster' | 'sentinels'> & Partial<Pick<RedisSettings, 'connect_timeout'>>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This node's queue counts, for its heartbeat. */
  readonly counts: () => NodeCounts;
  readonly version: string;
  /** The nodes counted alive before Redis first answers (under nodes=N this machine's workers): failure_mode=share splits among them. */
  readonly peers?: readonly string[];
}

/** What `GET /cluster` answers: the nodes, and this node's view of Redis. */
export interface ClusterStatus {
  readonly enabled: true;
  readonly node: string;
  readonly redis: { readonly up: boolean; readonly kind: 'standalone' | 'cluster' | 'sentinel'; readonly failure_mode: string };
  readonly nodes: readonly NodeView[];
}

/**
 * Redis lost the leases (restarted empty, or an outage long enough for them to lapse): no
 * new slot for this long (rejoin-fence.ts), while every node puts back those its live
 * sessions hold. The nodes see Redis again a reconnection apart (ioredis retries within
 * two probes, plus a connect timeout when SYNs are dropped); each puts back a probe and a
 * command later; the hold covers that with a probe and two timed-out commands to spare.
 */
const rejoinHoldMs = (commandTimeoutMs: number, connectTimeoutMs: number) => 3 * PROBE_EVERY_MS + connectTimeoutMs + putBackAfterMs(commandTimeoutMs) + 2 * commandTimeoutMs;
/**
 * Back from an outage, a node puts its leases back this long after it released its late
 * acquisitions: by then the other nodes (a probe apart) released theirs, which would
 * otherwise take the room of live sessions. Twice this is shorter than the fence.
 */
const putBackAfterMs = (commandTimeoutMs: number) => PROBE_EVERY_MS + commandTimeoutMs;
/** Redis away: how often what failure_mode allows is asked again. */
const OUTAGE_RECHECK_MS = 1000;
/** closed: a refused token is asked for again after this long. */
const CLOSED_RETRY_MS = 1000;
/** Local buckets (failure_mode=share) and refused keys kept at most. */
const MAX_KEYS = 10_000;

/**
 * The LimitCoordinator of several machines (issue #17): message rates by GCRA on Redis's
 * clock, taken in chunks (redis-tokens.ts); connection slots as leases with a short TTL
 * (redis-leases.ts); the nodes alive by heartbeats (node-registry.ts).
 *
 * Redis down, slow or partitioned (the link answers undefined within its timeout; nothing
 * here rejects): redis.ini `failure_mode` answers instead. `share` gives this node its share
 * of each limit among the nodes last seen alive (rendezvous hashing for slots, so 2 stays
 * 2), `closed` starts no session to a limited destination, `open` applies the whole limit
 * here. Either way the shaper parks what it cannot start, so no attempt is charged and
 * intake never waits. When Redis answers again, the leases held (also those granted by
 * failure_mode) are put back in it before it grants new ones.
 */
export class RedisCoordinator implements LimitCoordinator {
  private readonly tokens: TokenChunks;
  private readonly leases: RedisLeases;
  private readonly registry: NodeRegistry;
  private readonly listeners = new Set<(key: string) => void>();
  private readonly buckets = new Map<string, LocalBucket>();
  private open: LocalCoordinator;
  /** Slots of destinations whose only connection limit is this node's own cap (no max_connections in limits.ini): never in Redis. */
  private readonly own: LocalCoordinator;
  /**
   * Keys refused a slot: told to ask again when the way slots are granted changes (Redis up
   * or down). A key Redis refused is answered here, without Redis, until a slot of it is
   * freed (a notice from another node, a local release) or its earliest lease lapses
   * (`until`, ms) or its limit changes: the shaper asks again as entries arrive, and a
   * refused lease script costs Redis six commands.
   */
  private readonly refused = new Map<string, { until: number; max: number }>();
  /** Since when (ms) Redis has not answered for each destination asked while it did not (failure_mode=share waits a TTL before new slots). */
  private readonly unansweredSince = new Map<string, { since: number; last: number }>();
  /** When Redis last stopped answering (ms): an outage longer than a lease can outlive raises the rejoin fence. */
  private downAt?: number;
  /** Counts the resyncs begun: a chain that a newer one overtook (Redis flapped) stops. */
  private resyncs = 0;
  private resync?: Promise<void>;
  /** New slots from Redis only after this (ms): see REJOIN_HOLD_MS. */
  private rejoinUntil = 0;
  private rejoinTimer?: NodeJS.Timeout;
  private outageTimer?: NodeJS.Timeout;
  private readonly fence: RejoinFence;
  private readonly sweeper: NodeJS.Timeout;
  private closing?: Promise<void>;
  private readonly onUp = () => this.redisUp();
  private readonly onDown = () => this.redisDown();

  constructor(private readonly options: RedisCoordinatorOptions) {
    const { link, settings, clock } = options;
    this.tokens = new TokenChunks(link, () => clock.now());
    this.fence = new RejoinFence(link, rejoinHoldMs(link.timeoutMs, settings.connect_timeout ?? 2000));
    this.leases = new RedisLeases({ link, ttlMs: settings.lease_ttl * 1000, freed: (key) => this.emitFreed(key), restarted: () => this.leasesLost() });
    this.registry = new NodeRegistry({ link, intervalMs: settings.heartbeat_interval * 1000, counts: options.counts, leases: () => this.leases.counts(), version: options.version, peers: options.peers });
    this.open = new LocalCoordinator(clock);
    this.own = new LocalCoordinator(clock);
    this.own.onFreed((key) => this.emitFreed(key));
    link.on('up', this.onUp);
    link.on('down', this.onDown);
    // Redis answered before this coordinator listened: learn the epoch now (a later loss is told by it).
    if (link.up) void this.fence.check();
    this.registry.start();
    this.sweeper = setInterval(() => void this.tokens.sweep(), HOLD_MS / 2);
    this.sweeper.unref();
  }

  private get mode() {
    return this.options.settings.failure_mode;
  }

  async acquireSlot(key: string, limits: DestinationLimits, leaseId: string): Promise<SlotAnswer> {
    if (this.closing) return { granted: false, reason: 'connection_limit' };
    if (limits.nodeOnly) return this.own.acquireSlot(key, limits, leaseId);
    const max = limits.maxConnections;
    if (this.options.link.up && this.rejoinUntil > Date.now()) return this.refuse(key);
    // Back from an outage: the slots held are Redis's again before it grants more.
    if (this.resync) await this.resync;
    if (this.options.link.up) {
      if (this.rejoinUntil > Date.now()) return this.refuse(key);
      const known = this.refused.get(key);
      if (known && known.until > Date.now() && known.max === max) return { granted: false, reason: 'connection_limit' };
      const granted = await this.leases.acquire(key, max, leaseId);
      if (granted !== undefined) this.unansweredSince.delete(key);
      if (granted === true) return { granted: true, lease: { key, id: leaseId } };
      if (granted !== undefined) return this.refuse(key, granted, max);
    }
    if (this.leases.count(key) >= this.newSlotLimit(key, max)) {
      // Past the TTL, what the share allows changes with the others' heartbeats' age: ask again in a second.
      this.leases.freedAt(key, Date.now() + OUTAGE_RECHECK_MS);
      return this.refuse(key);
    }
    this.leases.hold(key, leaseId, max);
    return { granted: true, lease: { key, id: leaseId } };
  }

  /**
   * Whether a held slot may serve another message. While Redis answers for the key (its
   * last renewal younger than the TTL), yes unless a renewal found the destination full
   * without it (Redis restarted empty and others put theirs back first). While it does not
   * (down, its Cluster master away, or this node partitioned: Redis may have let the lease
   * lapse and granted the slot to another node), only as many as failure_mode allows this
   * node now: the session over the limit finishes its transaction and closes.
   */
  keepSlot(lease: ConnectionLease): boolean {
    const { key, id } = lease;
    if (this.own.keepSlot(lease)) return true;
    if (!this.leases.holds(key, id) || this.leases.isRevoked(id)) return false;
    if (this.leases.keeps(key, id)) return true;
    if (this.mode === 'open') return true;
    const max = this.leases.maxOf(key);
    // Those already revoked are on their way out: they do not count against the others.
    if (this.leases.live(key) <= this.outageLimit(key, max)) return true;
    // One over: this one goes (its release lowers the count for the next asked).
    this.leases.revoke(id);
    return false;
  }

  /**
   * Slots of a destination this node may hold while Redis does not answer for it. closed:
   * none (no message goes to a limited destination either: its open sessions close); share: its share by
   * rendezvous hashing, and no more than the limit minus what the other nodes held at
   * their last heartbeats (until that is older than the lease TTL, when Redis would have
   * let their leases lapse too); open: the whole limit.
   */
  /**
   * New slots of a destination this node may hold while Redis does not answer for it.
   * share: none for a lease TTL (the leases Redis granted may all be live: the nodes that
   * hold them keep their sessions that long, and a heartbeat does not tell what they took
   * since), then its share, less what the others held at their last heartbeats until those
   * are two TTLs old (their sessions over their own share end after a TTL, and their
   * transaction); closed and open: as outageLimit.
   */
  private newSlotLimit(key: string, max: number): number {
    if (this.mode !== 'share') return this.outageLimit(key, max);
    const ttl = this.options.settings.lease_ttl * 1000;
    const now = Date.now();
    const known = this.unansweredSince.get(key);
    // An earlier outage that Redis answered after (for this key or all) does not count: this one starts now.
    const fresh = !known || now - known.last > PROBE_EVERY_MS + this.options.link.timeoutMs;
    const since = fresh ? Math.min(now, this.options.link.downSinceMs ?? now) : known.since;
    if (this.unansweredSince.size < MAX_KEYS || known) this.unansweredSince.set(key, { since, last: now });
    if (now - since < ttl) {
      // Nothing else may tell this key to ask again (a Redis Cluster master away keeps the link up).
      this.leases.freedAt(key, since + ttl + 5);
      return 0;
    }
    const others = this.registry.othersHeld(key, 2 * ttl);
    return Math.max(0, Math.min(this.slotsOfMine(key, max), max - others));
  }

  private outageLimit(key: string, max: number): number {
    if (this.mode === 'open') return max;
    if (this.mode === 'closed') return 0;
    const others = this.registry.othersHeld(key, this.options.settings.lease_ttl * 1000);
    return Math.max(0, Math.min(this.slotsOfMine(key, max), max - others));
  }

  releaseSlot(lease: ConnectionLease): void {
    this.own.releaseSlot(lease);
    this.leases.release(lease.key, lease.id);
  }

  async takeTokens(key: string, limits: DestinationLimits, wanted: number): Promise<TokenAnswer> {
    const rate = limits.rate;
    if (!rate) return { granted: wanted };
    if (this.options.link.up && !this.closing) {
      // The wire pacer's line takes no slot (max_connections 0): its turns are the last gate.
      const answer = await this.tokens.take(key, rate, wanted, limits.maxConnections === 0 ? 'wire' : 'admission');
      if (answer) return answer;
    }
    const now = this.options.clock.now();
    // A pacing line (no slot is ever taken on it) serves messages already admitted: under
    // closed they still go at this node's share, rather than stall in open sessions.
    if (this.mode === 'closed' && limits.maxConnections > 0) return { granted: 0, retryAt: now + CLOSED_RETRY_MS };
    if (this.mode === 'open') return this.open.takeTokens(key, limits, wanted);
    const { nodes, index } = this.registry.share();
    const share = rateShare(key, rate, nodes, index);
    let bucket = this.buckets.get(key);
    if (bucket) bucket.update(share);
    else {
      if (this.buckets.size >= MAX_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
      this.buckets.set(key, (bucket = new LocalBucket(share, now)));
    }
    return bucket.take(wanted, now);
  }

  returnTokens(key: string, limits: DestinationLimits, count: number): void {
    if (!limits.rate || count <= 0) return;
    if (this.options.link.up) this.tokens.putBack(key, count);
    else if (this.mode === 'open') this.open.returnTokens(key, limits, count);
  }

  onFreed(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** The nodes last seen alive (this node among them): failure_mode=share splits each limit among them. */
  get nodesAlive(): readonly string[] {
    return this.registry.alive;
  }

  /** The cluster as Redis sees it now (`tern cluster status`). */
  async status(): Promise<ClusterStatus> {
    const { link, settings } = this.options;
    const nodes = (await this.registry.status()) ?? this.registry.alive.map((id) => ({ id, alive: true, heartbeat_age_ms: -1 }));
    const kind = settings.cluster ? 'cluster' : settings.sentinels ? 'sentinel' : 'standalone';
    return { enabled: true, node: link.nodeId, redis: { up: link.up, kind, failure_mode: settings.failure_mode }, nodes };
  }

  /**
   * Unused tokens go back, leases are released and the node leaves the registry, each
   * bounded by the link's timeout; then nothing more is sent (start.ts closes the link next).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.sweeper);
      clearTimeout(this.rejoinTimer);
      clearInterval(this.outageTimer);
      const { link } = this.options;
      link.off('up', this.onUp);
      link.off('down', this.onDown);
      await Promise.all([this.tokens.sweep(true), this.leases.close(), this.registry.close()]);
      this.listeners.clear();
      await this.open.close();
      await this.own.close();
    })();
    return this.closing;
  }

  private slotsOfMine(key: string, max: number): number {
    const { nodes, index } = this.registry.share();
    return slotShare(key, max, nodes, index);
  }

  /** A refusal; `until` (ms): Redis refused, and further asks are answered here until then (or a freed notice). */
  private refuse(key: string, until = 0, max = 0): SlotAnswer {
    if (this.refused.size < MAX_KEYS || this.refused.has(key)) this.refused.set(key, { until, max });
    return { granted: false, reason: 'connection_limit' };
  }

  /**
   * Redis answers again. This node's late acquisitions go first (they would take room the
   * nodes' live sessions need), then, once the others released theirs too, its held leases
   * go back: if Redis lost them (restarted empty), the fence it raises holds every node's
   * new slots meanwhile. New slots here wait for that, and until the fence answered as if
   * it stood.
   */
  private redisUp(): void {
    clearInterval(this.outageTimer);
    this.unansweredSince.clear();
    this.tokens.forget();
    this.buckets.clear();
    this.open = new LocalCoordinator(this.options.clock);
    this.holdUntil(Date.now() + this.fence.holdMs);
    // Away long enough that a lease renewed just before may have lapsed: Redis kept its data
    // but not every node's slots, as if it had lost them.
    const downMs = this.downAt === undefined ? 0 : Date.now() - this.downAt;
    const lapsed = downMs >= (this.options.settings.lease_ttl * 1000) / 2;
    const chain = ++this.resyncs;
    const current = () => chain === this.resyncs && !this.closing;
    const resync: Promise<void> = this.leases
      .releaseDoubtful()
      .then(() => (current() ? this.fence.check(lapsed) : undefined))
      .then((standsMs) => {
        if (!current()) return;
        this.holdUntil(Date.now() + (standsMs ?? this.fence.holdMs));
        return new Promise((resolve) => setTimeout(resolve, putBackAfterMs(this.options.link.timeoutMs)).unref());
      })
      .then(() => (current() ? Promise.all([this.leases.renewAll(), this.registry.beat()]) : undefined))
      .then(() => {
        if (this.resync !== resync) return;
        this.resync = undefined;
        if (!this.closing) this.freeRefused();
      });
    this.resync = resync;
  }

  /** A renewal found this node's leases gone from Redis without an outage seen here (it restarted between two calls). */
  private leasesLost(): void {
    this.holdUntil(Date.now() + this.fence.holdMs);
    void this.fence.check(true).then((standsMs) => {
      if (standsMs !== undefined) this.holdUntil(Date.now() + standsMs);
    });
  }

  /** New slots wait until `until` (ms), then whoever was refused meanwhile asks again. */
  private holdUntil(until: number): void {
    if (this.closing) return;
    this.rejoinUntil = until;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = setTimeout(() => this.freeRefused(), Math.max(0, until - Date.now()) + 5);
    this.rejoinTimer.unref();
  }

  private redisDown(): void {
    this.downAt = Date.now();
    // Tokens held are not given back (Redis does not answer); what waited on Redis asks failure_mode now.
    this.tokens.forget();
    this.outageRecheck();
    // What failure_mode allows changes as Redis would let leases lapse (the others' after a
    // TTL from their last heartbeat, ours after a TTL from their last renewal): asked again
    // every second, idle sessions over this node's share end, parked entries within it go.
    clearInterval(this.outageTimer);
    this.outageTimer = setInterval(() => this.outageRecheck(), OUTAGE_RECHECK_MS);
    this.outageTimer.unref();
  }

  private outageRecheck(): void {
    if (this.options.link.up || this.closing) {
      clearInterval(this.outageTimer);
      return;
    }
    const held = Object.keys(this.leases.counts());
    this.freeRefused();
    for (const key of held) this.emitFreed(key);
  }

  private freeRefused(): void {
    const keys = [...this.refused.keys()];
    this.refused.clear();
    for (const key of keys) this.emitFreed(key);
  }

  private emitFreed(key: string): void {
    this.refused.delete(key);
    for (const listener of this.listeners) listener(key);
  }
}
