import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/index.js';
import type { IpcChannel } from '../cluster/index.js';
import type { ShardSlot } from './cluster-plan.js';
import { isWorkerReady, workerEnv } from './worker-env.js';

/** Restarts within this window count towards the backoff; a worker alive longer starts afresh. */
const CRASH_WINDOW_MS = 60_000;
const FIRST_RESTART_MS = 250;
const MAX_RESTART_MS = 30_000;

interface Running {
  readonly slot: ShardSlot;
  readonly index: number;
  worker?: Worker;
  ready: boolean;
  everReady: boolean;
  /** Times of the deaths within CRASH_WINDOW_MS, for the backoff. */
  deaths: number[];
  restarts: number;
  restartTimer?: NodeJS.Timeout;
  /** Set when a worker that takes no mail finished its shard (exit 0): not restarted. */
  done: boolean;
}

/** A worker as the admin API and the coordination see it. */
export interface WorkerView {
  readonly slot: ShardSlot;
  readonly pid?: number;
  readonly up: boolean;
  /** A shard no worker owns any more, delivered to the end: nothing to ask. */
  readonly done: boolean;
}

/**
 * Forks one node:cluster worker per shard slot and keeps it running: a worker that dies is
 * forked again for the same shard, after a backoff that doubles with each death within a
 * minute (250 ms up to 30 s), so a worker that crashes at start does not spin. Every death
 * and restart is a log record. Emits `channel` (worker channel, slot) for each forked
 * worker and `gone` (channel) when it exits, for the coordination host.
 */
export class WorkerSupervisor extends EventEmitter {
  private readonly running: Running[];
  private stopping = false;

  constructor(
    slots: readonly ShardSlot[],
    private readonly logger: Logger,
  ) {
    super();
    this.running = slots.map((slot, index) => ({ slot, index, ready: false, everReady: false, deaths: [], restarts: 0, done: false }));
  }

  get workers(): readonly WorkerView[] {
    return this.running.map((r) => ({ slot: r.slot, pid: r.worker?.process.pid, up: r.ready && !!r.worker && !r.worker.isDead(), done: r.done }));
  }

  /**
   * Forks every worker; resolves with the listeners' addresses once each that takes mail
   * listens. A worker that exits before that fails the start (with its exit code).
   */
  start(): Promise<{ host: string; port: number }[]> {
    return new Promise((resolve, reject) => {
      let addresses: { host: string; port: number }[] | undefined;
      let waiting = this.running.filter((r) => r.slot.listen).length;
      for (const r of this.running) {
        this.fork(r, {
          ready: (a) => {
            addresses ??= a.length ? a : undefined;
            if (r.slot.listen && --waiting === 0) resolve(addresses ?? []);
          },
          failed: (code) => reject(Object.assign(new Error(`worker of shard ${r.slot.label} exited (${code}) before it listened; the start is abandoned`), { exitCode: typeof code === 'number' && code > 0 ? code : 1 })),
        });
      }
    });
  }

  /** SIGHUP to every worker: each flushes and reloads. */
  signalAll(signal: NodeJS.Signals): void {
    for (const r of this.running) if (r.worker && !r.worker.isDead()) r.worker.process.kill(signal);
  }

  /**
   * SIGTERM to every worker; each drains up to its shutdown_timeout. Past `boundMs` the
   * workers still running are killed (their queue stays on disk).
   */
  async stop(boundMs: number): Promise<void> {
    this.stopping = true;
    const alive = this.running.filter((r) => r.worker && !r.worker.isDead());
    for (const r of this.running) clearTimeout(r.restartTimer);
    const exits = alive.map((r) => new Promise<void>((res) => (r.worker!.isDead() ? res() : r.worker!.once('exit', () => res()))));
    for (const r of alive) r.worker!.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([Promise.all(exits).then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), boundMs)))]);
    clearTimeout(timer);
    if (inTime) return;
    for (const r of alive) {
      if (r.worker && !r.worker.isDead()) {
        this.logger.error({ shard: r.slot.shard ?? r.slot.label, pid: r.worker.process.pid, bound_ms: boundMs }, 'worker did not stop in time; killed');
        r.worker.process.kill('SIGKILL');
      }
    }
    await Promise.all(exits);
  }

  private fork(r: Running, start?: { ready: (a: { host: string; port: number }[]) => void; failed: (code: number | string) => void }): void {
    const worker = cluster.fork(workerEnv({ slot: r.slot, workers: this.running.length, index: r.index }));
    r.worker = worker;
    r.ready = false;
    const channel: IpcChannel = {
      send: (m) => {
        if (worker.isConnected()) worker.send(m as object, undefined, () => undefined);
      },
      onMessage: (listener) => {
        worker.on('message', listener);
        return () => void worker.off('message', listener);
      },
    };
    this.emit('channel', channel, r.slot);
    worker.on('message', (m: unknown) => {
      if (!isWorkerReady(m)) return;
      r.ready = true;
      r.everReady = true;
      start?.ready([...m.addresses]);
    });
    worker.once('exit', (code, signal) => {
      r.ready = false;
      this.emit('gone', channel);
      if (this.stopping) return;
      if (start && r.slot.listen && !r.everReady) return start.failed(signal ?? code);
      if (!r.slot.listen && code === 0) {
        r.done = true;
        return this.logger.info({ shard: r.slot.shard ?? r.slot.label, dir: r.slot.dir }, 'shard delivered; its worker is not restarted');
      }
      this.restart(r, code, signal);
    });
  }

  private restart(r: Running, code: number | null, signal: string | null): void {
    const now = Date.now();
    r.deaths = [...r.deaths.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const delay = Math.min(MAX_RESTART_MS, FIRST_RESTART_MS * 2 ** (r.deaths.length - 1));
    this.logger.warn({ shard: r.slot.shard ?? r.slot.label, pid: r.worker?.process.pid, code, signal, restart_in_ms: delay, deaths_last_minute: r.deaths.length }, 'worker died; restarting it');
    r.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.fork(r);
      r.restarts++;
      this.logger.info({ shard: r.slot.shard ?? r.slot.label, pid: r.worker?.process.pid, restarts: r.restarts }, 'worker restarted');
    }, delay);
  }
}

