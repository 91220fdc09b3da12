import type { AdminRequest } from '../core/index.js';
import type { EntryHead, QueueEntry } from '../spool/index.js';
import type { ParkReason, Suspension } from './destinations.js';

export class QueueAdminError extends Error {
  constructor(
    readonly reason: 'not_found' | 'in_flight' | 'invalid',
    message: string,
  ) {
    super(message);
  }
}

export interface SuspendOptions {
  /** Why, for the operators who come after (at most 500 characters). */
  readonly reason?: string;
  /** How long; absent: until resumed. */
  readonly durationMs?: number;
  /** The automation.ini rule that suspends it. */
  readonly rule?: string;
  /**
   * A suspension made elsewhere (another node, through the shared state): its own start and
   * end (epoch ms), kept as they were rather than counted from now.
   */
  readonly since?: number;
  readonly until?: number;
}

export interface ResumeOptions {
  /**
   * The backoff is lifted on this node only: a resume made on another node and heard
   * through the policy sync (that node's lift cleared the shared backoff already).
   */
  readonly here?: boolean;
}

/**
 * What an operator may see and do to the queue (postqueue, postsuper, KumoMTA's admin
 * bounce and suspend). The admin API knows the scheduler only through this.
 */
export interface QueueOperations {
  readonly size: number;
  readonly inFlightCount: number;
  /** Every entry's head, in the order they were added. */
  all(): IterableIterator<EntryHead>;
  isInFlight(id: string): boolean;
  /** Why an entry that came due waits instead of being attempted; undefined when it does not. */
  parkedReason?(id: string): ParkReason | undefined;
  /** When the entry is tried at the earliest: its due time, or later while its destination is backed off or suspended for a while. */
  nextAttempt(head: EntryHead): number;
  /** The whole entry (read from disk unless it is new), or undefined when it is not queued. */
  load(id: string): Promise<QueueEntry | undefined>;
  /**
   * Entry actions; an entry in flight cannot be changed under its attempt (QueueAdminError
   * 'in_flight'). Each change is recorded (AdminHold, AdminRelease, AdminRemove, AdminBounce)
   * with who asked; holding a held entry or releasing one that is not held changes nothing.
   */
  hold(id: string, by?: AdminRequest): Promise<QueueEntry>;
  release(id: string, by?: AdminRequest): Promise<QueueEntry>;
  remove(id: string, by?: AdminRequest): Promise<QueueEntry>;
  /** Fails every unsettled recipient now, with a report to the sender as for any bounce. */
  bounce(id: string, by?: AdminRequest, text?: string): Promise<QueueEntry>;
  /**
   * Every waiting entry (of one domain) is due now, and the destinations' backoff is
   * forgotten; held entries and suspended domains stay. Returns how many became due.
   */
  flush(domain?: string): number;
  /** Stops delivery to a domain; resolves once the suspension is on disk. */
  suspend(domain: string, options?: SuspendOptions): Promise<Suspension>;
  /** Lifts a suspension and the domain's backoff (the cluster's too, unless `here`); returns how many entries became due. */
  resume(domain: string, options?: ResumeOptions): Promise<number>;
  suspensions(): Suspension[];
}
