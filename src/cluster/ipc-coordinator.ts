import type { ConnectionLease, DestinationLimits, LimitCoordinator, SlotAnswer, TokenAnswer } from './coordinator.js';
import { isCoordFreed, isCoordReply } from './ipc-messages.js';
import type { CoordOp, IpcChannel } from './ipc-messages.js';
import { LocalBucket, rateShare, slotShare } from './local-share.js';

export interface IpcCoordinatorOptions {
  readonly channel: IpcChannel;
  /** How long a call waits for the primary before the local share answers. */
  readonly timeoutMs: number;
  /** The workers the primary runs, and this one's place among them (0-based), for the local share. */
  readonly workers: number;
  readonly index: number;
  readonly now?: () => number;
}

interface Pending {
  readonly op: CoordOp;
  readonly args: readonly unknown[];
  readonly timer: NodeJS.Timeout;
  readonly settle: (result: unknown) => void;
}

/** Local buckets kept at most for this many destinations; past it the oldest is forgotten. */
const MAX_LOCAL_KEYS = 10_000;

/**
 * A worker's LimitCoordinator (`nodes=N`): every call asks the primary over node:cluster's
 * IPC channel, which answers from the machine-wide coordinator (daemon/cluster-primary.ts
 * serves it through CoordinatorHost). A call the primary does not answer within
 * `timeoutMs` is answered "not now" while the primary is there (its count must hold), and
 * from this worker's share of the limit (local-share.ts) once it is gone, so a busy or
 * gone primary never blocks the event loop nor costs an attempt. An answer that
 * arrives after its time-out is undone (a late slot released, late tokens returned): the
 * call ran at the far end, and must not hold capacity nobody uses.
 */
export class IpcCoordinator implements LimitCoordinator {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Calls answered locally: their late answers are undone. */
  private readonly timedOut = new Map<number, { op: CoordOp; args: readonly unknown[] }>();
  /** Slots granted from the local share, by lease id. */
  private readonly localLeases = new Map<string, string>();
  private readonly buckets = new Map<string, LocalBucket>();
  private readonly listeners = new Set<(key: string) => void>();
  private readonly detach: () => void;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly options: IpcCoordinatorOptions) {
    this.now = options.now ?? Date.now;
    this.detach = options.channel.onMessage((m) => this.onMessage(m));
  }

  /**
   * A primary that is slow but there still holds the machine's count: slots or tokens taken
   * from this worker's share then would come on top of those the primary grants the
   * others, so the answer is "not now" (the entries park, costing no attempt) and the key
   * is asked again after a time-out. The share is for a primary that is gone.
   */
  private primaryGone(): boolean {
    return this.closed || this.options.channel.connected?.() === false;
  }

  async acquireSlot(key: string, limits: DestinationLimits, leaseId: string): Promise<SlotAnswer> {
    const answer = (await this.call('acquireSlot', [key, limits, leaseId])) as SlotAnswer | undefined;
    if (answer && typeof answer.granted === 'boolean') return answer;
    if (!this.primaryGone()) {
      // Parked for a slot, the key waits for a freed notice: this one comes in any case.
      setTimeout(() => this.emitFreed(key), this.options.timeoutMs).unref();
      return { granted: false, reason: 'connection_limit' };
    }
    // The local share: this worker's own slots of the key, by rendezvous hashing.
    const held = [...this.localLeases.values()].filter((k) => k === key).length;
    if (this.localLeases.has(leaseId)) return { granted: true, lease: { key, id: leaseId } };
    if (held >= slotShare(key, limits.maxConnections, this.options.workers, this.options.index)) return { granted: false, reason: 'connection_limit' };
    this.localLeases.set(leaseId, key);
    return { granted: true, lease: { key, id: leaseId } };
  }

  /** The primary's slots are kept until released: its coordinator is the one process that grants them. */
  keepSlot(_lease: ConnectionLease): boolean {
    return true;
  }

  releaseSlot(lease: ConnectionLease): void {
    if (this.localLeases.delete(lease.id)) {
      this.emitFreed(lease.key);
      return;
    }
    this.oneWay('releaseSlot', [{ key: lease.key, id: lease.id }]);
  }

  async takeTokens(key: string, limits: DestinationLimits, wanted: number): Promise<TokenAnswer> {
    if (!limits.rate) return { granted: wanted };
    const answer = (await this.call('takeTokens', [key, limits, wanted])) as TokenAnswer | undefined;
    if (answer && typeof answer.granted === 'number') return answer;
    if (!this.primaryGone()) return { granted: 0, retryAt: this.now() + this.options.timeoutMs };
    const share = rateShare(key, limits.rate, this.options.workers, this.options.index);
    let bucket = this.buckets.get(key);
    if (bucket) bucket.update(share);
    else {
      if (this.buckets.size >= MAX_LOCAL_KEYS) this.buckets.delete(this.buckets.keys().next().value!);
      this.buckets.set(key, (bucket = new LocalBucket(share, this.now())));
    }
    return bucket.take(wanted, this.now());
  }

  returnTokens(key: string, limits: DestinationLimits, count: number): void {
    if (count > 0 && limits.rate) this.oneWay('returnTokens', [key, limits, count]);
  }

  onFreed(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Calls in progress are answered from the local share; nothing more is sent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.settle(undefined);
    }
    this.timedOut.clear();
  }

  /** The primary's answer, or undefined when it did not come within the time-out. */
  private call(op: CoordOp, args: readonly unknown[]): Promise<unknown> {
    if (this.closed) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((settle) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.timedOut.set(id, { op, args });
        // Bounded: the oldest late answers are no longer waited for.
        if (this.timedOut.size > MAX_LOCAL_KEYS) this.timedOut.delete(this.timedOut.keys().next().value!);
        settle(undefined);
      }, this.options.timeoutMs);
      this.pending.set(id, { op, args, timer, settle });
      this.options.channel.send({ tern: 'coord', id, op, args });
    });
  }

  private oneWay(op: CoordOp, args: readonly unknown[]): void {
    if (!this.closed) this.options.channel.send({ tern: 'coord', id: this.nextId++, op, args });
  }

  private onMessage(message: unknown): void {
    if (isCoordFreed(message)) return this.emitFreed(message.key);
    if (!isCoordReply(message)) return;
    const p = this.pending.get(message.id);
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(message.id);
      return p.settle(message.error === undefined ? message.result : undefined);
    }
    const late = this.timedOut.get(message.id);
    if (!late) return;
    this.timedOut.delete(message.id);
    this.undo(late.op, late.args, message.result);
  }

  /** A late grant, answered locally meanwhile: give it back to the primary. */
  private undo(op: CoordOp, args: readonly unknown[], result: unknown): void {
    if (op === 'acquireSlot' && (result as SlotAnswer | undefined)?.granted) {
      this.oneWay('releaseSlot', [(result as { lease: ConnectionLease }).lease]);
    }
    const granted = (result as TokenAnswer | undefined)?.granted;
    if (op === 'takeTokens' && typeof granted === 'number' && granted > 0) this.oneWay('returnTokens', [args[0], args[1], granted]);
  }

  private emitFreed(key: string): void {
    for (const listener of this.listeners) listener(key);
  }
}
