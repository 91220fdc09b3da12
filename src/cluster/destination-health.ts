import type { SmtpReply } from '../core/index.js';
import { slotScope } from './redis-link.js';
import type { RedisLink } from './redis-link.js';

/** What another node learnt about a destination's health (pub/sub), or that the shared view is gone. */
export type HealthNews =
  /** A node found every host of the destination refusing sessions: back off for `remainingMs`. */
  | { readonly kind: 'down'; readonly destination: string; readonly remainingMs: number; readonly backoffMs: number; readonly node: string }
  /**
   * A node got a session: the destination is back. `lifted`: no session said so, an
   * operator did (`tern queue flush`, `tern domain resume`, SIGHUP on that node).
   */
  | { readonly kind: 'up'; readonly destination: string; readonly node: string; readonly lifted?: true }
  /** Redis stopped answering: each node is on its own again (its own backoff and probe). */
  | { readonly kind: 'lost' };

/** Not this node's turn to probe: another node holds the lock (`probing`), or the cluster's backoff still runs (`backoff`), for `ms` at most. */
export interface ProbeWait {
  readonly why: 'probing' | 'backoff';
  readonly ms: number;
}

/** The backoff in force for the whole cluster. */
export interface SharedBackoff {
  readonly remainingMs: number;
  readonly backoffMs: number;
}

/**
 * Destination health shared by the nodes of a cluster (issue #17): a node that backs a
 * destination off says so, and when the backoff ends one node probes for all. Every
 * method answers `undefined` when the shared state cannot be reached: the caller then
 * does what a single node does.
 */
export interface DestinationHealth {
  /** This node backs `destination` off for `backoffMs`; resolves with the backoff in force cluster-wide (a longer one another node recorded wins). */
  down(destination: string, backoffMs: number, reply?: SmtpReply): Promise<SharedBackoff | undefined>;
  /**
   * The destination's backoff is over for the whole cluster: its record and probe lock go,
   * and every node hears "up". This node got a session to it, or (`lifted`) its operator
   * said so. Resolves false when the shared state did not answer (the other nodes then
   * keep their backoff until a probe's verdict).
   */
  up(destination: string, lifted?: boolean): Promise<boolean>;
  /**
   * The backoff ended here: may this node probe? true: it holds the probe lock; a wait:
   * not yet (another node holds the lock, or the cluster's backoff still runs);
   * undefined: no answer (probe locally).
   */
  claimProbe(destination: string): Promise<true | ProbeWait | undefined>;
  /** How much longer the cluster's backoff of `destination` runs: 0 when it has no record (over, or lifted by an "up"), undefined: no answer. */
  backoffLeft(destination: string): Promise<number | undefined>;
  /** This node's probe ended without a verdict: its lock goes (if still its own), the record stays, another node may probe. */
  releaseProbe(destination: string): Promise<void>;
  subscribe(handler: (news: HealthNews) => void): () => void;
}

const CHANNEL = 'health';
/** Nothing Tern publishes on the health channel comes near this. */
const MAX_NEWS_BYTES = 2048;
const MAX_DESTINATION = 255;
const MAX_REPLY_TEXT = 512;
/** destination_backoff_max is at most 24.8 days (setTimeout's ceiling). */
const MAX_BACKOFF_MS = 2 ** 31 - 1;

/**
 * KEYS[1] the destination's health record, KEYS[2] its probe lock. ARGV: node id, backoff
 * ms, the record (JSON without `until`), reply. A longer backoff already recorded by
 * another node stays (its remaining time is answered); otherwise ours is recorded with
 * Redis's clock as `until`. This node's probe, if it held the lock, is over. Safe to run
 * twice: the second run finds its own record and answers it.
 */
const DOWN = `
local ttl = redis.call('PTTL', KEYS[1])
local cur = redis.call('GET', KEYS[1])
local want = tonumber(ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if cur and ttl > want and #cur <= 2048 then
  local ok, rec = pcall(cjson.decode, cur)
  if ok and type(rec) == 'table' and tonumber(rec.backoff_ms) then return {ttl, tonumber(rec.backoff_ms)} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = cjson.decode(ARGV[3])
rec['until'] = now + want
redis.call('SET', KEYS[1], cjson.encode(rec), 'PX', want)
return {want, want}`;

/**
 * KEYS[1] the probe lock, KEYS[2] the health record. ARGV: node id, lock ms. The lock is
 * this node's already (a retried call): renewed. Another's: its remaining time. The
 * cluster's backoff still runs (a verdict came while this node's own timer ran out, or
 * its clock is ahead): that remaining time. Otherwise taken.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then return {ttl, 1} end
end
local down = redis.call('PTTL', KEYS[2])
if down > 0 then return {down, 2} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** KEYS[1] the probe lock. ARGV: node id. Only this node's own lock goes (safe to run twice). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface RedisDestinationHealthOptions {
  /** How long a probe lock holds (read at each claim): a node that took it and died frees it within this. */
  readonly probeMs: () => number;
}

