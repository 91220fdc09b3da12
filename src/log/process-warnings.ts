import type { Logger } from './logger.js';

/** Where process warnings go while Tern runs, and how to give them back. */
export interface WarningRoute {
  /** From now on each warning is a structured record of this logger (those held so far first). */
  attach(logger: Logger): void;
  /** Puts back the listeners that were there before. */
  restore(): void;
}

/**
 * Takes Node's process warnings (TimeoutOverflowWarning, DeprecationWarning, …) away from
 * Node's own listener, which prints free text, so that the daemon's output stays one
 * JSON record a line: each becomes a `process warning` record at level warn. Warnings
 * raised before the logger exists (while plugins load) are held and logged once it does.
 */
export function routeProcessWarnings(): WarningRoute {
  const previous = process.listeners('warning');
  const held: Error[] = [];
  let logger: Logger | undefined;
  const record = (w: Error & { code?: string; detail?: string }) =>
    logger!.warn({ warning: { name: w.name, code: w.code, message: w.message, detail: w.detail } }, 'process warning');
  const onWarning = (w: Error) => (logger ? record(w) : held.push(w));
  process.removeAllListeners('warning');
  process.on('warning', onWarning);
  return {
    attach(l) {
      logger = l;
      for (const w of held.splice(0)) record(w);
    },
    restore() {
      process.off('warning', onWarning);
      for (const l of previous) process.on('warning', l as (w: Error) => void);
    },
  };
}
