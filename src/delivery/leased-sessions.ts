import type { DeliverySession } from './session.js';

interface Held {
  /** The next hop and session settings it was opened for (agent.ts's pool key). */
  readonly key: string;
  readonly session: DeliverySession;
  /** Its RSET, when one was needed after the last transaction. */
  readonly ready: Promise<boolean>;
}

/**
 * Idle sessions of destinations under limits.ini, each kept with the connection slot
 * (lease) it was opened under, rather than in the shared pool: a slot is one session, so
 * the next attempt holding the slot reuses that very session, and a session never
 * outlives its slot (the scheduler gives a slot back only after end() has closed it).
 */
export class LeasedSessions {
  private readonly held = new Map<string, Held>();

  get size(): number {
    return this.held.size;
  }

  /**
   * The slot's idle session when it serves the same next hop and is still usable; else
   * the slot's session (if any) is ended first, and this resolves once it has closed, so
   * that a new one never opens beside it.
   */
  async take(leaseId: string, key: string): Promise<DeliverySession | undefined> {
    const held = this.held.get(leaseId);
    if (!held) return undefined;
    this.held.delete(leaseId);
    if (held.key === key && (await held.ready) && held.session.alive) return held.session;
    held.session.quit();
    await held.session.whenClosed();
    return undefined;
  }

  /** After a transaction: keeps the session with its slot, or ends it and resolves once it has closed. */
  async keep(leaseId: string, key: string, session: DeliverySession, reusable: boolean): Promise<void> {
    if (reusable && session.alive) {
      this.held.set(leaseId, { key, session, ready: session.reset() });
      return;
    }
    if (session.alive) session.quit();
    else session.destroy();
    await session.whenClosed();
  }

  /** Ends the slot's idle session (QUIT) and resolves once it has closed. */
  async end(leaseId: string): Promise<void> {
    const held = this.held.get(leaseId);
    if (!held) return;
    this.held.delete(leaseId);
    held.session.quit();
    await held.session.whenClosed();
  }

  /** QUITs every idle session (shutdown). */
  closeAll(): void {
    for (const id of [...this.held.keys()]) void this.end(id);
  }

  destroyAll(): void {
    for (const held of this.held.values()) held.session.destroy();
    this.held.clear();
  }
}