/**
 * DestinationHealth over Redis: a record per backed-off destination under its hash tag
 * (`{dest}:health`, JSON with `until` in Redis's clock, the backoff and the last reply,
 * expiring with the backoff), a probe lock beside it (`{dest}:probe`, SET NX PX by node
 * id), and news on the `health` channel. Only transitions cost commands: a healthy
 * destination costs none.
 */
export class RedisDestinationHealth implements DestinationHealth {
  private readonly handlers = new Set<(news: HealthNews) => void>();
  private unsubscribe?: () => void;
  private readonly onDown = () => this.emit({ kind: 'lost' });

  constructor(
    private readonly link: RedisLink,
    private readonly options: RedisDestinationHealthOptions,
  ) {}

  async down(destination: string, backoffMs: number, reply?: SmtpReply): Promise<SharedBackoff | undefined> {
    const ms = Math.max(1, Math.min(Math.round(backoffMs), MAX_BACKOFF_MS));
    const record = JSON.stringify({ v: 1, node: this.link.nodeId, backoff_ms: ms, ...(reply ? { reply: boundedReply(reply) } : {}) });
    const answer = await this.link.script('health_down', DOWN, this.keys(destination), [this.link.nodeId, ms, record]);
    if (!Array.isArray(answer) || answer.length !== 2) return undefined;
    const [remainingMs, effective] = answer.map(Number);
    if (!validMs(remainingMs) || !validMs(effective)) return undefined;
    this.link.publish(CHANNEL, JSON.stringify({ v: 1, kind: 'down', destination, remaining_ms: remainingMs, backoff_ms: effective, node: this.link.nodeId }));
    return { remainingMs, backoffMs: effective };
  }

  async up(destination: string, lifted = false): Promise<boolean> {
    const keys = this.keys(destination);
    const gone = await this.link.call('health_up', (c) => c.del(...keys), slotScope(keys[0]));
    if (gone === undefined) return false;
    this.link.publish(CHANNEL, JSON.stringify({ v: 1, kind: 'up', destination, node: this.link.nodeId, ...(lifted ? { lifted: true } : {}) }));
    return true;
  }

  async claimProbe(destination: string): Promise<true | ProbeWait | undefined> {
    const lockMs = Math.max(100, Math.round(this.options.probeMs()));
    const [record, lock] = this.keys(destination);
    const answer = await this.link.script('health_claim', CLAIM, [lock, record], [this.link.nodeId, lockMs]);
    if (answer === 1) return true;
    if (Array.isArray(answer) && answer.length === 2 && validMs(Number(answer[0]))) return { why: answer[1] === 1 ? 'probing' : 'backoff', ms: Number(answer[0]) };
    return undefined;
  }

  async backoffLeft(destination: string): Promise<number | undefined> {
    const [record] = this.keys(destination);
    const ttl = await this.link.call('health_left', (c) => c.pttl(record), slotScope(record));
    if (ttl === undefined) return undefined;
    return ttl > 0 ? ttl : 0;
  }

  async releaseProbe(destination: string): Promise<void> {
    await this.link.script('health_release', RELEASE, [this.keys(destination)[1]], [this.link.nodeId]);
  }

  subscribe(handler: (news: HealthNews) => void): () => void {
    if (this.handlers.size === 0) {
      this.unsubscribe = this.link.subscribe(CHANNEL, (message) => this.receive(message));
      this.link.on('down', this.onDown);
    }
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
      if (this.handlers.size > 0) return;
      this.unsubscribe?.();
      this.link.off('down', this.onDown);
    };
  }

  private keys(destination: string): [string, string] {
    return [this.link.destinationKey(destination, 'health'), this.link.destinationKey(destination, 'probe')];
  }

  private receive(message: string): void {
    const news = parseNews(message);
    // Our own news came back: what it says is applied here already.
    if (!news || (news.kind !== 'lost' && news.node === this.link.nodeId)) return;
    this.emit(news);
  }

  private emit(news: HealthNews): void {
    for (const handler of this.handlers) handler(news);
  }
}

function validMs(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= MAX_BACKOFF_MS;
}

function boundedReply(reply: SmtpReply): SmtpReply {
  return { code: reply.code, ...(reply.enhanced ? { enhanced: reply.enhanced } : {}), text: reply.text.slice(0, MAX_REPLY_TEXT) } as SmtpReply;
}

/** A message of the health channel, checked field by field; anything else (another version, garbled) is ignored. */
export function parseNews(message: string): HealthNews | undefined {
  if (message.length > MAX_NEWS_BYTES) return undefined;
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(message) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null || m.v !== 1) return undefined;
  const { destination, node } = m;
  if (typeof destination !== 'string' || destination.length === 0 || destination.length > MAX_DESTINATION) return undefined;
  if (typeof node !== 'string' || node.length === 0 || node.length > 256) return undefined;
  if (m.kind === 'up') return { kind: 'up', destination, node, ...(m.lifted === true ? { lifted: true as const } : {}) };
  const remainingMs = Number(m.remaining_ms);
  const backoffMs = Number(m.backoff_ms);
  if (m.kind !== 'down' || !validMs(remainingMs) || !validMs(backoffMs)) return undefined;
  return { kind: 'down', destination, remainingMs, backoffMs, node };
}
