import type { SmtpReply } from '../core/index.js';
import type { DestinationHealth, HealthNews } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import type { BackoffWatcher, DestinationGate } from './destinations.js';
import { liftShared, logLift } from './shared-lift.js';

/**
 * Whose turn it is to probe a destination the cluster backed off: `ask` (the backoff ends,
 * nobody asked yet), `asking` (the probe lock is being claimed), `mine` (this node holds
 * it), `theirs` (another node does: wait for its verdict or for the lock to lapse).
 */
type Turn = 'ask' | 'asking' | 'mine' | 'theirs';

interface Shared {
  turn: Turn;
  timer?: NodeJS.Timeout;
  /** While the backoff runs here with entries parked: is the cluster's record still there? */
  watch?: NodeJS.Timeout;
}

export interface SharedBackoffDeps {
  readonly gate: DestinationGate;
  readonly health: DestinationHealth;
  /** Queues entries the gate handed back, and pumps. */
  readonly requeue: (ids: readonly string[]) => void;
  readonly logger?: Logger;
}

/** A lock's remaining time is Redis's; a little more here, so that the next claim finds it gone. */
const LAPSE_SLACK_MS = 50;
/**
 * While another node probes, this one asks again this often: a paused or partitioned
 * Redis then shows within a second (and the call's timeout), not when the lock would lapse.
 */
const RECHECK_MS = 1000;
/**
 * While this node's probe runs, its lock is renewed this often: a probe may try every MX
 * address at connect_timeout each, plus greeting and EHLO, longer than the lock holds, and
 * the waiting nodes (asking every second) would probe too once it lapsed.
 */
const RENEW_MS = 1000;
/**
 * While a backoff runs here and entries wait for it, the cluster's record is looked at this
 * often (one PTTL): an "up" whose message was lost then releases them within this, not when
 * the backoff (up to destination_backoff_max) would end.
 */
const WATCH_MS = 3000;
/** Destinations followed at most (each a few hundred bytes); past it, another node's news of a new one is ignored here. */
const MAX_SHARED = 10_000;
/** A name the shared state can carry (the health channel refuses longer ones). */
const MAX_DOMAIN = 255;

/** A down() call in flight; `void` once the destination was lifted or came up meanwhile, so that its answer parks nothing. */
interface DownCall {
  void: boolean;
}

/**
 * The DestinationGate's backoff, shared by the nodes of a cluster (issue #17): a node that
 * backs a destination off tells the others, which park their entries for it at once
 * without an attempt; when the backoff ends exactly one node probes (the one that takes
 * the probe lock) and the others wait for its verdict: up releases every node's entries,
 * down backs the destination off again everywhere. A destination this node knows of only
 * by itself, and every destination while the shared state does not answer, follows the
 * gate's own rules (its backoff, its probe): a Redis fault never holds mail longer.
 */
export class SharedBackoffs implements BackoffWatcher {
  private readonly shared = new Map<string, Shared>();
  /** down() calls in flight, by destination (a few at most: one per attempt that just failed). */
  private readonly downs = new Map<string, Set<DownCall>>();
  /** While lift() runs the gate's reset: the destinations it clears. */
  private lifting?: Set<string>;
  private readonly unsubscribe: () => void;
  private stopped = false;

  constructor(private readonly deps: SharedBackoffDeps) {
    deps.gate.watch(this);
    this.unsubscribe = deps.health.subscribe((news) => this.hear(news));
  }

  wentDown(domain: string, backoffMs: number, reply?: SmtpReply): void {
    const call: DownCall = { void: false };
    const calls = this.downs.get(domain) ?? new Set<DownCall>();
    this.downs.set(domain, calls.add(call));
    void this.deps.health.down(domain, backoffMs, reply).then((answer) => {
      calls.delete(call);
      if (calls.size === 0 && this.downs.get(domain) === calls) this.downs.delete(domain);
      // Lifted (or up) while Redis recorded it: that lift's "up" went after this down and
      // deleted its record; the answer must not park this node's entries again.
      if (this.stopped || call.void) return;
      if (!answer) {
        // No answer: this node's own backoff and probe, as a single node's.
        this.forget(domain);
        return;
      }
      this.turn(domain, 'ask');
      this.watch(domain);
      if (answer.remainingMs <= backoffMs) return;
      this.deps.gate.adopt(domain, answer.remainingMs, answer.backoffMs);
      // The scheduler's timer follows the gate's next lapse: arm it for the longer backoff.
      this.deps.requeue([]);
    });
  }

