import { destination } from 'pino';
import type { DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';
import logfmt from 'logfmt';

export type LogFormat = 'json' | 'logfmt' | 'default';

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

/** One pino JSON line in another format; a line that does not parse is passed as it is. */
type Render = (line: string) => string;

function renderer(format: LogFormat, prettyOnTty: boolean, tty: boolean): Render | undefined {
  if (format === 'logfmt') return (line) => logfmt.stringify(flatten(JSON.parse(line) as Record<string, unknown>) as Record<string, string>) + '\n';
  if (format === 'default' || (prettyOnTty && tty)) {
    const pretty = prettyFactory({ colorize: tty });
    return (line) => pretty(line);
  }
  return undefined;
}

/** JSON lines are written at the latest this long after they are logged. */
const LOG_FLUSH_MS = 20;

/**
 * stdout for log records, in the format of the moment (config/log.ini `format`): pino
 * writes JSON lines, which are rendered here as logfmt or pretty text. Every format goes
 * through one writer, so a reload switches formats between two records with none lost
 * or reordered.
 *
 * Lines are written in batches: under load a write per record (two or more per message)
 * costs a thread-pool round trip each, more CPU than making the record. They wait until
 * 8 KiB are ready or LOG_FLUSH_MS has passed; pino writes what is left at exit.
 */
export class LogOutput implements DestinationStream {
  private readonly out = destination({ dest: 1, sync: false, minLength: 8 * 1024 });
  private render?: Render;
  private timer?: NodeJS.Timeout;
  // A flush while a write is still in flight does nothing (sonic-boom), so every burst of
  // records ends with one more flush after the last: nothing is left waiting.
  private trailing = false;

  constructor(
    options: { readonly format?: LogFormat; readonly prettyOnTty?: boolean } = {},
    private readonly tty = !!process.stdout.isTTY,
  ) {
    this.setFormat(options.format ?? 'json', options.prettyOnTty ?? true);
  }

  /** From the next record on. */
  setFormat(format: LogFormat, prettyOnTty = true): void {
    this.render = renderer(format, prettyOnTty, this.tty);
  }

  write(chunk: string): void {
    const render = this.render;
    if (!render) this.out.write(chunk);
    else {
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        let text: string;
        try {
          text = render(line);
        } catch {
          text = line + '\n';
        }
        this.out.write(text);
      }
    }
    this.trailing = true;
    this.timer ??= setTimeout(this.fire, LOG_FLUSH_MS).unref();
  }

  flush(cb?: (err?: Error) => void): void {
    this.out.flush(cb);
  }

  private readonly fire = (): void => {
    this.out.flush();
    this.timer = this.trailing ? setTimeout(this.fire, LOG_FLUSH_MS).unref() : undefined;
    this.trailing = false;
  };
}
