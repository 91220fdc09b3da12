import { Writable } from 'node:stream';
import { pino, destination, stdTimeFunctions } from 'pino';
import type { Logger, DestinationStream, Level } from 'pino';
import { PinoPretty } from 'pino-pretty';
import logfmt from 'logfmt';

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

/** Flattens nested fields to dotted keys (`response.code=550`, `addresses.0.port=25`), since logfmt is flat. */
function flatten(value: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(value)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) out[key] = v.join(',');
    else if (v && typeof v === 'object') flatten(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

/** A destination that rewrites pino's JSON lines as logfmt lines. */
function logfmtDestination(target: NodeJS.WritableStream): DestinationStream {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const lines = chunk.toString('utf8').split('\n').filter(Boolean);
      for (const line of lines) {
        try {
          target.write(logfmt.stringify(flatten(JSON.parse(line) as Record<string, unknown>) as Record<string, string>) + '\n');
        } catch {
          target.write(line + '\n');
        }
      }
      done();
    },
  }) as unknown as DestinationStream;
}

/** JSON lines are written at the latest this long after they are logged. */
const LOG_FLUSH_MS = 20;

/**
 * stdout for JSON lines, written in batches: under load a write per record (two or more
 * per message) costs a thread-pool round trip each, more CPU than making the record.
 * Lines wait until 8 KiB are ready or LOG_FLUSH_MS has passed; pino writes what is
 * left when the process exits.
 */
function batchedStdout(): { dest: DestinationStream; logged: () => void } {
  const dest = destination({ dest: 1, sync: false, minLength: 8 * 1024 });
  let timer: NodeJS.Timeout | undefined;
  // A flush while a write is still in flight does nothing (sonic-boom), so every burst of
  // records ends with one more flush after the last: nothing is left waiting.
  let trailing = false;
  const fire = () => {
    dest.flush();
    timer = trailing ? setTimeout(fire, LOG_FLUSH_MS).unref() : undefined;
    trailing = false;
  };
  return {
    dest,
    logged: () => {
      trailing = true;
      timer ??= setTimeout(fire, LOG_FLUSH_MS).unref();
    },
  };
}

/**
 * The daemon's logger: one structured record per event on stdout; JSON lines by default,
 * logfmt on request (config/log.ini), pretty and coloured when stdout is a terminal.
 */
export function createLogger(options: LogOptions = {}): Logger {
  let dest = options.destination;
  let logged: (() => void) | undefined;
  if (!dest) {
    const format = options.format ?? 'json';
    if (format === 'logfmt') dest = logfmtDestination(process.stdout);
    else if (format === 'default' || (options.prettyOnTty !== false && process.stdout.isTTY)) dest = PinoPretty({ colorize: !!process.stdout.isTTY, destination: 1 });
    else ({ dest, logged } = batchedStdout());
  }
  return pino(
    {
      level: pinoLevel(options.level),
      base: { service: 'tern' },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          logged?.();
          return method.apply(this, args);
        },
      },
    },
    dest,
  );
}