  cameUp(domain: string): void {
    const known = this.shared.has(domain);
    this.voidDowns(domain);
    this.forget(domain);
    // Other nodes may have heard of the backoff although this one claimed nothing: say it is over.
    void this.deps.health.up(domain);
    if (known) this.deps.logger?.info({ event: 'destination_up_shared', domain }, 'destination answers again: every node releases its entries');
  }

  cleared(domain: string): void {
    this.lifting?.add(domain);
    this.forget(domain);
  }

  /**
   * The operator lifts the backoff here (`tern queue flush`, `tern domain resume`, SIGHUP):
   * of `domain`, or of every destination this node backed off or followed. The lift is the
   * cluster's: each one's shared record goes and every node hears "up" (liftShared). A
   * named domain is cleared in Redis even when this node knew nothing of it (another may).
   * Returns the entries that waited here for the backoff.
   */
  lift(domain?: string): string[] {
    const lifted = new Set<string>(domain === undefined ? this.shared.keys() : domain.length > 0 && domain.length <= MAX_DOMAIN ? [domain] : []);
    this.lifting = lifted;
    let released: string[];
    try {
      released = this.deps.gate.resetBackoff(domain);
    } finally {
      this.lifting = undefined;
    }
    for (const name of lifted) this.voidDowns(name);
    if (lifted.size > 0) void liftShared(this.deps.health, [...lifted]).then((result) => logLift(this.deps.logger, domain, result));
    return released;
  }

  forgotten(domain: string): void {
    this.forget(domain);
  }

  probeEnded(domain: string): void {
    const s = this.shared.get(domain);
    if (s?.turn !== 'mine') return;
    // Neither up nor down: the cluster's record stays; the lock goes so that another node
    // (or this one's next entry) may probe. No "up": that would release every node's mail.
    // Nobody asks before the release is done (a claim run first would renew the lock the
    // release then deletes); then the entries parked here, if any, ask again.
    clearInterval(s.timer);
    s.timer = undefined;
    s.turn = 'asking';
    void this.deps.health.releaseProbe(domain).then(() => {
      if (this.stopped || this.shared.get(domain) !== s || s.turn !== 'asking') return;
      s.turn = 'ask';
      this.deps.requeue(this.deps.gate.probeTurn(domain));
    });
  }

  mayProbe(domain: string): boolean {
    const s = this.shared.get(domain);
    if (!s || s.turn === 'mine') return true;
    if (s.turn === 'ask') {
      s.turn = 'asking';
      void this.claim(domain);
    }
    return false;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    for (const s of this.shared.values()) {
      clearTimeout(s.timer);
      clearInterval(s.watch);
    }
    this.shared.clear();
    this.downs.clear();
  }

  private async claim(domain: string): Promise<void> {
    const answer = await this.deps.health.claimProbe(domain);
    const s = this.shared.get(domain);
    // News came meanwhile (up, or a new backoff) and decided for us.
    if (this.stopped || s?.turn !== 'asking') return;
    if (answer !== undefined && answer !== true) {
      s.turn = 'theirs';
      s.timer = setTimeout(() => {
        s.timer = undefined;
        if (this.shared.get(domain) !== s || s.turn !== 'theirs') return;
        // No verdict yet: ask again (the lock may have lapsed: its node died, or its probe is still at it).
        s.turn = 'asking';
        void this.claim(domain);
      }, Math.min(answer.ms + LAPSE_SLACK_MS, answer.why === 'probing' ? RECHECK_MS : WATCH_MS));
      s.timer.unref();
      return;
    }
    if (answer === true) {
      s.turn = 'mine';
      this.renew(domain, s);
      this.deps.logger?.info({ event: 'destination_probe', domain }, 'this node probes the backed-off destination for the cluster');
    } else this.forget(domain);
    this.deps.requeue(this.deps.gate.probeTurn(domain));
  }

