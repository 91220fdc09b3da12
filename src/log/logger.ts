import { pino, stdTimeFunctions } from 'pino';
import type { Logger, DestinationStream, Level } from 'pino';
import { LogOutput } from './log-output.js';

export type { Logger };

export interface LogOptions {
  readonly level?: string;
  readonly format?: 'json' | 'logfmt' | 'default';
  readonly prettyOnTty?: boolean;
  readonly destination?: DestinationStream;
}

// Haraka's level names, mapped onto pino's.
const LEVELS: Record<string, Level> = {
  data: 'trace', protocol: 'trace', trace: 'trace', debug: 'debug', info: 'info', notice: 'info',
  warn: 'warn', error: 'error', crit: 'fatal', alert: 'fatal', emerg: 'fatal', fatal: 'fatal',
};

/** pino's level for a configured level name (pino's own or Haraka's). */
export function pinoLevel(name: string | undefined): Level {
  return LEVELS[name ?? 'info'] ?? 'info';
}

/**
 * The daemon's logger: one structured record per event on stdout; JSON lines by default,
 * logfmt on request (config/log.ini), pretty and coloured when stdout is a terminal.
 */
export function createLogger(options: LogOptions = {}): Logger {
  // The daemon passes its own LogOutput, to switch formats on a reload.
  const dest = options.destination ?? new LogOutput({ format: options.format, prettyOnTty: options.prettyOnTty });
  return pino(
    {
      level: pinoLevel(options.level),
      base: { service: 'tern' },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}
