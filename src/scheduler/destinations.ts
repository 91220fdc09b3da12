import type { Clock, SmtpReply } from '../core/index.js';

/**
 * Why an entry that came due waits instead of being attempted. Every wait of this kind is
 * one concept, a parked entry with its reason. The gate parks for the first three; entries
 * under limits.ini wait in the Shaper (shaper.ts) for a slot or a token (`rate_limited`).
 */
export type ParkReason = 'suspended' | 'backoff' | 'connection_limit' | 'rate_limited';
type GateReason = Exclude<ParkReason, 'rate_limited'>;

/** The operator stopped delivery to a domain, for a while (`until`) or until resumed. */
export interface Suspension {
  readonly domain: string;
  readonly reason: string;
  /** Epoch ms. */
  readonly since: number;
  /** Epoch ms when it lifts by itself; absent: until resumed. */
  readonly until?: number;
  /** The automation.ini rule that set it; absent: an operator did. */
  readonly rule?: string;
}

export type Admission = { readonly go: true } | { readonly go: false; readonly reason: ParkReason };

interface Destination {
  inFlight: number;
  /** Entries that came due and wait, by reason, each list in the order they came. */
  parked: Record<GateReason, string[]>;
  /** Set while the destination is unreachable: no attempt before this. */
  downUntil?: number;
  backoffMs: number;
  /** One attempt is finding out whether a backed-off destination answers again. */
  probing: boolean;
  /** The entry that is the probe (a shaped one may wait for its slot before it goes). */
  probe?: string;
  suspension?: Suspension;
  /** The backoff is another node's (adopt()), not learnt by an attempt here: forgotten when it ends with nothing of it here. */
  adopted?: boolean;
}

/**
 * Who hears of a destination's backoff besides the gate (the cluster's shared health,
 * shared-backoff.ts), and may hold its probe back while another node probes. Called only
 * on transitions: a healthy destination costs nothing.
 */
export interface BackoffWatcher {
  /** Every host refused a session: backed off for `backoffMs` from now. */
  wentDown(domain: string, backoffMs: number, reply?: SmtpReply): void;
  /** An attempt got a session to a destination that was backed off. */
  cameUp(domain: string): void;
  /** The operator lifted the backoff here (flush, resume). */
  cleared(domain: string): void;
  /** An adopted backoff ended with no entry of the destination here: the gate forgot it. */
  forgotten(domain: string): void;
  /**
   * This node's probe ended without a verdict (no session was tried: its DNS lookup failed,
   * a hook delayed it, it expired, a local fault, shutdown cut it short): the destination
   * is neither up nor down, and another entry or node may probe.
   */
  probeEnded(domain: string): void;
  /** The backoff ended here: may this node's next entry probe? false: its entries stay parked until probeTurn(), adopt() or a lift. */
  mayProbe(domain: string): boolean;
}

/** What lifted by itself when its time came. */
export interface Lapse {
  /** Entries that may be tried again now. */
  readonly released: string[];
  readonly expired: Suspension[];
}

/**
 * Where entries of a destination domain park when they may not start, and the rules that
 * park them: an operator's suspension; a dead destination's backoff (every host refused
 * a session: nothing is attempted for a while, doubling from `minMs` to `maxMs`, then one
 * probe goes and the rest wait for its verdict, so a dead host never meets a stampede);
 * and at most `limit(domain)` attempts in flight. Nothing parked is lost or reordered: each
 * rule hands its entries back when it lifts, and the scheduler queues them again.
 */
export class DestinationGate {
  private readonly states = new Map<string, Destination>();
  /** Why each parked entry waits (the queue view). */
  private readonly reasons = new Map<string, GateReason>();
  /** The earliest time something lifts by itself (a backoff or a suspension ends). */
  private earliest = Infinity;
  private watcher?: BackoffWatcher;

  constructor(
    private readonly clock: Clock,
    private limit: (domain: string) => number,
    private backoff: { minMs: number; maxMs: number },
    /**
     * Whether a parked entry still waits to be attempted: one held, removed or bounced
     * meanwhile must not take a freed slot, or the entries behind it wait with nothing in
     * flight to free the next one.
     */
    private readonly waiting: (id: string) => boolean = () => true,
  ) {}

