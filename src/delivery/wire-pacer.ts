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
    const { rate: admitted } = line.waiting[0];
    // Half the burst at the wire: the admission let the burst through already, and what
    // the wire must absorb is the jitter between grant and transaction; its full burst
    // again would let an opening second reach the server with the burst and then some.
    const rate = { ...admitted, burst: Math.max(1, Math.ceil(admitted.burst / 2)) };
    // Turns for everyone in the line at once: one call at a time per line, and a call to the
    // primary takes a while on a busy machine, so a turn a call would cap the rate. No slot
    // is ever taken on the wire key, so its connection limit is 0 (a finite count: it
    // crosses the IPC channel as JSON, where Infinity becomes null and the primary refuses it).
    void this.coordinator.takeTokens(wireKey(key), { maxConnections: 0, rate }, line.waiting.length).then(
      (answer) => {
        if (answer.granted > 0) {
          const going = line.waiting.splice(0, answer.granted);
          line.busy = false;
          for (const { go } of going) go();
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
        // The contract says a coordinator never rejects; should one, the turns are not worth holding mail for.
        const going = line.waiting.splice(0);
        line.busy = false;
        for (const { go } of going) go();
      },
    );
  }

  private prune(): void {
    for (const [key, line] of this.lines) if (line.waiting.length === 0 && !line.busy) this.lines.delete(key);
  }
}
