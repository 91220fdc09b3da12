import { pino, destination, stdTimeFunctions } from 'pino';
import type { Logger, DestinationStream } from 'pino';

export type { Logger };

/** The daemon's logger: JSON lines, one structured record per event, on stdout unless told otherwise. */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'tern' },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? destination({ dest: 1, sync: false }),
  );
}
