import type { Clock } from '../core/index.js';
import type { Logger } from '../log/index.js';
import type { LocalPolicy, OverrideRecord, PolicyChange, SuspensionRecord } from './policy-records.js';
import { isOverrideDestination } from './policy-records.js';
import { slotScope, type RedisLink } from './redis-link.js';

export interface PolicySyncOptions {
  readonly link: RedisLink;
  readonly local: LocalPolicy;
  readonly logger: Logger;
  readonly clock: Clock;
  /** How often the epoch is read in case a published change was lost (default 3 s). */
  readonly checkEveryMs?: number;
}

/** A lift is kept this long in Redis, so that a node back from a long outage does not set again what was lifted meanwhile. */
export const TOMBSTONE_MS = 7 * 86_400_000;
/** At most this many records are read (a bound on what a damaged or hostile Redis can make a node hold). */
const MAX_RECORDS = 100_000;
const MAX_VALUE_BYTES = 4096;

/** A field's value in the records hash: the record, or a lift (no record), with when it changed and when it may be dropped. */
interface Stored {
  readonly changed: number;
  readonly until?: number;
  readonly record?: SuspensionRecord | OverrideRecord;
}

/**
 * Writes a change unless a later one of the same destination is there already (two nodes
 * that changed it while Redis was away: the later change wins). A change made while Redis
 * answers is stamped with Redis's TIME here (ARGV[4] = '1'), not the node's clock, so that
 * nodes whose clocks differ still agree on which change came last; a change queued during
 * an outage keeps the node's time (ARGV[3]), the only one there was. A lift is kept as a
 * tombstone for ARGV[5] ms. A record whose end (ARGV[6]) has passed by Redis's TIME is
 * not written (2): a node whose clock runs slow, or that held it through an outage, does
 * not bring back what the cluster let lapse. Safe twice: the same change written again
 * holds the same record, and the epoch only counts up. Answers {written, epoch, changed,
 * Redis's time in ms}.
 */
const PUT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tonumber(ARGV[3])
if ARGV[4] == '1' then at = now end
if ARGV[6] ~= '' and tonumber(ARGV[6]) <= now then
  return {2, tonumber(redis.call('GET', KEYS[2]) or '0'), at, now}
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and tonumber(old.changed) and tonumber(old.changed) > at then
    return {0, tonumber(redis.call('GET', KEYS[2]) or '0'), at, now}
  end
