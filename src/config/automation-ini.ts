import { parse as parseIni } from 'ini';
import { z } from 'zod';
import { ConfigError } from '../core/index.js';
import { parseDuration } from './durations.js';
import { optionalInt, wholeNumber } from './fields.js';
import { mxPattern, rateSchema } from './limits.js';
import { regexHazard } from './regex-safety.js';
import type { RateSetting } from './limits.js';

export const AUTOMATION_FILE = 'automation.ini';

/** A pattern longer than this is refused: a rule is written by an operator, not generated. */
export const MAX_PATTERN_CHARS = 500;
/** The longest window, duration of an action (a week: an automation that should last longer is an operator's job). */
const MAX_SPAN_SECONDS = 7 * 86400;
const MAX_THRESHOLD = 100_000;
const RULE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const span = (what: string) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const s = typeof v === 'number' ? v : parseDuration(v);
      if (s === undefined || !(s >= 1 && s <= MAX_SPAN_SECONDS)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${what} from 1s to 7d, such as 10m or 2h` });
        return z.NEVER;
      }
      return s;
    });

const list = z
  .string()
  .transform((v) => v.split(',').map((d) => d.trim().toLowerCase()).filter((d) => d.length > 0))
  .refine((v) => v.length > 0 && v.every((d) => /^[a-z0-9.-]{1,253}$/.test(d)), { message: 'expected a comma separated list of domains' })
  .optional();

const pattern = z
  .string()
  .refine((v) => /^[a-z0-9*.-]{1,253}$/i.test(v), { message: 'expected an MX host pattern such as *.mail.protection.outlook.com' })
  .transform((v) => v.toLowerCase())
  .optional();

const ruleSchema = z
  .object({
    // Matched against `<code> <enhanced> <text>` of each remote reply (first 512 bytes).
    match: z.string().min(1).max(MAX_PATTERN_CHARS, `expected at most ${MAX_PATTERN_CHARS} characters`),
    domains: list,
    mx: pattern,
    threshold: wholeNumber(1, MAX_THRESHOLD),
    window: span('a window'),
    action: z.enum(['suspend', 'override']),
    duration: span('a duration'),
    max_connections: optionalInt(1, 100_000),
    max_message_rate: rateSchema,
    reason: z.string().max(300).optional(),
  })
  .strict();

/** One rule of config/automation.ini, compiled. */
export interface AutomationRule {
  readonly name: string;
  readonly match: RegExp;
  /** The pattern as written (for `tern config show` and log records). */
  readonly source: string;
  /** Recipient domains the rule watches; absent: every destination (unless `mx`). */
  readonly domains?: readonly string[];
  /** MX host pattern the rule watches (the host that sent the reply), and the key an override lowers (`mx:<pattern>`). */
  readonly mx?: string;
  readonly mxRegExp?: RegExp;
  readonly threshold: number;
  readonly windowMs: number;
  readonly action: 'suspend' | 'override';
  readonly durationMs: number;
  readonly maxConnections?: number;
  readonly maxMessageRate?: RateSetting;
  readonly reason?: string;
}

export interface AutomationConfig {
  readonly rules: readonly AutomationRule[];
}

function fail(section: string, key: string, value: unknown, problem: string): never {
  throw new ConfigError(AUTOMATION_FILE, `[${section}] ${key}`, value, problem);
}

/**
 * Reads config/automation.ini: one section per rule (KumoMTA's traffic-shaping automation,
 * run inside each node). Unknown keys, a pattern that does not compile or is too long, a
 * missing threshold, window or duration, an override without a limit: a ConfigError
 * naming the file, the section and the key.
 */
export function parseAutomation(raw: string | undefined): AutomationConfig {
  if (raw === undefined) return { rules: [] };
  const rules: AutomationRule[] = [];
  const top = parseIni(raw) as Record<string, unknown>;
  for (const [name, body] of Object.entries(top)) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ConfigError(AUTOMATION_FILE, name, body, 'settings must sit under a [rule-name] section');
    if (!RULE_NAME.test(name)) throw new ConfigError(AUTOMATION_FILE, `[${name}]`, name, 'expected a rule name of letters, digits, _ and -');
    const fields = body as Record<string, unknown>;
    for (const [key, value] of Object.entries(fields)) if (value && typeof value === 'object') fail(name, key, value, 'a rule name may not contain a dot');
    const result = ruleSchema.safeParse(fields);
    if (!result.success) {
      const issue = result.error.issues[0];
      const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
      const message = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : fields[key] === undefined ? 'required' : issue.message;
      fail(name, key, fields[key], message);
    }
    const r = result.data;
    const hazard = regexHazard(r.match);
    if (hazard) fail(name, 'match', r.match, hazard);
    let match: RegExp;
    try {
      match = new RegExp(r.match, 'i');
    } catch (err) {
      fail(name, 'match', r.match, `not a regular expression: ${(err as Error).message}`);
    }
    if (r.domains && r.mx) fail(name, 'mx', r.mx, 'give domains= or mx=, not both');
    if (r.action === 'override' && r.max_connections === undefined && r.max_message_rate === undefined) fail(name, 'action', r.action, 'an override needs max_connections= or max_message_rate=');
    if (r.action === 'suspend' && (r.max_connections !== undefined || r.max_message_rate !== undefined)) fail(name, 'action', r.action, 'max_connections and max_message_rate go with action=override');
    rules.push({
      name,
      match,
      source: r.match,
      ...(r.domains ? { domains: r.domains } : {}),
      ...(r.mx ? { mx: r.mx, mxRegExp: mxPattern(r.mx) } : {}),
      threshold: r.threshold,
      windowMs: r.window * 1000,
      action: r.action,
      durationMs: r.duration * 1000,
      ...(r.max_connections !== undefined ? { maxConnections: r.max_connections } : {}),
      ...(r.max_message_rate ? { maxMessageRate: r.max_message_rate } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    });
  }
  return { rules };
}