  configure(limit: (domain: string) => number, backoff: { minMs: number; maxMs: number }): void {
    this.limit = limit;
    this.backoff = backoff;
  }

  watch(watcher: BackoffWatcher): void {
    this.watcher = watcher;
  }

  private state(domain: string): Destination {
    let s = this.states.get(domain);
    if (!s) {
      s = { inFlight: 0, parked: { suspended: [], backoff: [], connection_limit: [] }, backoffMs: 0, probing: false };
      this.states.set(domain, s);
    }
    return s;
  }

  /**
   * May an entry for this domain start now? If not, it is parked with the reason. A shaped
   * entry (limits.ini) is checked for suspension and backoff only: its sessions are counted
   * by the coordinator, and it is counted here when it starts (started()).
   */
  admit(domain: string, id: string, shaped = false): Admission {
    const s = this.state(domain);
    let reason = this.closedTo(domain, s, id);
    if (!reason && !shaped && s.inFlight >= this.limit(domain)) reason = 'connection_limit';
    if (reason) {
      s.parked[reason].push(id);
      this.reasons.set(id, reason);
      return { go: false, reason };
    }
    if (!shaped) s.inFlight++;
    return { go: true };
  }

  /** Would a shaped entry that got its slot and token be parked now (suspended or backed off meanwhile)? */
  blocks(domain: string, id: string): boolean {
    const s = this.states.get(domain);
    if (!s) return false;
    const now = this.clock.now();
    if (s.suspension && !(s.suspension.until !== undefined && s.suspension.until <= now)) return true;
    if (s.downUntil === undefined) return false;
    if (s.probing) return s.probe !== id;
    return now < s.downUntil || (this.watcher !== undefined && !this.watcher.mayProbe(domain));
  }

  /** A shaped entry starts (blocks() said no just now): counted in flight, and the probe of a backed-off destination. */
  started(domain: string, id: string): void {
    const s = this.state(domain);
    this.closedTo(domain, s, id);
    s.inFlight++;
  }

  /** Why an entry parked here waits. */
  reasonOf(id: string): ParkReason | undefined {
    return this.reasons.get(id);
  }

  /** Parked entries by reason (metrics); those no longer waiting are not counted. */
  parkedCounts(): Record<GateReason, number> {
    const out: Record<GateReason, number> = { suspended: 0, backoff: 0, connection_limit: 0 };
    for (const [id, reason] of this.reasons) if (this.waiting(id)) out[reason]++;
    return out;
  }

  private closedTo(domain: string, s: Destination, id: string): GateReason | undefined {
    const now = this.clock.now();
    if (s.suspension && !(s.suspension.until !== undefined && s.suspension.until <= now)) return 'suspended';
    if (s.downUntil === undefined) return undefined;
    if (s.probing) return s.probe === id ? undefined : 'backoff';
    if (now < s.downUntil) return 'backoff';
    // Another node of the cluster may be probing for everyone: wait for its verdict.
    if (this.watcher && !this.watcher.mayProbe(domain)) return 'backoff';
    s.probing = true;
    s.probe = id;
    return undefined;
  }

  /** An attempt ended; returns the parked entries that may be tried again now. */
  finished(domain: string, unreachable: boolean, reply?: SmtpReply): string[] {
    const s = this.state(domain);
    s.adopted = false;
    s.inFlight = Math.max(0, s.inFlight - 1);
    if (unreachable) {
      s.backoffMs = Math.min(Math.max(s.backoffMs * 2, this.backoff.minMs), this.backoff.maxMs);
      s.downUntil = this.clock.now() + s.backoffMs;
      s.probing = false;
      s.probe = undefined;
      this.earliest = Math.min(this.earliest, s.downUntil);
      // Whatever waited for a slot now waits for the destination to come back.
      for (const id of s.parked.connection_limit) this.reasons.set(id, 'backoff');
      s.parked.backoff = s.parked.backoff.concat(s.parked.connection_limit);
      s.parked.connection_limit = [];
      this.watcher?.wentDown(domain, s.backoffMs, reply);
      return [];
    }
    if (s.downUntil !== undefined) {
      // An attempt got a session: the destination is back, and everyone waiting may go.
      this.clearBackoff(s);
      this.watcher?.cameUp(domain);
      return this.release(domain, s, 'backoff').concat(this.release(domain, s, 'connection_limit'));
    }
    return this.release(domain, s, 'connection_limit', Math.max(0, this.limit(domain) - s.inFlight));
  }

