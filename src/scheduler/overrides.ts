import type { Clock } from '../core/index.js';
import type { RateSetting } from '../config/index.js';
import { isOverrideDestination } from '../cluster/index.js';
import type { OverrideRecord, OverrideTable } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import { QueueAdminError } from './queue-operations.js';
import type { OverrideStore } from './override-file.js';

const MAX_REASON = 500;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface OverrideOptions {
  readonly maxConnections?: number;
  readonly maxMessageRate?: RateSetting;
  /** How long (an override always ends by itself). */
  readonly durationMs?: number;
  readonly reason?: string;
  readonly rule?: string;
  /** An override made elsewhere (another node): its own start and end, epoch ms. */
  readonly since?: number;
  readonly until?: number;
}

export interface OverridesDeps {
  readonly table: OverrideTable;
  readonly store?: OverrideStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Limits changed: entries waiting for a slot or a token are weighed again (Scheduler.reshape). */
  readonly reshape: () => void;
}

/** A destination an operator named, lower-cased, or a refusal that says why. */
export function destinationArg(name: string): string {
  const lower = name.toLowerCase();
  if (!isOverrideDestination(lower)) throw new QueueAdminError('invalid', `${JSON.stringify(name.slice(0, 300))} is not a domain name or an mx:pattern`);
  return lower;
}

/**
 * Limit overrides: a destination's limits lowered for a while (`tern domain override`, or
 * an automation.ini rule). Kept in the table DestinationKeys reads, saved in the store so
 * that a restart keeps them, lifted by clear() or when their time is up; either way what
 * waits for a slot or a token is weighed again at once.
 */
export class Overrides {
  private saving: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly deps: OverridesDeps) {
    const now = deps.clock.now();
    for (const o of deps.store?.load() ?? []) if (o.until > now) deps.table.set(o);
    this.arm();
  }

  async set(destination: string, options: OverrideOptions): Promise<OverrideRecord> {
    const key = destinationArg(destination);
    const reason = options.reason ?? '';
    if (reason.length > MAX_REASON) throw new QueueAdminError('invalid', `the reason is longer than ${MAX_REASON} characters`);
    const { maxConnections, maxMessageRate, durationMs } = options;
    if (maxConnections === undefined && maxMessageRate === undefined) throw new QueueAdminError('invalid', 'an override lowers max_connections or max_message_rate: give one');
    if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections >= 1 && maxConnections <= 100_000)) throw new QueueAdminError('invalid', 'max_connections must be a whole number from 1 to 100000');
    if (options.until === undefined && !(durationMs !== undefined && Number.isFinite(durationMs) && durationMs > 0)) throw new QueueAdminError('invalid', 'an override needs a positive duration');
    const now = this.deps.clock.now();
    const record: OverrideRecord = {
      destination: key,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(maxMessageRate ? { maxMessageRate: { count: maxMessageRate.count, perMs: maxMessageRate.perMs } } : {}),
      reason,
      since: options.since ?? now,
      until: options.until ?? now + durationMs!,
      ...(options.rule ? { rule: options.rule } : {}),
    };
    this.deps.table.set(record);
    this.changed();
    await this.persist();
    return record;
  }

  /** Lifts a destination's override; undefined when it had none. */
  async clear(destination: string): Promise<OverrideRecord | undefined> {
    const gone = this.deps.table.delete(destinationArg(destination));
    if (!gone) return undefined;
    this.changed();
    await this.persist();
    return gone;
  }

  list(): OverrideRecord[] {
    return this.deps.table.list();
  }

  settled(): Promise<void> {
    return this.saving;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private changed(): void {
    this.deps.reshape();
    this.arm();
  }

  /** One timer, at the next expiry: the override lifts then, live. */
  private arm(): void {
    clearTimeout(this.timer);
    const next = this.deps.table.nextExpiry();
    if (next === undefined || this.closed) return;
    this.timer = setTimeout(() => this.lapse(), Math.min(Math.max(next - this.deps.clock.now(), 0) + 5, MAX_TIMER_MS));
    this.timer.unref();
  }

  private lapse(): void {
    const expired = this.deps.table.expire();
    for (const o of expired) {
      this.deps.logger.info({ event: 'override_expired', destination: o.destination, until: new Date(o.until).toISOString(), ...(o.rule ? { rule: o.rule } : {}) }, 'limit override expired; limits.ini applies again');
    }
    if (expired.length > 0) {
      this.persist().catch((err: Error) => this.deps.logger.error({ err: { message: err.message } }, 'overrides could not be saved'));
      this.deps.reshape();
    }
    this.arm();
  }

  private persist(): Promise<void> {
    const { store, table } = this.deps;
    if (!store) return Promise.resolve();
    const write = this.saving.then(() => store.save(table.list()));
    this.saving = write.catch(() => undefined);
    return write;
  }
}
