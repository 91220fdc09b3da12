import type { Clock } from '../core/index.js';
import type { MessageRate } from '../cluster/index.js';

/** Destinations whose pace is past are forgotten once there are this many. */
const PRUNE_ABOVE = 1000;

/**
 * limits.ini's message rate, kept once more where the remote server sees it: at the start
 * of each transaction. The coordinator grants tokens at the rate, but an attempt takes
 * longer when it opens a session (DNS, connect, greeting, EHLO) than when it reuses one,
 * so messages granted on time can reach the server bunched: the first of a burst late,
 * those after it on time. Here each transaction of a destination waits for its own turn
 * (the same GCRA, local to the process), so that bunching is smoothed out before MAIL
 * FROM. It never waits for long: the coordinator already let the messages go at the rate,
 * so each one is at most a few intervals behind its turn.
 */
export class WirePacer {
  private readonly tats = new Map<string, { tat: number; step: number }>();

  constructor(private readonly clock: Clock) {}

  /** Takes the next turn of `key` and resolves when it has come. */
  wait(key: string, rate: MessageRate): Promise<void> {
    const now = this.clock.now();
    const step = rate.perMs / rate.count;
    const tolerance = (Math.max(1, rate.burst) - 1) * step;
    const known = this.tats.get(key);
    // A rate changed live (limits.ini): the turns owed are counted at the new interval.
    const tat = known ? now + Math.max(0, known.tat - now) * (step / known.step) : now;
    this.tats.set(key, { tat: tat + step, step });
    if (this.tats.size > PRUNE_ABOVE) for (const [k, t] of this.tats) if (t.tat < now) this.tats.delete(k);
    const due = tat - tolerance;
    if (due <= now) return Promise.resolve();
    return new Promise((resolve) => setTimeout(resolve, due - now));
  }
}
