import { z } from 'zod';
import { ConfigError } from '../core/index.js';
import { domainSections } from './ini-sections.js';
import { optionalInt } from './fields.js';

export const LIMITS_FILE = 'limits.ini';

/** A message rate as written in limits.ini: `N/s`, `N/min` or `N/h`. */
export interface RateSetting {
  readonly count: number;
  readonly perMs: number;
}

const UNIT_MS: Record<string, number> = { s: 1000, sec: 1000, second: 1000, m: 60_000, min: 60_000, minute: 60_000, h: 3_600_000, hour: 3_600_000 };
const MAX_RATE = 1_000_000;
const MANY = 100_000;

/** `N/s`, `N/min` or `N/h` (limits.ini max_message_rate, automation.ini). */
export const rateSchema = z
  .string()
  .transform((v, ctx): RateSetting => {
    const m = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/i.exec(v);
    const count = m ? Number(m[1]) : NaN;
    const perMs = m ? UNIT_MS[m[2].toLowerCase()] : undefined;
    if (!(count >= 1 && count <= MAX_RATE) || perMs === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a rate such as 50/s, 100/min or 1000/h (1 to ${MAX_RATE} messages)` });
      return z.NEVER;
    }
    return { count, perMs };
  })
  .optional();

/** One section of config/limits.ini: a destination (`[domain]`, `[mx:pattern]`) or `[*]`. */
export const limitSectionSchema = z
  .object({
    // Sessions open to the destination at once (busy or idle), over every worker of the node.
    max_connections: optionalInt(1, MANY),
    max_message_rate: rateSchema,
    // Messages that may go at once after an idle spell; default: what the rate allows in
    // 100 ms, at least 1 (limits.ts defaultBurst).
    burst: optionalInt(1, MAX_RATE),
    // Transactions per session before QUIT (routes.ini and outbound.ini otherwise).
    max_deliveries_per_connection: optionalInt(1, MANY),
    // domain: the recipient domain is the destination; site: the set of its MX hosts is.
    scope: z.enum(['domain', 'site']).optional(),
  })
  .strict();

export type LimitSection = z.infer<typeof limitSectionSchema>;

/** config/limits.ini: sections by lower-case name (`*`, a domain, or `mx:<host pattern>`). */
export interface LimitsConfig {
  readonly sections: ReadonlyMap<string, LimitSection>;
}

/** The burst when limits.ini gives none: the messages of 100 ms at the rate, at least 1. */
export function defaultBurst(r: RateSetting): number {
  return Math.max(1, Math.floor((r.count * 100) / r.perMs));
}

/** A rate as an operator writes it (`100/min`), for `tern config show` and reload records. */
export function rateText(r: RateSetting): string {
  const unit = r.perMs === 1000 ? 's' : r.perMs === 60_000 ? 'min' : 'h';
  return `${r.count}/${unit}`;
}

/** An MX host pattern (`*.mail.protection.outlook.com`): `*` stands for one or more labels. */
export function mxPattern(pattern: string): RegExp {
  const body = pattern
    .toLowerCase()
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[a-z0-9.-]+');
  return new RegExp(`^${body}\\.?$`);
}

const SECTION_NAME = /^(\*|mx:[a-z0-9*.-]+|\[?[a-z0-9:.-]+\]?)$/i;

/** Reads config/limits.ini; unknown keys, bad values and keys outside a section are errors. */
export function parseLimits(raw: string | undefined): LimitsConfig {
  const sections = new Map<string, LimitSection>();
  if (raw === undefined) return { sections };
  const found = domainSections(LIMITS_FILE, raw, 'a [domain], [mx:pattern] or [*] section');
  for (const [name, body] of found) {
    if (!SECTION_NAME.test(name)) throw new ConfigError(LIMITS_FILE, `[${name}]`, name, 'expected [*], [domain] or [mx:host pattern]');
    const result = limitSectionSchema.safeParse(body);
    if (!result.success) {
      const issue = result.error.issues[0];
      const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
      const message = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message;
      throw new ConfigError(LIMITS_FILE, `[${name}] ${key}`, body[key], message);
    }
    const lower = name.toLowerCase();
    if (lower.startsWith('mx:') && result.data.scope === 'domain') {
      throw new ConfigError(LIMITS_FILE, `[${name}] scope`, 'domain', 'an [mx:…] section is a site: scope=domain does not apply');
    }
    sections.set(lower, result.data);
  }
  return { sections };
}
