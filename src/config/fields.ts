import { z } from 'zod';
import { parseDuration, parseTempFailIntervals } from './durations.js';

// ini gives strings (and booleans for bare true/false); these fields coerce and validate
// in one place so that a schema is both the validator and the TypeScript type.

export const bool = (fallback: boolean) =>
  z
    .union([z.boolean(), z.enum(['true', 'false', 'yes', 'no', '1', '0', 'on', 'off'])])
    .transform((v) => v === true || v === 'true' || v === 'yes' || v === '1' || v === 'on')
    .default(fallback);

export const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .union([z.number(), z.string().regex(/^\s*\d+\s*$/, 'expected a whole number')])
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .default(fallback);

/** Seconds; accepts a bare number or a number with s/m/h/d. */
export const seconds = (fallback: string | number) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const s = typeof v === 'number' ? v : parseDuration(v);
      if (s === undefined || s < 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected a duration such as 30, 30s, 5m, 2h or 5d' });
        return z.NEVER;
      }
      return s;
    })
    .default(fallback);

export const text = (fallback: string) => z.string().default(fallback);

export const intervals = z
  .string()
  .transform((v, ctx) => {
    const list = parseTempFailIntervals(v);
    if (!list) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: "expected a list such as '1m, 5m*2, 1h*3' or 'none'" });
      return z.NEVER;
    }
    return list;
  })
  .optional();

/** A size in bytes; accepts k/M/G suffixes as operators write them. */
export const bytes = (fallback: number) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const m = /^\s*(\d+)\s*([kmg]?)b?\s*$/i.exec(String(v));
      if (!m) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected a size such as 26214400 or 25M' });
        return z.NEVER;
      }
      const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
      return Number(m[1]) * mult;
    })
    .default(fallback);