  /**
   * Keeps this node's probe lock while its probe runs; before the probe starts (and after
   * it, until the verdict clears the lock) the lock's own time covers it. Ends with the
   * turn (turn() and forget() clear the timer).
   */
  private renew(domain: string, s: Shared): void {
    s.timer = setInterval(() => {
      if (this.stopped || this.shared.get(domain) !== s || s.turn !== 'mine') return;
      if (this.deps.gate.probing(domain)) void this.deps.health.claimProbe(domain);
    }, RENEW_MS);
    s.timer.unref();
  }

  /**
   * Until the backoff here ends: every WATCH_MS, if entries wait for it, asks whether the
   * cluster's record still exists. Gone well before our end means an "up" this node did
   * not hear: its entries go.
   */
  private watch(domain: string): void {
    const s = this.shared.get(domain);
    if (!s || s.watch) return;
    s.watch = setInterval(() => {
      const left = this.deps.gate.backoffRemaining(domain);
      if (this.stopped || this.shared.get(domain) !== s || left === undefined) {
        clearInterval(s.watch);
        s.watch = undefined;
        return;
      }
      if (left <= WATCH_MS || this.deps.gate.parkedForBackoff(domain) === 0) return;
      void this.deps.health.backoffLeft(domain).then((left) => {
        if (left !== 0 || this.stopped || this.shared.get(domain) !== s) return;
        this.deps.logger?.info({ event: 'destination_up_missed', domain }, 'the cluster no longer backs this destination off (a missed "up"): its entries here go');
        this.forget(domain);
        this.deps.requeue(this.deps.gate.resetBackoff(domain));
      });
    }, WATCH_MS);
    s.watch.unref();
  }

  private hear(news: HealthNews): void {
    if (this.stopped) return;
    if (news.kind === 'lost') {
      // Redis does not answer: nobody's verdict is coming, each node probes for itself.
      const waiting = [...this.shared.keys()];
      for (const domain of waiting) this.forget(domain);
      this.deps.requeue(waiting.flatMap((domain) => this.deps.gate.probeTurn(domain)));
      return;
    }
    const { destination: domain } = news;
    if (news.kind === 'up') {
      const known = this.shared.has(domain);
      this.forget(domain);
      const released = this.deps.gate.resetBackoff(domain);
      this.deps.requeue(released);
      if (news.lifted && (known || released.length > 0)) this.deps.logger?.info({ event: 'destination_lift_shared', domain, node: news.node, released: released.length }, "another node's operator lifted the backoff: the entries here go");
      return;
    }
    // Bounded: an entry of an unfollowed destination finds out by its own attempt, as a single node's would.
    if (!this.shared.has(domain) && this.shared.size >= MAX_SHARED) return;
    this.turn(domain, 'ask');
    this.watch(domain);
    this.deps.gate.adopt(domain, news.remainingMs, news.backoffMs);
    this.deps.requeue([]);
    this.deps.logger?.info({ event: 'destination_backoff_shared', domain, node: news.node, remaining_ms: news.remainingMs }, 'another node backed this destination off: its entries here wait too');
  }

  private turn(domain: string, turn: Turn): void {
    const s = this.shared.get(domain);
    if (s) {
      clearTimeout(s.timer);
      s.timer = undefined;
      s.turn = turn;
    } else this.shared.set(domain, { turn });
  }

  private voidDowns(domain: string): void {
    for (const call of this.downs.get(domain) ?? []) call.void = true;
    this.downs.delete(domain);
  }

  private forget(domain: string): void {
    const s = this.shared.get(domain);
    if (!s) return;
    clearTimeout(s.timer);
    clearInterval(s.watch);
    this.shared.delete(domain);
  }
}
