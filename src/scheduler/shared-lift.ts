import type { DestinationHealth } from '../cluster/index.js';
import type { Logger } from '../log/index.js';

/**
 * Destinations whose shared record one lift clears at most (SIGHUP or `tern queue flush`
 * on a node that knows many backed-off destinations): each costs a DEL and a PUBLISH. Past
 * it, the other nodes keep their backoff of the rest until a probe's verdict.
 */
export const MAX_LIFT = 10_000;
/** Destinations cleared at once: a long flush never queues thousands of commands on the link. */
const PARALLEL = 16;

export interface LiftResult {
  /** Destinations the operator lifted on this node. */
  readonly destinations: number;
  /** Of these, those whose shared record went, with an "up" to every node. */
  readonly shared: number;
  /** Of these, those lifted here only: Redis did not answer, or past MAX_LIFT. */
  readonly localOnly: number;
}

/**
 * The operator's lift reaches the cluster: each destination's shared health record and
 * probe lock go, and every node hears "up" (with `lifted`) and releases its entries at
 * once. An operator who says "retry now" on one node means every node: without this the
 * other nodes would keep their entries parked until the next probe's verdict, up to
 * destination_backoff_max later, while this node delivers.
 */
export async function liftShared(health: DestinationHealth, domains: readonly string[]): Promise<LiftResult> {
  const todo = domains.slice(0, MAX_LIFT);
  let next = 0;
  let shared = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      if (await health.up(todo[next++], true)) shared++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, todo.length) }, worker));
  return { destinations: domains.length, shared, localOnly: domains.length - shared };
}

/** The `destination_backoff_lifted` record: whether the operator's lift reached every node. */
export function logLift(logger: Logger | undefined, domain: string | undefined, result: LiftResult): void {
  const scope = result.localOnly === 0 ? 'cluster' : result.shared === 0 ? 'local' : 'partial';
  const record = { event: 'destination_backoff_lifted', ...(domain !== undefined ? { domain } : {}), scope, destinations: result.destinations, shared: result.shared, local_only: result.localOnly };
  if (scope === 'cluster') logger?.info(record, 'the operator lifted the backoff: every node releases its entries');
  else logger?.warn(record, 'the operator lifted the backoff here, but Redis did not take it for local_only destinations: the other nodes keep those backed off until a probe verdict');
}
