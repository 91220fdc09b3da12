import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SessionPool } from '../../../src/delivery/pool.js';
import type { DeliverySession } from '../../../src/delivery/index.js';

/**
 * Stands in for a DeliverySession (the pool's collaborator, not what is under test): it
 * says whether it is alive, how many transactions it carried, answers RSET as told and
 * records how it was ended.
 */
class Session {
  alive = true;
  ended?: 'quit' | 'destroy';
  private resetReply: (ok: boolean) => void = () => undefined;
  /** Resolves once the session has been ended, however. */
  readonly closed: Promise<void>;
  private close!: () => void;

  constructor(
    readonly deliveries = 1,
    /** false: RSET is answered only when `answerReset` is called. */
    private readonly resetAtOnce: boolean | 'fails' = true,
  ) {
    this.closed = new Promise((resolve) => (this.close = resolve));
  }

  reset(): Promise<boolean> {
    if (this.resetAtOnce === 'fails') return Promise.resolve(false);
    if (this.resetAtOnce) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => (this.resetReply = resolve));
  }

  answerReset(ok: boolean): void {
    this.resetReply(ok);
  }

  quit(): void {
    this.end('quit');
  }

  destroy(): void {
    this.end('destroy');
  }

  private end(how: 'quit' | 'destroy'): void {
    this.alive = false;
    this.ended ??= how;
    this.close();
  }

  get asSession(): DeliverySession {
    return this as unknown as DeliverySession;
  }
}

const pool = (idleMs = 60_000, maxDeliveries = 100) => new SessionPool(() => ({ idleMs, maxDeliveries }));
const HOP = 'mx.good.test|127.0.0.2|25|opportunistic||tern.test||smtp';
const OTHER = 'mx.other.test|127.0.0.4|25|opportunistic||tern.test||smtp';

describe('SessionPool: connection reuse as an operator configures it', () => {
  it('hands a session back for the same next hop and settings, never for another', async () => {
    const p = pool();
    const s = new Session();
    await p.give(HOP, s.asSession);
    assert.equal(p.size, 1);
    assert.equal(p.take(OTHER), undefined, 'a session for one host never carries mail for another');
    assert.equal(p.take(HOP), s.asSession);
    assert.equal(p.size, 0);
    assert.equal(p.take(HOP), undefined, 'a session is handed out once');
    assert.equal(s.ended, undefined);
  });

  it('QUITs a session that has carried max_deliveries_per_connection transactions instead of keeping it', async () => {
    const p = pool(60_000, 2);
    const once = new Session(1);
    const twice = new Session(2);
    await p.give(HOP, once.asSession);
    await p.give(HOP, twice.asSession);
    assert.equal(twice.ended, 'quit');
    assert.equal(once.ended, undefined);
    assert.equal(p.size, 1);
  });

  it("takes a route's max_deliveries_per_connection over outbound.ini's", async () => {
    const p = pool(60_000, 100);
    const s = new Session(1);
    await p.give(HOP, s.asSession, 1);
    assert.equal(s.ended, 'quit', 'max_deliveries_per_connection=1 on the route: one transaction per session');
    assert.equal(p.size, 0);
  });

  it('keeps nothing with idle_timeout=0: every session QUITs once its delivery is done', async () => {
    const p = pool(0);
    const s = new Session();
    await p.give(HOP, s.asSession);
    assert.equal(s.ended, 'quit');
    assert.equal(p.size, 0);
  });

  it('QUITs an idle session after idle_timeout, and no longer hands it out', async () => {
    const p = pool(20);
    const s = new Session();
    await p.give(HOP, s.asSession);
    // The pool's idle timer is unref'd (it must not keep a stopping daemon alive): the test keeps the process up itself.
    const alive = setInterval(() => undefined, 1000);
    try {
      await s.closed;
    } finally {
      clearInterval(alive);
    }
    assert.equal(s.ended, 'quit');
    assert.equal(p.size, 0);
    assert.equal(p.take(HOP), undefined);
  });

  it('never hands out a session whose RSET failed, or one the server closed while it waited', async () => {
    const p = pool();
    const refused = new Session(1, 'fails');
    await p.give(HOP, refused.asSession);
    assert.equal(p.size, 0, 'a session that fails its RSET is dropped');
    const died = new Session();
    await p.give(HOP, died.asSession);
    died.alive = false;
    assert.equal(p.take(HOP), undefined);
    assert.equal(p.size, 0);
  });

  it('counts a session being reset as open, but hands it out only once its RSET succeeded', async () => {
    const p = pool();
    const s = new Session(1, false);
    const given = p.give(HOP, s.asSession);
    assert.equal(p.size, 1, 'counted within concurrency_max while its RSET is in flight');
    assert.equal(p.take(HOP), undefined);
    s.answerReset(true);
    await given;
    assert.equal(p.take(HOP), s.asSession);
  });

  it('frees room under concurrency_max by closing an idle session first, and one being reset only when no idle one is left', async () => {
    const p = pool();
    const resetting = new Session(1, false);
    const idle = new Session();
    const pending = p.give(OTHER, resetting.asSession);
    await p.give(HOP, idle.asSession);
    assert.equal(p.size, 2);
    assert.equal(p.evictOne(), true);
    assert.equal(idle.ended, 'quit', 'the idle session goes first, with a QUIT');
    assert.equal(resetting.ended, undefined);
    assert.equal(p.evictOne(), true);
    assert.equal(resetting.ended, 'destroy', 'a session in the middle of its RSET is cut');
    assert.equal(p.evictOne(), false, 'nothing left to close');
    resetting.answerReset(true);
    await pending;
    assert.equal(p.size, 0, 'a session evicted during its RSET does not come back');
  });

  it('QUITs every idle session at shutdown', async () => {
    const p = pool();
    const sessions = [new Session(), new Session(), new Session()];
    await p.give(HOP, sessions[0].asSession);
    await p.give(HOP, sessions[1].asSession);
    await p.give(OTHER, sessions[2].asSession);
    p.closeAll();
    assert.deepEqual(sessions.map((s) => s.ended), ['quit', 'quit', 'quit']);
    assert.equal(p.size, 0);
  });
});
