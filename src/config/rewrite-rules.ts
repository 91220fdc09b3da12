import { ConfigError } from '../core/index.js';

export const REWRITE_FILE = 'rewrite_delivery_status.json';

export interface RewriteRule {
  readonly pattern: string;
  readonly code: number;
}

/** The rules of config/rewrite_delivery_status.json, validated, in file order. */
export interface RewriteRules {
  readonly global: readonly RewriteRule[];
  /** Rules for one destination domain (lower case), tried before the global ones. */
  readonly domains: ReadonlyMap<string, readonly RewriteRule[]>;
}

function rule(pattern: string, code: unknown, where: string): RewriteRule {
  try {
    new RegExp(pattern);
  } catch (err) {
    throw new ConfigError(REWRITE_FILE, where, pattern, `invalid regular expression: ${(err as Error).message}`);
  }
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 400 || code > 599) {
    // A rule may move a reply between temporary and permanent failure, never turn a failure into a success.
    throw new ConfigError(REWRITE_FILE, where, code, 'the new code must be a whole number from 400 to 599');
  }
  return { pattern, code };
}

/**
 * Parses the file: KumoMTA's flat form `{ "<regex>": <code>, … }` is the global scope;
 * a key whose value is an object is a destination domain with rules of its own.
 */
export function parseRewriteRules(text: string | undefined): RewriteRules {
  if (text === undefined || text.trim() === '') return { global: [], domains: new Map() };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(REWRITE_FILE, '(file)', '', `not valid JSON: ${(err as Error).message}`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(REWRITE_FILE, '(file)', '', 'expected an object of "<regex>": <code>');
  }
  const global: RewriteRule[] = [];
  const domains = new Map<string, RewriteRule[]>();
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const domain = key.toLowerCase();
      const list = domains.get(domain) ?? [];
      for (const [pattern, code] of Object.entries(value as Record<string, unknown>)) list.push(rule(pattern, code, `${key} → ${pattern}`));
      domains.set(domain, list);
    } else {
      global.push(rule(key, value, key));
    }
  }
  return { global, domains };
}
