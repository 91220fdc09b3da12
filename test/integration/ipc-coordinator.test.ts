import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { CoordinatorHost } from '../../src/cluster/index.js';
import type { ConnectionLease, DestinationLimits, IpcChannel, LimitCoordinator, SlotAnswer, TokenAnswer } from '../../src/cluster/index.js';

/**
 * The far end of the bridge: a small machine-wide coordinator (connection slots counted
 * per key, idempotent by lease id; tokens from a fixed stock), with a switch that makes
 * it slow to answer, as a primary busy elsewhere would be.
 */
class TestCoordinator implements LimitCoordinator {
  readonly leases = new Map<string, string>();
  stock = 0;
  returned = 0;
  delayMs = 0;
  private readonly listeners = new Set<(key: string) => void>();

  private later<T>(value: () => T): Promise<T> {
    return this.delayMs ? new Promise((r) => setTimeout(() => r(value()), this.delayMs)) : Promise.resolve(value());
  }

  acquireSlot(key: string, limits: DestinationLimits, leaseId: string): Promise<SlotAnswer> {
    return this.later(() => {
      if (this.leases.has(leaseId)) return { granted: true as const, lease: { key, id: leaseId } };
      const held = [...this.leases.values()].filter((k) => k === key).length;
      if (held >= limits.maxConnections) return { granted: false as const, reason: 'connection_limit' as const };
      this.leases.set(leaseId, key);
      return { granted: true as const, lease: { key, id: leaseId } };
    });
  }

  keepSlot(): boolean {
    return true;
  }

  releaseSlot(lease: ConnectionLease): void {
    if (this.leases.delete(lease.id)) for (const l of this.listeners) l(lease.key);
  }

  takeTokens(_key: string, _limits: DestinationLimits, wanted: number): Promise<TokenAnswer> {
    return this.later(() => {
      const granted = Math.min(wanted, this.stock);
      this.stock -= granted;
      return granted ? { granted } : { granted: 0, retryAt: Date.now() + 1000 };
    });
  }

  returnTokens(_key: string, _limits: DestinationLimits, count: number): void {
    this.returned += count;
    this.stock += count;
  }

  onFreed(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async close(): Promise<void> {}
}

const CHILD = join(import.meta.dirname, '../helpers/coordinator-child.js');

/** A worker process with an IPC channel, as node:cluster forks one, running the real IpcCoordinator. */
class Worker {
  readonly child: ChildProcess;
  readonly channel: IpcChannel;
  readonly freed: string[] = [];
  private rid = 0;
  readonly up: Promise<unknown>;

  constructor(workers: number, index: number, timeoutMs: number) {
    this.child = fork(CHILD, [String(workers), String(index), String(timeoutMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const child = this.child;
    this.channel = {
      send: (m) => void (child.connected && child.send(m as object)),
      onMessage: (l) => {
        child.on('message', l);
        return () => void child.off('message', l);
      },
    };
    child.on('message', (m: { tern?: string; key?: string }) => m.tern === 'test-freed' && this.freed.push(m.key!));
    this.up = new Promise((resolve) => child.on('message', (m: { tern?: string }) => m.tern === 'test-up' && resolve(m)));
  }

  do(op: string, fields: Record<string, unknown>): Promise<unknown> {
    const rid = ++this.rid;
    return new Promise((resolve) => {
      const on = (m: { tern?: string; rid?: number; result?: unknown }) => {
        if (m.tern !== 'test-done' || m.rid !== rid) return;
        this.child.off('message', on);
        resolve(m.result);
      };
      this.child.on('message', on);
      this.child.send({ tern: 'test-do', rid, op, ...fields });
    });
  }

  acquire(key: string, limits: DestinationLimits, leaseId: string) {
    return this.do('acquire', { key, limits, leaseId }) as Promise<SlotAnswer>;
  }
}

async function until(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('IPC coordination between worker processes and the primary (nodes=N)', () => {
  const children: Worker[] = [];
  const spawn = async (workers: number, index: number, timeoutMs: number, host: CoordinatorHost) => {
    const w = new Worker(workers, index, timeoutMs);
    children.push(w);
    // As the primary does (daemon/cluster-primary.ts): a worker that exits is detached.
    const detach = host.attach(w.channel);
    w.child.once('exit', detach);
    await w.up;
    return w;
  };
  after(() => {
    for (const w of children) w.child.kill('SIGKILL');
  });

  it('holds a connection limit across processes, tells every worker when a slot frees, and frees a dead worker\'s slots', async () => {
    const coordinator = new TestCoordinator();
    const host = new CoordinatorHost(coordinator);
    const limits = { maxConnections: 2 };
    const [a, b, c] = [await spawn(3, 0, 2000, host), await spawn(3, 1, 2000, host), await spawn(3, 2, 2000, host)];
    assert.equal((await a.acquire('orange.fr', limits, 'a1')).granted, true);
    assert.equal((await b.acquire('orange.fr', limits, 'b1')).granted, true);
    assert.deepEqual(await c.acquire('orange.fr', limits, 'c1'), { granted: false, reason: 'connection_limit' });
    assert.equal((await a.acquire('orange.fr', limits, 'a1')).granted, true, 'the same lease id again: still one slot');
    assert.equal(coordinator.leases.size, 2);

    await a.do('release', { key: 'orange.fr', leaseId: 'a1' });
    await until(() => c.freed.includes('orange.fr'));
    assert.equal((await c.acquire('orange.fr', limits, 'c2')).granted, true);

    // A worker killed while it holds a slot: its slot is free as soon as it is gone, and the others hear of it.
    assert.deepEqual(await a.acquire('orange.fr', limits, 'a2'), { granted: false, reason: 'connection_limit' });
    const gone = once(c.child, 'exit');
    c.child.kill('SIGKILL');
    await gone;
    assert.equal(coordinator.leases.has('c2'), false);
    await until(() => a.freed.filter((k) => k === 'orange.fr').length === 2);
    assert.equal((await a.acquire('orange.fr', limits, 'a3')).granted, true);
    host.close();
  });

  it('while the primary is slow, answers "not now" (never over the limit), gives late grants back, and asks again', async () => {
    const coordinator = new TestCoordinator();
    const host = new CoordinatorHost(coordinator);
    const workers = [await spawn(2, 0, 200, host), await spawn(2, 1, 200, host)];
    coordinator.delayMs = 600;
    const limits = { maxConnections: 3 };
    for (const [i, w] of workers.entries()) {
      for (let n = 0; n < 2; n++) assert.deepEqual(await w.acquire('yahoo.com', limits, `w${i}-${n}`), { granted: false, reason: 'connection_limit' }, 'no slot from a share the primary does not know of');
    }
    // The primary's late answers are undone: no slot stays held at the far end for a call answered "not now".
    await until(() => coordinator.leases.size === 0, 5000);
    for (const w of workers) await until(() => w.freed.includes('yahoo.com'), 5000);

    coordinator.stock = 100;
    const rate = { maxConnections: 10, rate: { count: 10, perMs: 60_000, burst: 4 } };
    for (const w of workers) {
      const answer = (await w.do('take', { key: 'gmail.com', limits: rate, wanted: 10 })) as TokenAnswer;
      assert.equal(answer.granted, 0, 'no tokens beside the primary\'s count');
      assert.ok((answer.retryAt ?? 0) > Date.now() - 1000, 'asked again after a while');
    }
    await until(() => coordinator.returned > 0 && coordinator.stock === 100, 5000);
    assert.equal(coordinator.stock, 100, 'tokens the primary granted late are returned');
    host.close();
  });
});
