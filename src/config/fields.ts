import { z } from 'zod';
import { parseDuration, parseTempFailIntervals } from './durations.js';

// ini gives strings (and booleans for bare true/false); these fields coerce and validate
// in one place so that a schema is both the validator and the TypeScript type. Every
// number a field yields has a range, given where the key is declared: a value out of it
// is refused at start, on reload and by `tern config check`, naming file, key and value.

/**
 * The longest duration, in seconds, of a setting that arms a timer: Node holds a delay in
 * a signed 32-bit count of milliseconds, and a longer one (or one that does not fit)
 * fires at once, after a TimeoutOverflowWarning (2^31 - 1 ms, about 24.8 days).
 */
export const TIMER_MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * The longest a message may wait in the queue, and so the longest retry interval or
 * warning delay that can matter. RFC 5321 §4.5.4.1 asks for at least 4-5 days; a month
 * is far beyond what any sender still waits for, and keeps every date derived from it
 * (Will-Retry-Until, expiry) well within range.
 */
export const QUEUE_MAX_SECONDS = 30 * 86400;

/** A span as operators write it: `90s`, `5m`, `2h`, `1.5d`. */
export function spanText(seconds: number): string {
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size) return `${+(seconds / size).toFixed(2)}${unit}`;
  }
  return `${+seconds.toFixed(3)}s`;
}

export const bool = (fallback: boolean) =>
  z
    .union([z.boolean(), z.enum(['true', 'false', 'yes', 'no', '1', '0', 'on', 'off'])])
    .transform((v) => v === true || v === 'true' || v === 'yes' || v === '1' || v === 'on')
    .default(fallback);

export const wholeNumber = (min: number, max: number) =>
  z
    .union([z.number(), z.string().regex(/^\s*\d+\s*$/, `expected a whole number from ${min} to ${max}`)])
    .transform(Number)
    .pipe(
      z
        .number()
        .int(`expected a whole number from ${min} to ${max}`)
        .min(min, `expected a whole number from ${min} to ${max}`)
        .max(max, `expected a whole number from ${min} to ${max}`),
    );

/** A count from `min` to `max`. */
export const int = (fallback: number, min: number, max: number) => wholeNumber(min, max).default(fallback);

/** A count from `min` to `max`, or absent (then something else decides). */
export const optionalInt = (min: number, max: number) => wholeNumber(min, max).optional();

/** Seconds from `min` to `max`; accepts a bare number or a number with s/m/h/d. */
export const seconds = (fallback: string | number, min: number, max: number) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const s = typeof v === 'number' ? v : parseDuration(v);
      if (s === undefined || s < min || s > max) {
        const range = min === 0 ? `up to ${spanText(max)}` : `from ${spanText(min)} to ${spanText(max)}`;
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a duration ${range} (such as 30, 30s, 5m, 2h or 5d)` });
        return z.NEVER;
      }
      return s;
    })
    .default(fallback);

export const text = (fallback: string) => z.string().default(fallback);

/** Haraka's temp_fail_intervals list; each interval from `min` to `max` seconds. */
export const intervals = (min: number, max: number) =>
  z
    .string()
    .transform((v, ctx) => {
      const list = parseTempFailIntervals(v);
      if (!list) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: "expected a list such as '1m, 5m*2, 1h*3' or 'none'" });
        return z.NEVER;
      }
      const bad = list.find((s) => s < min || s > max);
      if (bad !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `interval ${spanText(bad)} out of range: each must be from ${spanText(min)} to ${spanText(max)}` });
        return z.NEVER;
      }
      return list;
    })
    .optional();

const SIZE_MULTIPLIERS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;

/** A size in bytes from `min` to `max`; accepts k/M/G suffixes as operators write them. */
export const bytes = (fallback: number, min: number, max: number) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const m = /^\s*(\d+)\s*([kmg]?)b?\s*$/i.exec(String(v));
      const n = m ? Number(m[1]) * SIZE_MULTIPLIERS[m[2].toLowerCase() as keyof typeof SIZE_MULTIPLIERS] : NaN;
      if (!(n >= min && n <= max)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a size from ${min} to ${max} bytes (such as 26214400 or 25M)` });
        return z.NEVER;
      }
      return n;
    })
    .default(fallback);
