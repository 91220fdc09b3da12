import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';

export interface SpoolUsageOptions {
  /** A measurement is reused at least this long... */
  readonly minIntervalMs: number;
  /** ...and at least this many times as long as it took, so that walking stays a small share of the time. */
  readonly intervalFactor: number;
  /** A scrape that starts a walk waits this long for it before it answers with the previous figure. */
  readonly scrapeWaitMs: number;
  /** Files stat'ed at once. */
  readonly parallel: number;
  readonly now: () => number;
}

export const SPOOL_USAGE_DEFAULTS = { minIntervalMs: 30_000, intervalFactor: 10, scrapeWaitMs: 1000, parallel: 16 } as const;

export interface SpoolUsageSample {
  /** Bytes allocated on disk (st_blocks × 512) under the queue directory, directories included. */
  readonly bytes: number;
  readonly files: number;
  /** When the walk finished (epoch ms). */
  readonly at: number;
}

/**
 * The queue directory's size on disk, as `du` counts it, measured by walking the
 * directory with asynchronous opendir/lstat (the work is in libuv's threads; the event
 * loop handles one batch of names at a time). A big queue has a state file per
 * attempted entry, so a walk may take seconds: it runs at most once per
 * max(minIntervalMs, intervalFactor × its last duration), started by a scrape; see
 * sample() for which scrape waits for it.
 */
export class SpoolUsage {
  private last?: SpoolUsageSample;
  private nextAt = 0;
  private lastTookMs = 0;
  private running?: Promise<SpoolUsageSample | undefined>;
  private waiter: Promise<SpoolUsageSample | undefined> = Promise.resolve(undefined);

  constructor(
    private readonly root: string,
    private readonly options: SpoolUsageOptions,
  ) {}

  /**
   * The latest measurement. When one is due, a walk starts; the scrape that started it
   * waits for it (up to scrapeWaitMs) only if the last walk was quicker than that, so
   * that scrapes of a big queue answer at once with the previous figure.
   */
  async sample(): Promise<SpoolUsageSample | undefined> {
    if (!this.running && this.options.now() >= this.nextAt) {
      this.running = this.measure().finally(() => (this.running = undefined));
      this.waiter = this.last && this.lastTookMs >= this.options.scrapeWaitMs ? Promise.resolve(undefined) : this.waitFor(this.running);
    }
    // The gauges of one scrape share its wait; a later scrape finds it over.
    return (await this.waiter) ?? this.last;
  }

  private async waitFor(walk: Promise<SpoolUsageSample | undefined>): Promise<SpoolUsageSample | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([walk, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.options.scrapeWaitMs)))]);
    clearTimeout(timer);
    return waited;
  }

  private async measure(): Promise<SpoolUsageSample | undefined> {
    const started = this.options.now();
    let bytes = 0;
    let files = 0;
    const dirs = [this.root];
    const add = async (path: string) => {
      try {
        const st = await lstat(path);
        bytes += st.blocks * 512;
        files++;
        if (st.isDirectory()) dirs.push(path);
      } catch (err) {
        // Files come and go while the queue works: one removed since it was listed counts for nothing.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    };
    try {
      const root = await lstat(this.root);
      bytes += root.blocks * 512;
      while (dirs.length) {
        const path = dirs.pop()!;
        const dir = await opendir(path, { bufferSize: 256 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT' && path !== this.root) return undefined;
          throw err;
        });
        if (!dir) continue;
        let batch: Promise<void>[] = [];
        for await (const entry of dir) {
          batch.push(add(join(dir.path, entry.name)));
          if (batch.length >= this.options.parallel) {
            await Promise.all(batch);
            batch = [];
          }
        }
        await Promise.all(batch);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // Unreadable (permissions changed under the daemon): the gauge keeps its last value
        // rather than failing the whole scrape; the next walk tries again.
        this.nextAt = this.options.now() + this.options.minIntervalMs;
        return this.last;
      }
      // The queue directory went (shutdown, or removed by hand): nothing on disk.
    }
    const at = this.options.now();
    this.last = { bytes, files, at };
    this.lastTookMs = at - started;
    this.nextAt = at + Math.max(this.options.minIntervalMs, (at - started) * this.options.intervalFactor);
    return this.last;
  }
}
