import type { Counter, LabelValues } from 'prom-client';
import type { DnsFailureReason } from '../dns/index.js';
import { REJECTION_REASONS } from '../listener/index.js';

/**
 * The label values Tern knows in advance. Each series is created at zero when the daemon
 * starts, so that `rate()` and `increase()` see the first event instead of a series that
 * appears with it, and an alert on `tern_rejections_total{reason="relay_denied"}` has a
 * series to watch before the first refusal.
 */
export const QUEUE_STATES = ['scheduled', 'deferred', 'held', 'in-flight'] as const;
export type EntryState = (typeof QUEUE_STATES)[number];

/** Why a due entry waits instead of being attempted (scheduler's ParkReason). */
export const PARK_REASONS = ['suspended', 'backoff', 'connection_limit', 'rate_limited'] as const;

export const OUTCOMES = ['Delivery', 'TransientFailure', 'Bounce', 'Expiration'] as const;
export const DSN_KINDS = ['bounce', 'expiration', 'delay', 'success'] as const;
export const RELOAD_RESULTS = ['ok', 'failed'] as const;
export const BYTE_DIRECTIONS = ['in', 'out'] as const;
export const TRANSPORTS = ['tls', 'plaintext'] as const;
export const REJECTION_REASON_LABELS: readonly string[] = REJECTION_REASONS;
/** The refusals of AUTH that are failures of the client's credentials or of its address. */
export const AUTH_FAILURE_REASONS = ['auth_failed', 'auth_locked', 'auth_limit'] as const;
export const DNS_RECORD_TYPES = ['MX', 'A', 'AAAA', 'TXT', 'CNAME', 'PTR'] as const;
export const DNS_FAILURE_REASONS: readonly DnsFailureReason[] = ['timeout', 'servfail', 'refused', 'error'];
/** The label that destinations outside the top N share (top-destinations.ts). */
export const OTHER_DESTINATIONS = 'other';

/** Creates every combination of the given label values at zero. */
export function zeroSeries<L extends string>(metric: Counter<L>, labels: Record<L, readonly string[]>): void {
  const names = Object.keys(labels) as L[];
  const walk = (i: number, acc: Partial<Record<L, string>>): void => {
    if (i === names.length) return metric.inc(acc as LabelValues<L>, 0);
    for (const v of labels[names[i]]) walk(i + 1, { ...acc, [names[i]]: v });
  };
  walk(0, {});
}
