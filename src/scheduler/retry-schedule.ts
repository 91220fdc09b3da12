import type { OutboundConfig } from '../config/index.js';

/**
 * How long to wait after the n-th temporary failure, in seconds, or undefined when the
 * entry has had all the retries it gets. With `temp_fail_intervals` the list decides;
 * without it, Haraka's backoff: 2^(n+5) seconds, up to `maxTempFailures` failures.
 */
export class RetrySchedule {
  constructor(
    private readonly intervals: readonly number[] | undefined,
    private readonly maxTempFailures: number,
  ) {}

  static fromConfig(cfg: OutboundConfig): RetrySchedule {
    return new RetrySchedule(cfg.temp_fail_intervals, cfg.maxTempFailures);
  }

  delayAfter(tempFailures: number): number | undefined {
    if (tempFailures < 1) return 0;
    if (this.intervals) return this.intervals[tempFailures - 1];
    if (tempFailures > this.maxTempFailures) return undefined;
    return 2 ** (tempFailures + 5);
  }
}
