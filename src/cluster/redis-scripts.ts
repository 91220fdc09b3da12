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
/**
 * A rate key lives this long (µs) past the TAT its expiry was last set at, and is set
 * again once less than half of it is left: at least CALL_ID_TTL_MS past every call.
 */
const KEY_LIFE_US = 4 * CALL_ID_TTL_MS * 1000;

// Lua's tostring keeps 14 digits: Redis time in µs has 16, so numbers are written with %.3f.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])`;

/**
 * GCRA with chunks reserved ahead: KEYS[1] the destination's rate state (a hash: tat,
 * step, and per node `c:<node>` its last call's id and answer). ARGV: call id, node id,
 * step (µs per token), burst, wanted, horizon (µs), back, end.
 * First `back` tokens this node reserved but will not use are given back, only if the TAT
 * still ends where this node's reservation ended (`end`, as the script returned it):
 * otherwise others reserved after them and moving the TAT back would hand out their time
 * twice. Then up to `wanted` tokens are granted whose times are due within `horizon`:
 * token k (from 0) of the grant is due at `first + k × step` µs from now, when GCRA lets it
 * go (new TAT − now ≤ burst × step). The node hands each out at its time, so the rate
 * holds as if every message had asked Redis, while a node asks once per chunk and nodes
 * never race for the same token. Returns {granted, first, tat} (first ≤ 0: due now; tat the
 * end of this reservation, as a string); none granted: {0, µs until one is due within the
 * horizon, tat}. A rerun with the same call id answers the recorded answer (the node calls
 * one at a time per key, so its last call is the only one that can run twice). Commands:
 * HMGET, TIME, HSET, and PEXPIRE only when the key's expiry (field `x`, Redis µs, as last
 * set) would come less than KEY_LIFE_US/2 after the new TAT: the key then lives at least
 * that long past its TAT and its call ids (CALL_ID_TTL_MS), for one PEXPIRE in 30 s of a
 * busy destination instead of one a call (Redis counts each command a script runs).
 * A step that differs from the stored one (limits.ini reloaded) rescales what is owed, as
 * LocalCoordinator does: a rate raised from 1/h does not hold the next message for an hour.
 */
export const GRANT_LUA = `
local field = 'c:' .. ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'tat', 'step', field, 'x')
if s[3] then
  local id, g, w, e = string.match(s[3], '^(.-):(%d+):(-?%d+):(.*)$')
  if id == ARGV[1] then return {tonumber(g), tonumber(w), e} end
end
${NOW}
local step = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local wanted = tonumber(ARGV[5])
local horizon = tonumber(ARGV[6])
local back = tonumber(ARGV[7])
local mine = tonumber(ARGV[8])
local tat = tonumber(s[1]) or now
local was = tonumber(s[2]) or step
if back > 0 and mine and math.abs(tat - mine) < 1 then tat = tat - back * was end
if tat < now then tat = now end
if was ~= step then tat = now + (tat - now) * (step / was) end
local first = math.ceil(tat + step - burst * step - now)
local room = math.floor((now + burst * step + horizon - tat) / step + 1e-6)
local granted = math.max(0, math.min(wanted, room))
local answer = first
if granted == 0 then answer = math.max(1, first - horizon) end
tat = tat + granted * step
local e = string.format('%.3f', tat)
local x = tonumber(s[4])
local life = ${KEY_LIFE_US}
if x and x - tat >= life / 2 then
  redis.call('HSET', KEYS[1], 'tat', e, 'step', string.format('%.6f', step), field, ARGV[1] .. ':' .. granted .. ':' .. string.format('%d', answer) .. ':' .. e)
else
  redis.call('HSET', KEYS[1], 'tat', e, 'step', string.format('%.6f', step), field, ARGV[1] .. ':' .. granted .. ':' .. string.format('%d', answer) .. ':' .. e, 'x', string.format('%.0f', tat + life))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat + life - now) / 1000))
end
return {granted, answer, e}`;

/**
 * Gives back `ARGV[3]` tokens this node reserved whose times are still ahead: KEYS as
 * GRANT_LUA; ARGV: call id, node id, back, end (the TAT this node's reservation ended at).
 * Only when the TAT still ends there: if another node reserved after it, moving the TAT
 * back would let the given-back time be granted while that node's tokens still go (a
 * burst above GCRA's bound). Never below now. Returns the tokens given back (0 on a rerun).
 */
export const GIVE_BACK_LUA = `
local field = 'c:' .. ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'tat', 'step', field)
if s[3] and string.match(s[3], '^(.-):') == ARGV[1] then return 0 end
local tat = tonumber(s[1])
local step = tonumber(s[2])
local mine = tonumber(ARGV[4])
if not tat or not step or not mine or math.abs(tat - mine) >= 1 then return 0 end
${NOW}
local back = tonumber(ARGV[3])
tat = math.max(now, tat - back * step)
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), field, ARGV[1] .. ':0:0:' .. string.format('%.3f', tat))
return back`;

/**
 * A connection lease: KEYS[1] the destination's leases (a sorted set: lease id → expiry in
 * Redis µs). ARGV: lease id, max, ttl (µs). The lease already there is renewed (granted:
 * the same id acquires once); below max it is added. Expired leases are dropped only when
 * the set is full: below max they take no room a live one needs, and a grant costs TIME,
 * ZCARD, ZADD and PEXPIRE. Refused: {0, µs until the earliest lease lapses}.
 */
export const ACQUIRE_LUA = `
${NOW}
local ttl = tonumber(ARGV[3])
local max = tonumber(ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
  n = redis.call('ZCARD', KEYS[1])
end
if n < max or redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) * 2)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, math.ceil(tonumber(first[2]) - now))}`;

/**
 * Renews this node's leases of one destination: KEYS[1] its leases, ARGV: ttl (µs), max,
 * lease ids… Each still there is set to expire a ttl from now; one that is gone (Redis
 * restarted empty, or its TTL ran out while Redis was away) is added back only while the
 * destination holds fewer than max: the limit holds even when several nodes put back what
 * they held. Returns {how many were gone, the ids not kept}: gone ones mean Redis lost
 * them (restarted empty); the ids not kept must end their sessions (the node revokes them).
 * Commands: TIME, ZREMRANGEBYSCORE, ZMSCORE, ZCARD, ZADD, PEXPIRE.
 */
export const RENEW_LUA = `
${NOW}
local ttl = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local exp = string.format('%.0f', now + ttl)
local ids = {unpack(ARGV, 3)}
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local room = max - redis.call('ZCARD', KEYS[1])
local add = {}
local lost = {}
local missing = 0
for i, id in ipairs(ids) do
  if not scores[i] then missing = missing + 1 end
  if scores[i] then
    add[#add + 1] = exp
    add[#add + 1] = id
  elseif room > 0 then
    room = room - 1
    add[#add + 1] = exp
    add[#add + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #add > 0 then redis.call('ZADD', KEYS[1], unpack(add)) end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000) * 2)
return {missing, lost}`;

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

/** A pair of numbers from a script, or undefined when Redis did not answer (or answered nonsense). */
export function pair(result: unknown): [number, number] | undefined {
  if (!Array.isArray(result) || result.length !== 2) return undefined;
  const [a, b] = result.map(Number);
  return Number.isFinite(a) && Number.isFinite(b) ? [a, b] : undefined;
}
