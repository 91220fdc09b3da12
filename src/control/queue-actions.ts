import type { AdminRequest } from '../core/index.js';
import type { Logger } from '../log/index.js';
import { QueueAdminError } from '../scheduler/index.js';
import type { QueueOperations } from '../scheduler/index.js';
import { entryState } from './metrics.js';
import type { EntryState } from './metrics.js';
import { entriesOfMessages, isMessageId, sliced } from './queue-scan.js';

export type ActionVerb = 'hold' | 'release' | 'bounce' | 'remove';
export const ACTION_VERBS: ReadonlySet<string> = new Set<ActionVerb>(['hold', 'release', 'bounce', 'remove']);
const DONE: Record<ActionVerb, string> = { hold: 'held', release: 'released', bounce: 'bounced', remove: 'removed' };
export const ADMIN_STATUS: Record<QueueAdminError['reason'], number> = { not_found: 404, in_flight: 409, invalid: 400 };

/** At most this many ids in one request: a longer list is sent in several (the CLI does). */
export const MAX_IDS = 1000;

/** What to act on: the ids given (entries, or messages meaning all their entries), or a selection. */
export type Selection =
  | { readonly ids: readonly string[] }
  | { readonly all: true; readonly domain?: string; readonly state?: EntryState };

/** One line of the answer: an entry acted on, or an id that could not be. */
export interface ActionLine {
  /** The id as asked for (a message id, an entry id), or the entry's own for a selection. */
  readonly target: string;
  /** The entry, when there is one. */
  readonly id?: string;
  readonly done?: string;
  readonly error?: { readonly status: number; readonly reason: string; readonly message: string };
}

type Actions = Pick<QueueOperations, 'all' | 'isInFlight' | 'hold' | 'release' | 'bounce' | 'remove'>;

async function act(queue: Actions, verb: ActionVerb, id: string, target: string, by: AdminRequest, logger: Logger): Promise<ActionLine> {
  try {
    await (verb === 'bounce' ? queue.bounce(id, by) : queue[verb](id, by));
    return { target, id, done: DONE[verb] };
  } catch (err) {
    if (err instanceof QueueAdminError) return { target, id, error: { status: ADMIN_STATUS[err.reason], reason: err.reason, message: err.message } };
    logger.error({ err: { message: (err as Error).message }, id, action: verb }, 'operator action failed');
    return { target, id, error: { status: 500, reason: 'error', message: (err as Error).message } };
  }
}

/**
 * Runs one operator action over many entries (postsuper with many ids, `ALL`, a domain,
 * a state), one line per entry as it is done. Entries are acted on one at a time and the
 * pass over the heads is sliced (queue-scan.ts), so a million entries never hold up the
 * event loop. A selection takes the entries queued when it started, not mail that
 * arrives while it runs.
 */
export async function* runActions(queue: Actions, verb: ActionVerb, selection: Selection, by: AdminRequest, now: number, logger: Logger): AsyncGenerator<ActionLine> {
  if ('ids' in selection) {
    const byMessage = await entriesOfMessages(queue.all(), new Set(selection.ids.filter(isMessageId)));
    for (const target of selection.ids) {
      const entries = isMessageId(target) ? (byMessage.get(target) ?? []) : [target];
      if (entries.length === 0) yield { target, error: { status: 404, reason: 'not_found', message: `no queued entry of message ${target}` } };
      for (const id of entries) yield await act(queue, verb, id, target, by, logger);
    }
    return;
  }
  for await (const head of sliced(queue.all())) {
    if (head.queuedAt > now) continue;
    if (selection.domain && head.domain !== selection.domain) continue;
    if (selection.state && entryState(head, queue.isInFlight(head.id)) !== selection.state) continue;
    yield await act(queue, verb, head.id, head.id, by, logger);
  }
}