end
local value = '{"changed":' .. string.format('%d', at)
if ARGV[5] ~= '' then value = value .. ',"until":' .. string.format('%d', at + tonumber(ARGV[5])) end
local rest = string.sub(ARGV[2], 2)
if rest ~= '}' then value = value .. ',' .. rest else value = value .. '}' end
redis.call('HSET', KEYS[1], ARGV[1], value)
return {1, redis.call('INCR', KEYS[2]), at, now}
`;

/** Drops a record whose time is up, unless it changed since it was read. */
const DROP = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

const fieldOf = (change: Pick<PolicyChange, 'kind' | 'key'>) => `${change.kind}|${change.key}`;

function canonical(kind: PolicyChange['kind'], r: SuspensionRecord | OverrideRecord): string {
  if (kind === 'suspension') {
    const s = r as SuspensionRecord;
    return JSON.stringify([s.domain, s.reason, s.since, s.until ?? null, s.rule ?? null]);
  }
  const o = r as OverrideRecord;
  return JSON.stringify([o.destination, o.maxConnections ?? null, o.maxMessageRate?.count ?? null, o.maxMessageRate?.perMs ?? null, o.reason, o.since, o.until, o.rule ?? null]);
}

const MAX_REASON = 500;
const RULE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SUSPENDED_DOMAIN = /^[a-z0-9.:[\]-]{1,255}$/;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isCount = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max;

/** Whether a record read from Redis holds what the admin API would have accepted. */
function validRecord(kind: string, key: string, r: Record<string, unknown>): boolean {
  if (typeof r.reason !== 'string' || r.reason.length > MAX_REASON || !isTime(r.since)) return false;
  if (r.rule !== undefined && !(typeof r.rule === 'string' && RULE_NAME.test(r.rule))) return false;
  if (kind === 'suspension') return r.domain === key && SUSPENDED_DOMAIN.test(key) && (r.until === undefined || isTime(r.until));
  if (r.destination !== key || !isOverrideDestination(key) || !isTime(r.until)) return false;
  const rate = r.maxMessageRate as { count?: unknown; perMs?: unknown } | undefined;
  if (r.maxConnections === undefined && rate === undefined) return false;
  if (r.maxConnections !== undefined && !isCount(r.maxConnections, 100_000)) return false;
  if (rate !== undefined && !(rate && typeof rate === 'object' && isCount(rate.count, 1e9) && typeof rate.perMs === 'number' && Number.isFinite(rate.perMs) && rate.perMs > 0)) return false;
  return true;
}

/** A value read from Redis, checked: anything else is ignored (and left for whoever wrote it). */
function parseStored(kind: string, key: string, text: string): Stored | undefined {
  if (text.length > MAX_VALUE_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const s = v as { changed?: unknown; until?: unknown; record?: Record<string, unknown> };
  if (!isTime(s.changed) || (s.until !== undefined && !isTime(s.until))) return undefined;
  const r = s.record;
  if (r === undefined) return { changed: s.changed, ...(typeof s.until === 'number' ? { until: s.until } : {}) };
  if (typeof r !== 'object' || r === null || Array.isArray(r) || !validRecord(kind, key, r)) return undefined;
  return s as Stored;
}

/**
 * Suspensions and limit overrides shared by every node through Redis (issue #17). Each
 * record is a field of one hash (`<prefix>{policy}:records`, `suspension|<domain>` or
 * `override|<destination>`), next to an epoch counter raised at every change. A change made
 * here is written (PUT), then the epoch is published on the `policy` channel: every node
 * reloads the hash and applies what differs, within a second. Each node also reads the
 * epoch every few seconds (one GET) in case a message was lost, and reloads when it moved.
 *
 * Each node keeps its own copy (the queue directory's suspensions.json and overrides.json),
 * so that the policy holds through a Redis outage and a restart. A change made while Redis
 * is away applies here at once and is written when the link comes back (`up`); a record
 * Redis does not have (a Redis that lost its data) is written back from the local copy.
 * Records whose time is up are dropped by whichever node reads them, judged by Redis's
 * clock (TIME read with the records; between reads, this node's clock plus its offset to
 * Redis's as last measured), never by a node's own: a node whose clock runs fast does not
 * drop a live suspension for the cluster, nor one whose clock runs slow write back one the
 * cluster let lapse. Until Redis has answered once (a start during an outage) the offset is
 * unknown and no local record is written back; the local copy still applies here.
 */
export class PolicySync {
  /**
   * Changes made here and not yet in Redis, by field (the latest of each); `redisTime`: made
   * while Redis answered, so stamped with Redis's time when written.
   */
  private readonly pending = new Map<string, { readonly change: PolicyChange; readonly redisTime: boolean }>();
  /**
   * What Redis is known to hold for each field (the record's canonical text, '' for a lift),
   * as read or written by this process: a local record Redis has seen is never pushed back
   * over a later change on the strength of this node's clock.
   */
  private readonly known = new Map<string, string>();
  /** Records from Redis this node refused (logged once each). */
  private readonly refusedRecords = new Set<string>();
  private epoch: string | undefined;
  /** Redis's clock minus this node's, in ms, as last measured; undefined until Redis answered. */
  private offsetMs: number | undefined;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private chain: Promise<void> = Promise.resolve();
  private reloadQueued = false;
  private closed = false;
  private readonly recordsKey: string;
  private readonly epochKey: string;
  private readonly onUp = () => this.sync();

  constructor(private readonly options: PolicySyncOptions) {
    this.recordsKey = options.link.key('{policy}', 'records');
    this.epochKey = options.link.key('{policy}', 'epoch');
  }

  start(): void {
    const { link } = this.options;
    this.unsubscribe = link.subscribe('policy', (message) => {
      if (message !== this.epoch) this.reload();
    });
    link.on('up', this.onUp);
    this.timer = setInterval(() => this.check(), this.options.checkEveryMs ?? 3000);
    this.timer.unref();
    if (link.up) this.sync();
  }

  /** A change made on this node: written to Redis now, or when it is back. */
  announce(change: PolicyChange): void {
    if (this.closed) return;
    this.pending.set(fieldOf(change), { change, redisTime: this.options.link.up });
    this.queue(() => this.push());
  }

  /** Redis's time now as this node reckons it (its clock plus the last measured offset); undefined before Redis answered. */
  redisNow(): number | undefined {
    return this.offsetMs === undefined ? undefined : this.options.clock.now() + this.offsetMs;
  }

  /** Resolves once the work asked for so far is done (tests, shutdown). */
  settled(): Promise<void> {
    return this.chain;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.options.link.off('up', this.onUp);
  }

  /** Back in touch with Redis: what changed here first, then what changed elsewhere. */
  private sync(): void {
    this.queue(() => this.push());
    this.reload();
  }

  private reload(): void {
    if (this.reloadQueued) return;
    this.reloadQueued = true;
    this.queue(async () => {
      this.reloadQueued = false;
      await this.load();
    });
  }

  /**
   * The cheap check: one GET; a reload only when the epoch moved. Changes Redis refused
   * while the link stayed up (OOM, a master failing over) are tried again here.
   */
  private check(): void {
    if (this.closed || !this.options.link.up) return;
    if (this.pending.size > 0) this.queue(() => this.push());
    this.queue(async () => {
      const epoch = await this.options.link.call('policy_epoch', (c) => c.get(this.epochKey), slotScope(this.epochKey));
      if (epoch !== undefined && (epoch ?? '0') !== this.epoch) await this.load();
    });
  }

  private queue(work: () => Promise<void>): void {
    this.chain = this.chain
      .then(() => (this.closed ? undefined : work()))
      .catch((err: Error) => this.options.logger.error({ event: 'policy_sync_failed', err: err.message }, 'the shared suspensions and overrides could not be synchronised'));
  }

  /** Writes the pending changes; stops at the first that Redis does not take (kept for `up` or the next check). */
  private async push(): Promise<void> {
    let epoch: number | undefined;
    let refused = false;
    for (const [field, entry] of [...this.pending]) {
      const { change, redisTime } = entry;
      const body = change.record ? { ...(change.record.until !== undefined ? { until: change.record.until } : {}), record: change.record } : {};
      const args = [field, JSON.stringify(body), change.at, redisTime ? '1' : '0', change.record ? '' : TOMBSTONE_MS, change.record?.until ?? ''];
      const sent = this.options.clock.now();
      const answer = await this.options.link.script('policy_put', PUT, [this.recordsKey, this.epochKey], args);
      if (!Array.isArray(answer)) return;
      this.measure(Number(answer[3]), sent);
      if (this.pending.get(field) === entry) this.pending.delete(field);
      if (answer[0] === 2) {
        // Over by Redis's time: the cluster let it lapse (or will not see it); here it lifts too.
        this.options.logger.info({ event: 'policy_record_lapsed', field, until: change.record!.until }, 'a suspension or override whose time is up by Redis\'s clock was not written');
        await this.applyOne(field, { kind: change.kind, key: change.key, at: Number(answer[2]) } as PolicyChange);
      } else if (answer[0] === 1) {
        epoch = Number(answer[1]);
        this.known.set(field, change.record ? canonical(change.kind, change.record) : '');
      } else {
        refused = true;
        this.options.logger.info({ event: 'policy_change_superseded', field, at: Number(answer[2]) }, 'a later change of this destination made on another node stands');
      }
    }
    if (epoch !== undefined) this.options.link.publish('policy', String(epoch));
    // The change that stands elsewhere must stand here too.
    if (refused) this.reload();
  }

  /**
   * Redis's clock minus this node's, from a time Redis gave in ms and when the call was sent
   * (half the round trip is taken as the way back).
   */
  private measure(redisMs: number, sentMs: number): void {
    if (!Number.isFinite(redisMs)) return;
    const now = this.options.clock.now();
    this.offsetMs = Math.round(redisMs - (sentMs + now) / 2);
  }

  /**
   * Applies one record from Redis; one this node refuses is skipped (logged once), so that
   * one bad record does not stop the others, nor the epoch from being taken.
   */
  private async applyOne(field: string, change: PolicyChange): Promise<void> {
    try {
      await this.options.local.apply(change);
    } catch (err) {
      const seen = `${field}|${change.at}`;
      if (this.refusedRecords.has(seen)) return;
      if (this.refusedRecords.size >= 1000) this.refusedRecords.clear();
      this.refusedRecords.add(seen);
      this.options.logger.warn({ event: 'policy_record_refused', field, err: (err as Error).message }, 'a shared suspension or override was refused here and skipped');
    }
  }

  /** Reads every record and makes the local policy the shared one. */
  private async load(): Promise<void> {
    const { link, local, clock } = this.options;
    const sent = clock.now();
    const read = await link.call('policy_load', async (c) => {
      const [[, time], [, epoch], [, all]] = (await c.multi().time().get(this.epochKey).hgetall(this.recordsKey).exec()) as [[unknown, [string, string]], [unknown, string | null], [unknown, Record<string, string>]];
      return { time, epoch: epoch ?? '0', all };
    }, slotScope(this.epochKey));
    if (!read) return;
    this.measure(Number(read.time[0]) * 1000 + Math.floor(Number(read.time[1]) / 1000), sent);
    // Redis's time, not this node's: what the cluster holds lapses when Redis's clock says.
    const now = this.redisNow()!;
    const remote = new Map<string, Stored>();
    let n = 0;
    for (const [field, text] of Object.entries(read.all)) {
      if (++n > MAX_RECORDS) break;
      const bar = field.indexOf('|');
      const kind = field.slice(0, bar);
      if (kind !== 'suspension' && kind !== 'override') continue;
      const stored = parseStored(kind, field.slice(bar + 1), text);
      if (!stored) continue;
      if (stored.until !== undefined && stored.until <= now) {
        // Its time is up: whoever sees it first drops it.
        await link.script('policy_drop', DROP, [this.recordsKey], [field, text]);
        continue;
      }
      remote.set(field, stored);
    }
    const mine = new Map<string, { kind: PolicyChange['kind']; record: SuspensionRecord | OverrideRecord }>();
    for (const s of local.suspensions()) mine.set(`suspension|${s.domain}`, { kind: 'suspension', record: s });
    for (const o of local.overrides()) mine.set(`override|${o.destination}`, { kind: 'override', record: o });
    let pushBack = false;
    const pushBackLocal = async (field: string, kind: PolicyChange['kind'], key: string, record: SuspensionRecord | OverrideRecord) => {
      if (record.until !== undefined && record.until <= now) {
        // Over by Redis's time (this node's clock runs slow, or it held it through an outage): lifted here, not written back.
        await this.applyOne(field, { kind, key, at: now } as PolicyChange);
        return;
      }
      // Not a change made while Redis answered: its own time is all there is to compare.
      this.pending.set(field, { change: { kind, key, record, at: record.since } as PolicyChange, redisTime: false });
      pushBack = true;
    };
    for (const field of new Set([...remote.keys(), ...mine.keys()])) {
      // A change made here and not yet written goes first; the next load sees it in Redis.
      if (this.pending.has(field)) continue;
      const bar = field.indexOf('|');
      const kind = field.slice(0, bar) as PolicyChange['kind'];
      const key = field.slice(bar + 1);
      const there = remote.get(field);
      const here = mine.get(field);
      // A local record Redis held once (read or written by this process) was superseded
      // there: Redis wins whatever the clocks say. Only a record Redis never saw (set during an
      // outage, then a restart) is compared by time.
      const unseen = here !== undefined && this.known.get(field) !== canonical(kind, here.record);
      if (there?.record) {
        if (here && canonical(kind, here.record) === canonical(kind, there.record)) continue;
        if (here && unseen && here.record.since > there.changed) {
          await pushBackLocal(field, kind, key, here.record);
          continue;
        }
        await this.applyOne(field, { kind, key, record: there.record, at: there.changed } as PolicyChange);
      } else if (there) {
        if (!here) continue;
        if (unseen && here.record.since > there.changed) await pushBackLocal(field, kind, key, here.record);
        else await this.applyOne(field, { kind, key, at: there.changed });
      } else if (here) {
        // Redis does not know it (it lost its data, or this node was set before it used Redis): written back.
        await pushBackLocal(field, kind, key, here.record);
      }
    }
    this.known.clear();
    for (const [field, there] of remote) {
      const kind = field.slice(0, field.indexOf('|')) as PolicyChange['kind'];
      this.known.set(field, there.record ? canonical(kind, there.record) : '');
    }
    this.epoch = read.epoch;
    if (pushBack) await this.push();
  }
}
