import type { DeliverySession } from './session.js';

interface Idle {
  readonly session: DeliverySession;
  timer?: NodeJS.Timeout;
  /** False while its RSET is in flight: counted as open, not yet handed out. */
  ready: boolean;
}

/**
 * Idle sessions kept open after a transaction, by next hop and session settings, for the
 * next entry to the same destination (RSET between, at most max_deliveries_per_connection
 * transactions each, QUIT after idle_timeout). Sessions being reset count as open, so that
 * the agent can keep the total within concurrency_max.
 */
export class SessionPool {
  private readonly idle = new Map<string, Idle[]>();
  private closing?: Promise<void>;

  constructor(private readonly limits: () => { readonly idleMs: number; readonly maxDeliveries: number }) {}

  get size(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  private drop(key: string, item: Idle): void {
    const list = this.idle.get(key);
    const at = list?.indexOf(item) ?? -1;
    if (list && at >= 0) list.splice(at, 1);
    if (list?.length === 0) this.idle.delete(key);
    clearTimeout(item.timer);
  }

  take(key: string): DeliverySession | undefined {
    if (this.closed) return undefined;
    for (const item of [...(this.idle.get(key) ?? [])].reverse()) {
      if (!item.ready) continue;
      this.drop(key, item);
      if (item.session.alive) return item.session;
    }
    return undefined;
  }

  /** Takes a session back after a successful transaction, or closes it when it has done enough. */
  async give(key: string, session: DeliverySession, maxOverride?: number): Promise<void> {
    const { idleMs, maxDeliveries: globalMax } = this.limits();
    const maxDeliveries = maxOverride ?? globalMax;
    // A closed pool keeps nothing: the session is ended politely instead.
    if (this.closed || !session.alive || session.deliveries >= maxDeliveries || idleMs <= 0) return session.quit();
    const item: Idle = { session, ready: false };
    const list = this.idle.get(key) ?? [];
    list.push(item);
    this.idle.set(key, list);
    if (!(await session.reset()) || !this.idle.get(key)?.includes(item)) {
      this.drop(key, item);
      return;
    }
    item.ready = true;
    item.timer = setTimeout(() => {
      this.drop(key, item);
      session.quit();
    }, idleMs);
    item.timer.unref();
  }

  /** Closes one idle session (the oldest ready one, else one being reset); false when there is none. */
  evictOne(): boolean {
    let victim: { key: string; item: Idle } | undefined;
    for (const [key, list] of this.idle) {
      for (const item of list) {
        if (!victim || (item.ready && !victim.item.ready)) victim = { key, item };
        if (victim.item.ready) break;
      }
      if (victim?.item.ready) break;
    }
    if (!victim) return false;
    this.drop(victim.key, victim.item);
    if (victim.item.ready) victim.item.session.quit();
    else victim.item.session.destroy();
    return true;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** QUITs every idle session and keeps no session from now on. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closeAll();
      this.closing = Promise.resolve();
    }
    return this.closing;
  }

  /** Drops every idle session without a QUIT, and keeps no session from now on. */
  destroy(): void {
    this.closing ??= Promise.resolve();
    for (const [key, list] of [...this.idle]) {
      for (const item of [...list]) {
        this.drop(key, item);
        item.session.destroy();
      }
    }
  }

  closeAll(): void {
    for (const [key, list] of [...this.idle]) {
      for (const item of [...list]) {
        this.drop(key, item);
        item.session.quit();
      }
    }
  }
}
