import { randomUUID } from 'node:crypto';
import type { RedisLink } from './redis-link.js';

/**
 * KEYS: the cluster's epoch, its fence (one hash tag: one Redis Cluster slot). ARGV: the
 * epoch this node last saw ('' when none yet), a new epoch, the hold (ms), 'raise' to raise
 * the fence whatever the epoch says.
 * An epoch that is gone or differs from the one this node saw means Redis lost its data
 * (restarted empty, or flushed): every node's leases are gone with it, and the fence goes
 * up unless another node raised it already. Returns {epoch, ms the fence still stands}.
 * Safe to run twice: a second run finds the epoch set and the fence up.
 */
const FENCE_LUA = `
local epoch = redis.call('GET', KEYS[1])
local lost = ARGV[4] == 'raise'
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch)
end
if ARGV[1] ~= '' and epoch ~= ARGV[1] then lost = true end
if lost then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) end
return {epoch, redis.call('PTTL', KEYS[2])}`;

/**
 * The fence that Redis puts up after it lost the cluster's leases (issue #17): while it
 * stands, no node takes a new connection slot, and every node puts back the leases its
 * live sessions hold. A hold decided by each node's own clock from the moment it saw Redis
 * again was not enough: nodes notice within a probe of each other at best, and one that
 * noticed late found the slots of its live sessions taken (one session too many at the
 * remote server). The fence starts once, when the first node sees the loss, and ends at
 * the same moment for all; it is only raised when data was lost, so a node's own blip
 * (a slow command, a short partition) holds nobody's new sessions.
 */
export class RejoinFence {
  /** The epoch this node last saw; '' until Redis first answered. */
  private epoch = '';

  constructor(
    private readonly link: RedisLink,
    /** How long the fence stands: longer than the nodes take to see Redis again and put their leases back. */
    readonly holdMs: number,
  ) {}

  /**
   * Reads the epoch (and raises the fence when Redis lost data, or when `raise`). Answers
   * for how long (ms) new slots must wait: 0 when no fence stands; undefined when Redis
   * did not answer (the caller holds on its own clock, as if it stood).
   */
  async check(raise = false): Promise<number | undefined> {
    const { link } = this;
    const answer = await link.script('fence', FENCE_LUA, [link.key('{rejoin}', 'epoch'), link.key('{rejoin}', 'fence')], [this.epoch, randomUUID(), this.holdMs, raise ? 'raise' : '']);
    if (!Array.isArray(answer) || answer.length !== 2 || typeof answer[0] !== 'string') return undefined;
    this.epoch = answer[0].slice(0, 64);
    const ms = Number(answer[1]);
    return Number.isFinite(ms) && ms > 0 ? Math.min(ms, this.holdMs) : 0;
  }
}
