import { localError, TernError } from '../core/index.js';
import type { Closable } from '../core/index.js';
import type { Logger } from '../log/index.js';

/** One step of the shutdown sequence, named for its log record. */
export interface ShutdownStep {
  readonly step: string;
  run(): unknown;
}


/**
 * Runs each step in turn, each in its own try/catch: a step that fails is logged (a
 * structured record naming the step) and the next one runs, so that the sequence always
 * reaches its end (BullMQ's worker close, undici's close-and-destroy).
 */
export async function runShutdownSteps(steps: readonly ShutdownStep[], logger: Logger): Promise<{ failed: string[] }> {
  const failed: string[] = [];
  for (const { step, run } of steps) {
    try {
      await run();
    } catch (err) {
      failed.push(step);
      const e = err as Error & { code?: string };
      logger.error({ step, err: { message: e?.message ?? String(err), code: e?.code }, reply: err instanceof TernError ? err.reply : localError() }, 'shutdown step failed; going on');
    }
  }
  return { failed };
}

/** close() within `ms`; past that, destroy(). Resolves true when close() finished in time. */
export async function closeWithin(part: Closable, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  // Not unref'd: the bound is what shutdown waits for, and it is cleared as soon as close() ends.
  try {
    const inTime = await Promise.race([part.close().then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
    if (!inTime) part.destroy();
    return inTime;
  } catch (err) {
    // A close() that failed leaves the part to be destroyed, and the failure to the step's log.
    part.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export interface LifecycleHooks {
  /** SIGHUP: reload and flush. */
  hangup(): void;
  /** The shutdown sequence; `stopped` resolves after it, whatever happened in it. */
  steps(): readonly ShutdownStep[];
  /** Runs last, after the steps (a failure here is logged too). */
  finish(): Promise<void> | void;
  readonly logger: Logger;
  readonly handleSignals: boolean;
}

/** Signals, shutdown once, and the `stopped` promise. */
export class Lifecycle {
  readonly stopped: Promise<void>;
  private markStopped!: () => void;
  private stopping?: Promise<void>;

  constructor(private readonly hooks: LifecycleHooks) {
    this.stopped = new Promise<void>((r) => (this.markStopped = r));
    if (hooks.handleSignals) {
      process.on('SIGHUP', this.onHup);
      process.on('SIGTERM', this.onTerm);
      process.on('SIGINT', this.onTerm);
    }
  }

  hangup(): void {
    this.hooks.hangup();
  }

  private readonly onHup = () => this.hangup();

  private readonly onTerm = (signal: NodeJS.Signals) => {
    this.hooks.logger.info({ signal }, 'shutting down');
    void this.shutdown();
  };

  /** Idempotent: every call gets the one shutdown. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await runShutdownSteps(
          [
            ...this.hooks.steps(),
            { step: 'signals', run: () => this.releaseSignals() },
            { step: 'finish', run: () => this.hooks.finish() },
          ],
          this.hooks.logger,
        );
      } finally {
        this.markStopped();
      }
    })();
    return this.stopping;
  }

  private releaseSignals(): void {
    if (!this.hooks.handleSignals) return;
    process.off('SIGHUP', this.onHup);
    process.off('SIGTERM', this.onTerm);
    process.off('SIGINT', this.onTerm);
  }
}
