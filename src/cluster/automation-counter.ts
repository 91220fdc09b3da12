import type { Clock } from '../core/index.js';
import { slotScope, type RedisLink } from './redis-link.js';

/** What a match of a rule counted: the matches now in its window, and whether this one made the rule fire. */
export interface Count {
  readonly matches: number;
  readonly fired: boolean;
  /** Counted on this node alone (no Redis, or Redis away). */
  readonly local: boolean;
  /**
   * The Redis call was sent and not answered (a timeout, Redis gone mid-call): the script may
   * still run there, and may fire the rule for this member. The caller keeps the member and
   * asks again (ask()) once Redis answers; meanwhile the match was counted here.
   */
  readonly unheard?: boolean;
}

export interface CountedRule {
  readonly name: string;
  readonly threshold: number;
  readonly windowMs: number;
  readonly durationMs: number;
}

/**
 * One match counted cluster-wide: a sorted set per rule and destination, scored by Redis's
 * clock (not the node's), one member per match; trimmed to the window, counted; at the
 * threshold a fired-marker (SET NX PX, for the action's duration) lets one node, once,
 * fire the rule. While the marker lives the rule does not count (its action is in force).
 * Safe twice: the member is added once (ZADD NX), and a run that finds its own member as
 * the marker answers "fired" again. The marker names the member that fired: a node whose
 * call went unanswered keeps that member and asks again with it (Automation), so a firing
 * whose reply was lost to a timeout is heard late rather than lost, and by that node alone.
 */
const HIT = `
local fired = redis.call('GET', KEYS[2])
if fired then
  if fired == ARGV[1] then return {tonumber(ARGV[3]), 1} end
  return {0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return {n, 1}
end
return {n, 0}
`;

/** Local counts are kept for at most this many rule × destination pairs (the oldest go first). */
const MAX_LOCAL_KEYS = 10_000;

/**
 * Counts the matches of automation rules: in Redis when there is a link and it is up, so
 * that N matches anywhere in the cluster make the rule fire once; otherwise on this node
 * alone (the rule still works on one node, and while Redis is away).
 */
export class AutomationCounter {
  private readonly local = new Map<string, { hits: number[]; firedUntil: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly link?: RedisLink,
  ) {}

  async hit(rule: CountedRule, destination: string, member: string): Promise<Count> {
    if (this.link?.up) {
      const counted = await this.ask(rule, destination, member);
      if (counted) return counted;
      return { ...this.hitLocally(rule, destination), unheard: true };
    }
    return this.hitLocally(rule, destination);
  }

  /**
   * The counting call in Redis alone, with this member (again, for a call that went
   * unanswered: the same arguments, so the script counts it at most once and answers
   * "fired" if this member fired the rule); undefined when Redis does not answer.
   */
  async ask(rule: CountedRule, destination: string, member: string): Promise<Count | undefined> {
    if (!this.link?.up) return undefined;
    const keys = [this.link.destinationKey(destination, `auto:${rule.name}:hits`), this.link.destinationKey(destination, `auto:${rule.name}:fired`)];
    const answer = await this.link.script('automation_hit', HIT, keys, [member, rule.windowMs, rule.threshold, rule.durationMs]);
    return Array.isArray(answer) ? { matches: Number(answer[0]), fired: answer[1] === 1, local: false } : undefined;
  }

  /** Whether this node's own count fired the rule for the destination and its action still runs (an outage's firing). */
  firedHere(rule: string, destination: string): boolean {
    return (this.local.get(`${rule}|${destination}`)?.firedUntil ?? 0) > this.clock.now();
  }

  /** Called on every `up` of the link (Redis answers again); the returned function stops it. */
  onUp(listener: () => void): () => void {
    const link = this.link;
    if (!link) return () => undefined;
    link.on('up', listener);
    return () => void link.off('up', listener);
  }

  /**
   * A rule's action lifted early (an operator's `resume` or `clear`): the rule counts again at
   * once instead of staying muted for the rest of its duration. `shared`: the lift was made on
   * this node, so the cluster's marker goes too (a lift heard from another node clears only
   * this node's own count, so that a late message cannot unmute a rule that fired again).
   */
  async forget(rule: string, destination: string, shared: boolean): Promise<void> {
    this.local.delete(`${rule}|${destination}`);
    if (!shared || !this.link?.up) return;
    const fired = this.link.destinationKey(destination, `auto:${rule}:fired`);
    await this.link.call('automation_forget', (c) => c.del(fired), slotScope(fired));
  }

  private hitLocally(rule: CountedRule, destination: string): Count {
    const now = this.clock.now();
    const key = `${rule.name}|${destination}`;
    let s = this.local.get(key);
    if (!s) {
      s = { hits: [], firedUntil: 0 };
      this.local.set(key, s);
      if (this.local.size > MAX_LOCAL_KEYS) this.local.delete(this.local.keys().next().value!);
    }
    if (s.firedUntil > now) return { matches: 0, fired: false, local: true };
    s.hits = s.hits.filter((t) => t > now - rule.windowMs);
    s.hits.push(now);
    const matches = s.hits.length;
    if (matches < rule.threshold) return { matches, fired: false, local: true };
    s.hits = [];
    s.firedUntil = now + rule.durationMs;
    return { matches, fired: true, local: true };
  }
}
