import { setImmediate as nextTurn } from 'node:timers/promises';
import { domainOf } from '../smtp/index.js';
import type { EntryHead } from '../spool/index.js';

/**
 * How many heads a pass looks at before it lets the event loop run: a pass over a million
 * queued entries becomes a thousand short turns, and deliveries and the listener go on
 * between them.
 */
export const SCAN_SLICE = 1000;

/** The items of `it`, with a turn of the event loop after every `slice` of them. */
export async function* sliced<T>(it: Iterable<T>, slice = SCAN_SLICE): AsyncGenerator<T> {
  let n = 0;
  for (const item of it) {
    yield item;
    if (++n % slice === 0) await nextTurn();
  }
}

/** Entry ids are `<message id>.<n>`; Tern's message ids (as in `250 2.0.0 Queued as …`) have no dot. */
export const isMessageId = (id: string): boolean => id.length > 0 && !id.includes('.');

/** The queued entries of each message asked for, in one sliced pass over the heads. */
export async function entriesOfMessages(heads: Iterable<EntryHead>, messageIds: ReadonlySet<string>): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  if (messageIds.size === 0) return found;
  for await (const head of sliced(heads)) {
    if (!messageIds.has(head.messageId)) continue;
    const list = found.get(head.messageId);
    if (list) list.push(head.id);
    else found.set(head.messageId, [head.id]);
  }
  return found;
}

/**
 * `--sender`/`--recipient`: `local@domain` matches that address exactly, except that the
 * domain part matches in any case (RFC 5321 §2.4: only the local part may be case
 * sensitive); `@domain` matches every address at the domain; `<>` the null sender.
 */
export function addressMatcher(pattern: string): { readonly domain?: string; test(address: string): boolean } {
  if (pattern === '<>' || pattern === '') return { test: (a) => a === '' };
  const at = pattern.lastIndexOf('@');
  if (at < 0) return { test: (a) => a === pattern };
  const domain = domainOf(pattern);
  if (at === 0) return { domain, test: (a) => domainOf(a) === domain };
  const local = pattern.slice(0, at);
  return { domain, test: (a) => a.lastIndexOf('@') === at && a.startsWith(local) && domainOf(a) === domain };
}
