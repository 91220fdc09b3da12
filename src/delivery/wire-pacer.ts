import type { Clock } from '../core/index.js';
import type { LimitCoordinator, MessageRate } from '../cluster/index.js';

/** Destinations whose line is idle are forgotten once there are this many. */
const PRUNE_ABOVE = 1000;

interface Line {
  readonly waiting: { readonly rate: MessageRate; readonly go: () => void }[];
  /** A turn is being asked for, or its time is awaited: the head of the line waits for it. */
  busy: boolean;
}

/** The coordinator's key of a destination's turns at the wire, apart from its admission tokens. */
export function wireKey(key: string): string {
  return `${key}#wire`;
}

/**
 * limits.ini's message rate, kept once more where the remote server sees it: at the start
 * of each transaction. The coordinator grants admission tokens at the rate, but an attempt
 * takes longer when it opens a session (DNS, connect, greeting, EHLO) than when it reuses
 * one, so messages granted on time can reach the server bunched. Here each transaction
 * also takes a turn of a second GCRA at the same rate and burst, reckoned when it actually
 * starts. The turns come from the same coordinator as the tokens, so that with `nodes=N`
 * the transactions of every worker share one line (a pacer per process would let four
 * workers' session set-ups bunch at the server together). It never waits for long: the
 * admission tokens already let the messages go at the rate.
 */
export class WirePacer {
  private readonly lines = new Map<string, Line>();

  constructor(
    private readonly clock: Clock,
    private readonly coordinator: LimitCoordinator,
  ) {}

  /** Resolves when a transaction of `key` may start. */
  wait(key: string, rate: MessageRate): Promise<void> {
    let line = this.lines.get(key);
    if (!line) {
      if (this.lines.size > PRUNE_ABOVE) this.prune();
      line = { waiting: [], busy: false };
      this.lines.set(key, line);
    }
    const l = line;
    return new Promise((go) => {
      l.waiting.push({ rate, go });
      this.drain(key, l);
    });
  }

  private drain(key: string, line: Line): void {
    if (line.busy || line.waiting.length === 0) return;
    line.busy = true;
    const { rate, go } = line.waiting[0];
    void this.coordinator.takeTokens(wireKey(key), { maxConnections: Infinity, rate }, 1).then(
      (answer) => {
        if (answer.granted > 0) {
          line.waiting.shift();
          line.busy = false;
          go();
          this.drain(key, line);
          return;
        }
        // Never a spin: at least a millisecond, at most one interval of the rate.
        const interval = rate.perMs / rate.count;
        const delay = Math.min(Math.max((answer.retryAt ?? 0) - this.clock.now(), 1), interval);
        setTimeout(() => {
          line.busy = false;
          this.drain(key, line);
        }, delay);
      },
      () => {
        // The contract says a coordinator never rejects; should one, the turn is not worth holding mail for.
        line.waiting.shift();
        line.busy = false;
        go();
        this.drain(key, line);
      },
    );
  }

  private prune(): void {
    for (const [key, line] of this.lines) if (line.waiting.length === 0 && !line.busy) this.lines.delete(key);
  }
}
