import type { RedisLink } from './redis-link.js';
import { ACQUIRE_LUA, RELEASE_LUA, RENEW_LUA, leasesKey, pair } from './redis-scripts.js';

/** The pub/sub channel on which a released slot is announced to every node. */
export const FREED_CHANNEL = 'freed';
/** A destination key in a freed notice is at most this long (a domain, a site of MX names). */
const MAX_KEY = 1024;
/** Freed timers kept at most; past it, new refusals wait for a notice only. */
const MAX_TIMERS = 10_000;

export interface RedisLeasesOptions {
  readonly link: RedisLink;
  readonly ttlMs: number;
  /** A slot of `key` may be free: the shaper asks again. */
  readonly freed: (key: string) => void;
  /** A renewal found leases gone from Redis (it restarted empty): new grants wait until every node put theirs back. */
  readonly restarted?: () => void;
}

/**
 * Connection slots in Redis: per destination a sorted set of lease ids scored by their
 * expiry in Redis time (issue #17). A lease lives `lease_ttl` unless renewed: this node
 * renews all it holds every third of it, one call per destination, so a crashed node's
 * slots are free within the TTL (KumoMTA's last about 25 minutes). A refused node is told
 * when the earliest lease lapses and asks again then; a released slot is announced on a
 * channel so that the others ask at once.
 */
