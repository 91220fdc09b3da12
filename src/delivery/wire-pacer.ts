import type { Clock } from '../core/index.js';
import type { MessageRate } from '../cluster/index.js';

/** Destinations whose line is idle and past are forgotten once there are this many. */
const PRUNE_ABOVE = 1000;

interface Line {
  /** GCRA's theoretical arrival time of the next transaction, and the interval it is reckoned in. */
  tat: number;
  step: number;
  readonly waiting: { readonly rate: MessageRate; readonly go: () => void }[];
  timer?: NodeJS.Timeout;
}

/**
 * limits.ini's message rate, kept once more where the remote server sees it: at the start
 * of each transaction. The coordinator grants tokens at the rate, but an attempt takes
 * longer when it opens a session (DNS, connect, greeting, EHLO) than when it reuses one,
 * and a pause of the event loop delays some messages and not others, so messages
 * granted on time can reach the server bunched. Here the transactions of a destination
 * start one after the other, each at its turn by the same GCRA, reckoned when it actually
 * starts (a turn missed in a pause is not made up beyond the burst). It never waits for
 * long: the coordinator already let the messages go at the rate.
 */
export class WirePacer {
  private readonly lines = new Map<string, Line>();

  constructor(private readonly clock: Clock) {}

  /** Resolves when a transaction of `key` may start. */
  wait(key: string, rate: MessageRate): Promise<void> {
    let line = this.lines.get(key);
    if (!line) {
      if (this.lines.size > PRUNE_ABOVE) this.prune();
      line = { tat: this.clock.now(), step: rate.perMs / rate.count, waiting: [] };
      this.lines.set(key, line);
    }
    const l = line;
    return new Promise((go) => {
      l.waiting.push({ rate, go });
      this.drain(l);
    });
  }

  private drain(line: Line): void {
    if (line.timer) return;
    while (line.waiting.length > 0) {
      const { rate, go } = line.waiting[0];
      const now = this.clock.now();
      const step = rate.perMs / rate.count;
      // A rate changed live (limits.ini): the turns owed are counted at the new interval.
      if (step !== line.step) {
        line.tat = now + Math.max(0, line.tat - now) * (step / line.step);
        line.step = step;
      }
      const tat = Math.max(line.tat, now);
      const due = tat - (Math.max(1, rate.burst) - 1) * step;
      if (due > now) {
        line.timer = setTimeout(() => {
          line.timer = undefined;
          this.drain(line);
        }, due - now);
        return;
      }
      line.tat = tat + step;
      line.waiting.shift();
      go();
    }
  }

  private prune(): void {
    const now = this.clock.now();
    for (const [key, line] of this.lines) if (line.waiting.length === 0 && line.tat < now) this.lines.delete(key);
  }
}
