import type { Clock } from '../core/index.js';
import type { Logger } from '../log/index.js';
import { isDomainName } from '../smtp/index.js';
import type { DestinationGate, Suspension } from './destinations.js';
import { QueueAdminError } from './queue-operations.js';
import type { ResumeOptions, SuspendOptions } from './queue-operations.js';
import type { SuspensionStore } from './suspension-file.js';

const MAX_REASON = 500;

export interface SuspensionDeps {
  readonly gate: DestinationGate;
  readonly store?: SuspensionStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Queues entries the gate handed back; returns how many will be attempted. */
  requeue(ids: readonly string[]): number;
  /** Lifts the domain's backoff (and the cluster's, unless `here`); returns the entries that waited for it. */
  liftBackoff(domain: string, here?: boolean): string[];
  /** Something changed: start what is due. */
  wake(): void;
}

/** A name the operator gave, lower-cased, or a refusal that says why. */
function domainArg(domain: string): string {
  const name = domain.toLowerCase();
  if (!isDomainName(name)) throw new QueueAdminError('invalid', `${JSON.stringify(domain.slice(0, 300))} is not a domain name`);
  return name;
}

/**
 * The operator's suspensions: parked in the gate, kept in the store so that a restart
 * keeps them, lifted by resume() or when their time is up (lapse()).
 */
export class Suspensions {
  /** Writes, one after the other, each of the state at its turn. */
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly deps: SuspensionDeps) {
    for (const suspension of deps.store?.load() ?? []) deps.gate.suspend(suspension);
  }

  async suspend(domain: string, options: SuspendOptions = {}): Promise<Suspension> {
    const name = domainArg(domain);
    const reason = options.reason ?? '';
    if (reason.length > MAX_REASON) throw new QueueAdminError('invalid', `the reason is longer than ${MAX_REASON} characters`);
    const { durationMs, rule } = options;
    if (durationMs !== undefined && !(Number.isFinite(durationMs) && durationMs > 0)) throw new QueueAdminError('invalid', 'the duration must be positive');
    const now = this.deps.clock.now();
    const since = options.since ?? now;
    const until = options.until ?? (durationMs === undefined ? undefined : now + durationMs);
    const suspension: Suspension = { domain: name, reason, since, ...(until === undefined ? {} : { until }), ...(rule ? { rule } : {}) };
    this.deps.gate.suspend(suspension);
    this.deps.wake();
    await this.persist();
    return suspension;
  }

  /** Lifts the suspension and the domain's backoff: the operator says it works again. */
  async resume(domain: string, options: ResumeOptions = {}): Promise<number> {
    const name = domainArg(domain);
    const suspended = this.deps.gate.resume(name);
    const released = this.deps.requeue([...(suspended ?? []), ...this.deps.liftBackoff(name, options.here)]);
    this.deps.wake();
    if (suspended) await this.persist();
    return released;
  }

  list(): Suspension[] {
    return this.deps.gate.suspensions();
  }

  /** Backoffs and suspensions whose time has come hand their entries back. */
  lapse(): void {
    const { released, expired } = this.deps.gate.lapse();
    this.deps.requeue(released);
    if (expired.length === 0) return;
    for (const s of expired) this.deps.logger.info({ event: 'suspension_expired', domain: s.domain, reason: s.reason, until: new Date(s.until!).toISOString(), ...(s.rule ? { rule: s.rule } : {}) }, 'domain suspension expired; delivery resumed');
    this.persist().catch((err: Error) => this.deps.logger.error({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'suspensions could not be saved'));
  }

  /** Resolves when every write asked for so far has ended. */
  settled(): Promise<void> {
    return this.saving;
  }

  private persist(): Promise<void> {
    const { store, gate } = this.deps;
    if (!store) return Promise.resolve();
    const write = this.saving.then(() => store.save(gate.suspensions()));
    this.saving = write.catch(() => undefined);
    return write;
  }
}
