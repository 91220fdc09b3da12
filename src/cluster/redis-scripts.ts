import type { RedisLink } from './redis-link.js';

/**
 * The Lua scripts of the Redis coordinator (issue #17). Each reads the clock of Redis
 * (`TIME`, microseconds), never a node's, and touches only keys of one destination (their
 * hash tag), so that it runs on one Redis Cluster node. Redis 7 replicates a script by its
 * effects, so reading TIME before writing is allowed.
 *
 * Each must be safe to run twice (a call that timed out here may still run there): token
 * grants and give-backs record their answer under the call's id for a while, and a rerun
 * with the same id answers the recorded result; lease scripts are idempotent by lease id.
 */

/** How long a grant's or give-back's answer is kept for a rerun with the same id. */
export const CALL_ID_TTL_MS = 30_000;

// Lua's tostring keeps 14 digits: Redis time in µs has 16, so numbers are written with %.3f.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])`;

/**
 * GCRA with chunks reserved ahead: KEYS[1] the destination's rate state (a hash: tat,
 * step), KEYS[2] the call's id. ARGV: step (µs per token), burst, wanted, horizon (µs),
 * back.
 * First `back` tokens held but unused by this node are given back (the TAT moves back,
 * never below now). Then up to `wanted` tokens are granted whose times are due within
 * `horizon`: token k (from 0) of the grant is due at `first + k × step` µs from now, when
 * GCRA lets it go (new TAT − now ≤ burst × step). The node hands each out at its time, so
 * the rate holds as if every message had asked Redis, while a node asks once per chunk and
 * nodes never race for the same token. Returns {granted, first} (first ≤ 0: due now); none
 * granted: {0, µs until one is due within the horizon}.
 * A step that differs from the stored one (limits.ini reloaded) rescales what is owed, as
 * LocalCoordinator does: a rate raised from 1/h does not hold the next message for an hour.
 */
export const GRANT_LUA = `
local done = redis.call('GET', KEYS[2])
if done then
  local g, w = string.match(done, '^(%d+):(-?%d+)$')
  return {tonumber(g), tonumber(w)}
end
${NOW}
local step = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local back = tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'tat', 'step')
local tat = tonumber(s[1]) or now
local was = tonumber(s[2]) or step
if back > 0 then tat = tat - back * was end
if tat < now then tat = now end
if was ~= step then tat = now + (tat - now) * (step / was) end
local first = math.ceil(tat + step - burst * step - now)
local room = math.floor((now + burst * step + horizon - tat) / step + 1e-6)
local granted = math.max(0, math.min(wanted, room))
local answer = first
if granted == 0 then answer = math.max(1, first - horizon) end
tat = tat + granted * step
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'step', string.format('%.6f', step))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 60000)
redis.call('SET', KEYS[2], granted .. ':' .. string.format('%d', answer), 'PX', ${CALL_ID_TTL_MS})
return {granted, answer}`;

/** Gives back `ARGV[1]` unused tokens: KEYS as GRANT_LUA. Returns the tokens given back (0 on a rerun). */
export const GIVE_BACK_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], '0:0', 'PX', ${CALL_ID_TTL_MS})
${NOW}
local back = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'tat', 'step')
local tat = tonumber(s[1])
local step = tonumber(s[2])
if not tat or not step then return 0 end
tat = math.max(now, tat - back * step)
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat))
return back`;

/**
 * A connection lease: KEYS[1] the destination's leases (a sorted set: lease id → expiry in
 * Redis µs). ARGV: lease id, max, ttl (µs). Expired leases are dropped; the lease already
 * there is renewed (granted: the same id acquires once); below max it is added. Refused:
 * {0, µs until the earliest lease lapses}.
 */
export const ACQUIRE_LUA = `
${NOW}
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local exp = string.format('%.0f', now + ttl)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], exp, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) * 2)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, math.ceil(tonumber(first[2]) - now))}`;

/**
 * Renews this node's leases of one destination: KEYS[1] its leases, ARGV: ttl (µs), lease
 * ids… Each is set to expire a ttl from now, added back if it is gone (Redis restarted
 * empty, or its TTL ran out while Redis was away): its session is live, whatever the limit.
 * Returns how many were added back.
 */
export const RENEW_LUA = `
${NOW}
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local exp = string.format('%.0f', now + ttl)
local added = 0
for i = 2, #ARGV do added = added + redis.call('ZADD', KEYS[1], exp, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) * 2)
return added`;

/** Ends leases: KEYS[1] their destination's leases, ARGV lease ids. Returns how many were there. */
export const RELEASE_LUA = `
return redis.call('ZREM', KEYS[1], unpack(ARGV))`;

/** One node's leases, keyed by its destination. */
export function leasesKey(link: RedisLink, destination: string): string {
  return link.destinationKey(destination, 'leases');
}

export function rateKey(link: RedisLink, destination: string): string {
  return link.destinationKey(destination, 'gcra');
}

export function callKey(link: RedisLink, destination: string, id: string): string {
  return link.destinationKey(destination, `call:${id}`);
}

/** A pair of numbers from a script, or undefined when Redis did not answer (or answered nonsense). */
export function pair(result: unknown): [number, number] | undefined {
  if (!Array.isArray(result) || result.length !== 2) return undefined;
  const [a, b] = result.map(Number);
  return Number.isFinite(a) && Number.isFinite(b) ? [a, b] : undefined;
}
