import { createInterface } from 'node:readline';
import type { CliOptions } from './commands.js';
import { ApiError, apiTarget, callLines } from './control-client.js';

type Verb = 'rm' | 'hold' | 'release' | 'bounce';
const API_VERB: Record<Verb, string> = { rm: 'remove', hold: 'hold', release: 'release', bounce: 'bounce' };
/** As many ids per request as the admin API takes (MAX_IDS in control/queue-actions.ts). */
const IDS_PER_REQUEST = 1000;

interface Line {
  target?: string;
  id?: string;
  done?: string;
  error?: { status: number; reason: string; message: string };
  summary?: { action: string; done: number; failed: number };
}

export const QUEUE_ACTION_USAGE = 'tern queue rm|hold|release|bounce ID… | ALL | - [--domain D] [--state S] [--reason TEXT]';

/** The ids on stdin, one per line (blank lines skipped), in batches of what one request takes. */
async function* stdinBatches(): AsyncGenerator<string[]> {
  let batch: string[] = [];
  for await (const raw of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    const id = raw.trim();
    if (!id) continue;
    batch.push(id);
    if (batch.length === IDS_PER_REQUEST) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

async function* batches(ids: string[]): AsyncGenerator<string[]> {
  for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) yield ids.slice(i, i + IDS_PER_REQUEST);
}

/**
 * `tern queue rm|hold|release|bounce`, as postsuper: many ids (an entry, or a message id
 * for all its entries), `ALL`, `--domain`/`--state` (alone, or narrowing `ALL`), or `-` for
 * ids on stdin. One line per entry on stdout as it is done, failures and the summary on
 * stderr; exit 1 when anything failed, 2 for a command line that makes no sense.
 */
export async function queueAction(verb: Verb, ids: string[], o: CliOptions, usage: (text: string) => number): Promise<number> {
  const selects = o.domain !== undefined || o.state !== undefined;
  const all = ids.length === 1 && ids[0] === 'ALL';
  const stdin = ids.length === 1 && ids[0] === '-';
  if (ids.includes('ALL') && !all) return usage(QUEUE_ACTION_USAGE);
  if (ids.includes('-') && !stdin) return usage(QUEUE_ACTION_USAGE);
  if (ids.length === 0 && !selects) return usage(QUEUE_ACTION_USAGE);
  if (ids.length > 0 && !all && selects) return usage(`${QUEUE_ACTION_USAGE} (--domain and --state select entries instead of ids, or narrow ALL)`);
  const target = apiTarget(o);
  const reason = o.reason !== undefined ? { reason: o.reason } : {};
  const path = `/queue/${API_VERB[verb]}`;
  let done = 0;
  const failed: string[] = [];
  const onLine = (raw: unknown) => {
    const line = raw as Line;
    if (line.summary) return;
    if (o.json) process.stdout.write(JSON.stringify(line) + '\n');
    if (line.error) {
      failed.push(line.id ?? line.target ?? '?');
      process.stderr.write(`tern: ${line.id ?? line.target}: ${line.error.message} (${line.error.status})\n`);
      return;
    }
    done++;
    if (!o.json) process.stdout.write(`${line.done} ${line.id}${line.target !== line.id ? ` (message ${line.target})` : ''}\n`);
  };
  const send = async (body: object) => {
    let summary = false;
    await callLines(target, 'POST', path, { ...body, ...reason }, (raw) => {
      if ((raw as Line).summary) summary = true;
      onLine(raw);
    });
    // The daemon answers with a summary last: without it, the answer was cut short.
    if (!summary) throw new ApiError(0, `the admin API's answer ended early after ${done + failed.length} entries; see \`tern queue ls\``);
  };
  if (ids.length === 0 || all) {
    await send({ all: true, ...(o.domain !== undefined ? { domain: o.domain } : {}), ...(o.state !== undefined ? { state: o.state } : {}) });
  } else {
    for await (const batch of stdin ? stdinBatches() : batches(ids)) await send({ ids: batch });
  }
  const word = `${done} entr${done === 1 ? 'y' : 'ies'}`;
  process.stderr.write(`tern: ${API_VERB[verb]}: ${word} ${{ rm: 'removed', hold: 'held', release: 'released', bounce: 'bounced' }[verb]}` +
    (failed.length ? `; ${failed.length} failed: ${failed.slice(0, 20).join(', ')}${failed.length > 20 ? ', …' : ''}` : '') + '\n');
  return failed.length ? 1 : 0;
}
