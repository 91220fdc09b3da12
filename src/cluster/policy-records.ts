import type { RateSetting } from '../config/index.js';

/** Delivery to a domain stopped, by an operator or an automation rule (`rule`). */
export interface SuspensionRecord {
  readonly domain: string;
  readonly reason: string;
  /** Epoch ms. */
  readonly since: number;
  /** Epoch ms when it lifts by itself; absent: until resumed. */
  readonly until?: number;
  /** The automation.ini rule that set it; absent: an operator did. */
  readonly rule?: string;
}

/**
 * A destination's limits lowered for a while: the lower of limits.ini and the override
 * wins. `destination` is a domain, or a limits.ini key such as `mx:*.example.net`.
 */
export interface OverrideRecord {
  readonly destination: string;
  readonly maxConnections?: number;
  readonly maxMessageRate?: RateSetting;
  readonly reason: string;
  /** Epoch ms. */
  readonly since: number;
  /** Epoch ms when it lifts by itself (an override always has a duration). */
  readonly until: number;
  readonly rule?: string;
}

/** One change of the policy of one destination: a record set, or lifted (`record` absent). */
export type PolicyChange =
  | { readonly kind: 'suspension'; readonly key: string; readonly record?: SuspensionRecord; readonly at: number }
  | { readonly kind: 'override'; readonly key: string; readonly record?: OverrideRecord; readonly at: number };

/** What the policy sync needs of a node: its records, and applying a change without announcing it again. */
export interface LocalPolicy {
  suspensions(): readonly SuspensionRecord[];
  overrides(): readonly OverrideRecord[];
  apply(change: PolicyChange): Promise<void>;
}

/** A destination an override may name: a domain (or `[address]`), or `mx:<host pattern>`. */
export function isOverrideDestination(name: string): boolean {
  if (name.startsWith('mx:')) return /^mx:[a-z0-9*.-]{1,253}$/.test(name);
  return /^[a-z0-9.-]{1,253}$/.test(name) && !name.includes('..') && !name.startsWith('.') && !name.endsWith('.');
}

/** The lower of two rates (messages per millisecond); either may be absent. */
export function lowerRate(a: RateSetting | undefined, b: RateSetting | undefined): RateSetting | undefined {
  if (!a) return b;
  if (!b) return a;
  return a.count / a.perMs <= b.count / b.perMs ? a : b;
}
