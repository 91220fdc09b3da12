/**
 * What nodes share so that a destination's limits hold for all of them together: the
 * number of sessions open to it and the rate messages go to it. A destination is named by
 * a key (a recipient domain, or a site of MX hosts with limits.ini `scope=site`).
 *
 * Three implementations keep this one contract (issues #16 and #17):
 * - in-process: one node, one process (the default, `nodes=1`);
 * - the primary process: `nodes=N` workers on one machine ask the primary over IPC;
 * - Redis through ioredis: several machines (GCRA script on Redis time, leases in a
 *   sorted set with a short TTL, renewed while held).
 *
 * Rules every implementation keeps:
 * - Every call is bounded in time and never rejects for a coordination fault (primary gone,
 *   Redis down): it answers from the node's local share instead (`failure_mode`), so a
 *   coordination fault never costs a message a delivery attempt nor blocks intake.
 * - Calls are idempotent by their ids (a lease id, a grant id), so a call that timed out
 *   and still ran later does no harm.
 * - Nothing here waits for capacity: a refusal says when to ask again (`retryAt`) or
 *   that a lease must end first (`freed` events), and the caller parks its entries.
 */

/** A message rate: `count` messages per `perMs`, with up to `burst` at once (GCRA). */
export interface MessageRate {
  readonly count: number;
  readonly perMs: number;
  readonly burst: number;
}

/** The limits of one destination as the node sees them now (limits.ini, live). */
export interface DestinationLimits {
  /** Sessions open to the destination at once, over every node. */
  readonly maxConnections: number;
  /**
   * true when limits.ini names no max_connections for the destination: `maxConnections` is
   * then only this node's own cap (outbound.ini), not a limit shared with other nodes.
   */
  readonly nodeOnly?: boolean;
  readonly rate?: MessageRate;
}

/** A connection slot held by this node; returned with `release`, renewed while it lives. */
export interface ConnectionLease {
  readonly key: string;
  /** Unique per acquisition; the same id acquires at most one slot. */
  readonly id: string;
}

export type SlotAnswer =
  | { readonly granted: true; readonly lease: ConnectionLease }
  | { readonly granted: false; readonly reason: 'connection_limit' };

export type TokenAnswer =
  /** `granted` ≤ wanted; 0 with `retryAt` (epoch ms) when the next token is due. */
  { readonly granted: number; readonly retryAt?: number };

export interface LimitCoordinator {
  /** Takes a connection slot of `key` under `limits.maxConnections`, or says none is free. */
  acquireSlot(key: string, limits: DestinationLimits, leaseId: string): Promise<SlotAnswer>;
  /**
   * Whether a slot held may serve another message (the shaper asks before it reuses an
   * idle session's slot): false when the slot was taken back (Redis restarted empty and
   * others hold the limit), or when the node cannot tell that it still holds it within the
   * limit (Redis away and this node holds more than it may). The session then ends.
   */
  keepSlot(lease: ConnectionLease): boolean;
  /** Gives a slot back (idempotent; unknown leases are ignored). */
  releaseSlot(lease: ConnectionLease): void;
  /** Takes up to `wanted` message tokens of `key` under `limits.rate`. */
  takeTokens(key: string, limits: DestinationLimits, wanted: number): Promise<TokenAnswer>;
  /** Hands back tokens taken but not used (a session failed before its messages went). */
  returnTokens(key: string, limits: DestinationLimits, count: number): void;
  /**
   * Calls `listener(key)` when a slot of `key` may have come free anywhere, or one held here
   * may have been taken back (the shaper then asks keepSlot of its idle sessions); returns
   * an unsubscribe.
   */
  onFreed(listener: (key: string) => void): () => void;
  close(): Promise<void>;
}