  /**
   * An attempt ended without a verdict on the destination (nothing reached a remote
   * server, see BackoffWatcher.probeEnded): a backoff stays, and if this entry was the
   * probe, the next lapse() picks another (or asks the watcher again). Returns the parked
   * entries that may be tried again now.
   */
  unsettled(domain: string, id: string): string[] {
    const s = this.state(domain);
    s.inFlight = Math.max(0, s.inFlight - 1);
    if (s.downUntil === undefined) return this.release(domain, s, 'connection_limit', Math.max(0, this.limit(domain) - s.inFlight));
    if (s.probing && s.probe === id) {
      s.probing = false;
      s.probe = undefined;
      this.earliest = Math.min(this.earliest, s.downUntil);
      this.watcher?.probeEnded(domain);
    }
    return [];
  }

  /** Stops delivery to a domain (replacing an earlier suspension of it). */
  suspend(suspension: Suspension): void {
    this.state(suspension.domain).suspension = suspension;
    if (suspension.until !== undefined) this.earliest = Math.min(this.earliest, suspension.until);
  }

  /** Lifts a suspension; returns the entries it held, or undefined when the domain was not suspended. */
  resume(domain: string): string[] | undefined {
    const s = this.states.get(domain);
    if (!s?.suspension) return undefined;
    s.suspension = undefined;
    return this.release(domain, s, 'suspended');
  }

  /**
   * Forgets what the gate learnt about dead destinations (one, or all): the operator says
   * it is fixed, so the next attempt goes at once (as Postfix's `postqueue -f` does).
   * Returns the entries that waited for the backoff.
   */
  resetBackoff(domain?: string): string[] {
    const released: string[] = [];
    for (const [name, s] of domain === undefined ? this.states : this.pick(domain)) {
      if (s.downUntil === undefined) continue;
      this.clearBackoff(s);
      this.watcher?.cleared(name);
      for (const id of this.release(name, s, 'backoff')) released.push(id);
    }
    return released;
  }

  /** Lifts the backoffs and suspensions whose time has come (cheap until then). */
  lapse(): Lapse {
    const now = this.clock.now();
    const released: string[] = [];
    const expired: Suspension[] = [];
    if (now < this.earliest) return { released, expired };
    this.earliest = Infinity;
    for (const [domain, s] of [...this.states]) {
      if (s.suspension?.until !== undefined && s.suspension.until <= now) {
        expired.push(s.suspension);
        s.suspension = undefined;
        for (const id of this.release(domain, s, 'suspended')) released.push(id);
      }
      if (s.downUntil !== undefined && s.downUntil <= now && !s.probing && s.parked.backoff.length > 0 && (!this.watcher || this.watcher.mayProbe(domain))) {
        // The backoff is over: the first of these becomes the probe, the rest park again.
        for (const id of this.release(domain, s, 'backoff')) released.push(id);
      }
      if (s.adopted && s.downUntil !== undefined && s.downUntil <= now && !s.probing && s.inFlight === 0 && !s.suspension && s.parked.backoff.length + s.parked.connection_limit.length + s.parked.suspended.length === 0) {
        // Another node's backoff, over, with nothing of it here: keeping it would grow the
        // map by every destination any node of the cluster ever backed off.
        this.states.delete(domain);
        this.watcher?.forgotten(domain);
        continue;
      }
      this.earliest = Math.min(this.earliest, ...this.lifts(s, now));
    }
    return { released, expired };
  }