export class RedisLeases {
  /** Every lease this node holds, by destination: granted by Redis or, while it was down, by failure_mode. */
  private readonly held = new Map<string, Set<string>>();
  /** Acquisitions Redis did not answer and that were not granted here: they may have run, so they are removed once Redis answers. */
  private readonly doubtful = new Map<string, string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** Each destination's max_connections, as last asked for: a renewal puts back no more than that. */
  private readonly maxOf_ = new Map<string, number>();
  /** Leases Redis would not take back (the destination was full when a renewal found them gone): their sessions end. */
  private readonly revoked = new Set<string>();
  /** When a renewal of each destination last answered (ms). */
  private readonly renewedAt = new Map<string, number>();
  private renewing?: NodeJS.Timeout;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: RedisLeasesOptions) {
    const { link } = options;
    this.unsubscribe = link.subscribe(FREED_CHANNEL, (message) => {
      const nl = message.indexOf('\n');
      const key = message.slice(nl + 1);
      // Our own releases were announced here already, at once.
      if (nl <= 0 || message.slice(0, nl) === link.nodeId || key.length === 0 || key.length > MAX_KEY) return;
      options.freed(key);
    });
    this.renewing = setInterval(() => void this.renewAll(), Math.max(1000, options.ttlMs / 3));
    this.renewing.unref();
  }

  private get ttlUs(): number {
    return this.options.ttlMs * 1000;
  }

  /**
   * Redis's answer: true when granted; refused, the time (ms) the earliest lease lapses,
   * when to ask again; undefined when it did not answer (the caller's failure_mode decides).
   */
  async acquire(key: string, max: number, id: string): Promise<true | number | undefined> {
    if (this.held.get(key)?.has(id)) return true;
    const answer = pair(await this.options.link.script('acquire', ACQUIRE_LUA, [leasesKey(this.options.link, key)], [id, max, this.ttlUs]));
    if (!answer) {
      this.doubtful.set(id, key);
      return undefined;
    }
    const [granted, waitUs] = answer;
    if (granted === 1) {
      if (this.closed) {
        // The node stopped while Redis answered: nobody will use nor release this slot.
        void this.options.link.script('release', RELEASE_LUA, [leasesKey(this.options.link, key)], [id]);
        return Date.now();
      }
      this.hold(key, id, max);
      return true;
    }
    // Whoever holds the earliest lease may be gone: its lapse is when to ask again.
    const at = Date.now() + Math.ceil(waitUs / 1000) + 5;
    this.freedAt(key, at);
    return at;
  }

  /** A slot granted by failure_mode while Redis was away: registered in Redis when it is back. */
  hold(key: string, id: string, max: number): void {
    this.doubtful.delete(id);
    this.maxOf_.set(key, max);
    if (!this.held.has(key)) this.renewedAt.set(key, Date.now());
    let set = this.held.get(key);
    if (!set) this.held.set(key, (set = new Set()));
    set.add(id);
  }

  holds(key: string, id: string): boolean {
    return this.held.get(key)?.has(id) ?? false;
  }

  /** The max_connections the destination's leases were taken under. */
  maxOf(key: string): number {
    return this.maxOf_.get(key) ?? 0;
  }

  /** This lease's session ends: it serves no more messages, and is not put back in Redis. */
  revoke(id: string): void {
    this.revoked.add(id);
  }

  count(key: string): number {
    return this.held.get(key)?.size ?? 0;
  }

  isRevoked(id: string): boolean {
    return this.revoked.has(id);
  }

  /** Leases held of `key` that were not revoked. */
  live(key: string): number {
    let n = 0;
    for (const id of this.held.get(key) ?? []) if (!this.revoked.has(id)) n++;
    return n;
  }

  /** Leases held per destination (heartbeats, `tern cluster status`). */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.held].map(([key, set]) => [key, set.size]));
  }

  release(key: string, id: string): void {
    const set = this.held.get(key);
    this.revoked.delete(id);
    if (!set?.delete(id)) return;
    if (set.size === 0) {
      this.held.delete(key);
      this.maxOf_.delete(key);
      this.renewedAt.delete(key);
    }
    const { link } = this.options;
    queueMicrotask(() => this.options.freed(key));
    if (!link.up) {
      this.doubtful.set(id, key);
      return;
    }
    void link.script('release', RELEASE_LUA, [leasesKey(link, key)], [id]).then((removed) => {
      if (removed === undefined) this.doubtful.set(id, key);
      else link.publish(FREED_CHANNEL, `${link.nodeId}\n${key}`);
    });
  }

  /**
   * Renews every lease held, one call per destination, and removes the doubtful ones. After
   * Redis came back this puts back what it lost (the sessions are live) before new slots
   * are granted from it. Resolves once every call answered or gave up.
   */
  async renewAll(): Promise<void> {
    await this.releaseDoubtful();
    await this.renewHeld();
  }

  /**
   * Removes the acquisitions whose answer never came (Redis may have run them late): they
   * would take the room that the sessions really held need when the renewals put them back.
   */
  async releaseDoubtful(): Promise<void> {
    const { link } = this.options;
    if (!link.up) return;
    const gone = new Map<string, string[]>();
    for (const [id, key] of this.doubtful) gone.set(key, [...(gone.get(key) ?? []), id]);
    this.doubtful.clear();
    await Promise.all(
      [...gone].map(([key, ids]) =>
        link.script('release', RELEASE_LUA, [leasesKey(link, key)], ids).then((removed) => {
          if (removed === undefined) for (const id of ids) if (!this.held.get(key)?.has(id)) this.doubtful.set(id, key);
        }),
      ),
    );
  }

  private async renewHeld(): Promise<void> {
    const { link } = this.options;
    if (!link.up) return;
    const calls: Promise<unknown>[] = [];
    for (const [key, set] of this.held) {
      const ids = [...set].filter((id) => !this.revoked.has(id));
      if (ids.length === 0) continue;
      calls.push(
        link.script('renew', RENEW_LUA, [leasesKey(link, key)], [this.ttlUs, this.maxOf_.get(key) ?? ids.length, ...ids]).then((answer) => {
          if (!Array.isArray(answer) || !Array.isArray(answer[1])) return;
          this.renewedAt.set(key, Date.now());
          if (Number(answer[0]) > 0) this.options.restarted?.();
          // Redis restarted empty (or the TTL ran out while it was away) and others took the
          // slots first: these sessions end after their transaction, so the limit holds.
          let lost = 0;
          for (const id of (answer[1] as unknown[]).map(String)) if (set.has(id) && !this.revoked.has(id)) (this.revoked.add(id), lost++);
          // The shaper asks again: idle sessions on a revoked lease end now, not at their idle timeout.
          if (lost > 0) this.options.freed(key);
        }),
      );
    }
    await Promise.all(calls);
  }

  /**
   * Whether the session of a lease may take another message: not when Redis would not keep
   * it, nor when it has not been renewed for about a TTL (Redis may have given its slot to
   * another node since).
   */
  keeps(key: string, id: string, now = Date.now()): boolean {
    if (this.revoked.has(id) || !this.held.get(key)?.has(id)) return false;
    return now - (this.renewedAt.get(key) ?? now) < this.options.ttlMs;
  }

  /** Shutdown: every lease goes back (bounded by the link's timeout); nothing is renewed any more. */
  async close(): Promise<void> {
    clearInterval(this.renewing);
    this.closed = true;
    this.unsubscribe();
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    const { link } = this.options;
    const calls: Promise<unknown>[] = [];
    for (const [key, set] of this.held) {
      calls.push(link.script('release', RELEASE_LUA, [leasesKey(link, key)], [...set]).then(() => link.publish(FREED_CHANNEL, `${link.nodeId}\n${key}`)));
    }
    this.held.clear();
    await Promise.all(calls);
  }

  /** A local freed for `key` at `at` (the earlier of two wins). */
  freedAt(key: string, at: number): void {
    const known = this.timers.get(key);
    if (known && known.at <= at) return;
    if (known) clearTimeout(known.timer);
    else if (this.timers.size >= MAX_TIMERS) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        this.options.freed(key);
      },
      Math.max(1, at - Date.now()),
    );
    timer.unref();
    this.timers.set(key, { at, timer });
  }
}
