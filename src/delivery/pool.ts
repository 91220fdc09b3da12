import type { DeliverySession } from './session.js';

interface Idle {
  readonly session: DeliverySession;
  readonly timer: NodeJS.Timeout;
}

/**
 * Idle sessions kept open after a transaction, by next hop and session settings, for the
 * next entry to the same destination (RSET between, at most max_deliveries_per_connection
 * transactions each, QUIT after idle_timeout).
 */
export class SessionPool {
  private readonly idle = new Map<string, Idle[]>();

  constructor(private readonly limits: () => { readonly idleMs: number; readonly maxDeliveries: number }) {}

  get size(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  take(key: string): DeliverySession | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const { session, timer } = list.pop()!;
      clearTimeout(timer);
      if (list.length === 0) this.idle.delete(key);
      if (session.alive) return session;
    }
    return undefined;
  }

  /** Takes a session back after a successful transaction, or closes it when it has done enough. */
  async give(key: string, session: DeliverySession, maxOverride?: number): Promise<void> {
    const { idleMs, maxDeliveries: globalMax } = this.limits();
    const maxDeliveries = maxOverride ?? globalMax;
    if (!session.alive || session.deliveries >= maxDeliveries || idleMs <= 0) return session.quit();
    if (!(await session.reset())) return;
    const timer = setTimeout(() => {
      const list = this.idle.get(key);
      const at = list?.findIndex((i) => i.session === session) ?? -1;
      if (list && at >= 0) list.splice(at, 1);
      if (list?.length === 0) this.idle.delete(key);
      session.quit();
    }, idleMs);
    timer.unref();
    const list = this.idle.get(key) ?? [];
    list.push({ session, timer });
    this.idle.set(key, list);
  }

  closeAll(): void {
    for (const list of this.idle.values()) {
      for (const { session, timer } of list) {
        clearTimeout(timer);
        session.quit();
      }
    }
    this.idle.clear();
  }
}