  /**
   * Another node backed the destination off (shared health): the same backoff applies
   * here from now, entries coming due park without an attempt. A longer one of ours stays.
   */
  adopt(domain: string, remainingMs: number, backoffMs: number): void {
    const known = this.states.get(domain);
    const s = this.state(domain);
    if (!known || (known.downUntil === undefined && known.backoffMs === 0)) s.adopted = true;
    const until = this.clock.now() + remainingMs;
    s.backoffMs = Math.max(Math.min(backoffMs, this.backoff.maxMs), s.backoffMs);
    if (s.downUntil !== undefined && s.downUntil >= until && !s.probing) return;
    s.downUntil = until;
    s.probing = false;
    s.probe = undefined;
    this.earliest = Math.min(this.earliest, until);
    for (const id of s.parked.connection_limit) this.reasons.set(id, 'backoff');
    s.parked.backoff = s.parked.backoff.concat(s.parked.connection_limit);
    s.parked.connection_limit = [];
  }

  /** The watcher says this node may probe now (its backoff is over): the entries waiting go again, the first as the probe. */
  probeTurn(domain: string): string[] {
    const s = this.states.get(domain);
    if (!s || s.downUntil === undefined || s.probing || s.downUntil > this.clock.now()) return [];
    return this.release(domain, s, 'backoff');
  }

  /** How long this node's backoff of the destination still runs (ms), if it runs. */
  backoffRemaining(domain: string): number | undefined {
    const until = this.states.get(domain)?.downUntil;
    if (until === undefined) return undefined;
    const left = until - this.clock.now();
    return left > 0 ? left : undefined;
  }

  /** How many entries of this node wait for the destination's backoff. */
  parkedForBackoff(domain: string): number {
    return this.states.get(domain)?.parked.backoff.length ?? 0;
  }

  /** Whether an entry of this node is out probing the backed-off destination now. */
  probing(domain: string): boolean {
    return this.states.get(domain)?.probing === true;
  }

  /** When lapse() next has something to do, if ever. */
  wakeAt(): number | undefined {
    return this.earliest === Infinity ? undefined : this.earliest;
  }

  suspensions(): Suspension[] {
    const now = this.clock.now();
    return [...this.states.values()]
      .map((s) => s.suspension)
      .filter((s): s is Suspension => s !== undefined && !(s.until !== undefined && s.until <= now))
      .sort((a, b) => a.domain.localeCompare(b.domain));
  }

  /** Destinations backed off after every host refused a session, and until when (metrics). */
  backedOff(): { domain: string; until: number }[] {
    const now = this.clock.now();
    const out: { domain: string; until: number }[] = [];
    for (const [domain, s] of this.states) if (s.downUntil !== undefined && s.downUntil > now) out.push({ domain, until: s.downUntil });
    return out;
  }

  /** The earliest an entry of this domain may start, when the gate holds it back for a known time. */
  closedUntil(domain: string): number | undefined {
    const s = this.states.get(domain);
    if (!s) return undefined;
    if (s.suspension) return s.suspension.until;
    return s.downUntil;
  }

  private lifts(s: Destination, now: number): number[] {
    const times: number[] = [];
    if (s.suspension?.until !== undefined) times.push(s.suspension.until);
    if (s.downUntil !== undefined && s.downUntil > now) times.push(s.downUntil);
    return times;
  }

  private pick(domain: string): [string, Destination][] {
    const s = this.states.get(domain);
    return s ? [[domain, s]] : [];
  }

  private clearBackoff(s: Destination): void {
    s.downUntil = undefined;
    s.backoffMs = 0;
    s.probing = false;
    s.probe = undefined;
  }

  /** Hands back (up to `count` of) the entries parked for `reason`, in order, and forgets an idle destination. */
  private release(domain: string, s: Destination, reason: GateReason, count = Infinity): string[] {
    const parked = s.parked[reason];
    const released: string[] = [];
    let taken = 0;
    while (taken < parked.length && released.length < count) {
      const id = parked[taken++];
      if (this.reasons.get(id) === reason) this.reasons.delete(id);
      if (this.waiting(id) && !released.includes(id)) released.push(id);
    }
    parked.splice(0, taken);
    const idle = s.parked.suspended.length + s.parked.backoff.length + s.parked.connection_limit.length === 0;
    if (idle && s.inFlight === 0 && s.downUntil === undefined && !s.suspension) this.states.delete(domain);
    return released;
  }
}
