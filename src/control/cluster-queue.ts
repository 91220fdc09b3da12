import { shardOfId } from '../spool/index.js';
import { MERGE_DEPTH } from './http-api.js';
import type { EntrySummary } from './queue-view.js';
import { askWorker, WorkerUnreachable, workerLines } from './worker-client.js';
import type { WorkerTarget } from './worker-client.js';

/** A worker that could not answer: its part of a merged answer is missing, and says so. */
export interface WorkerError {
  /** K, or `queue` for the unsharded queue/ (as the workers' records say it). */
  readonly shard: number | string;
  readonly error: string;
  /** The worker's own HTTP status, when it answered with a refusal. */
  readonly status?: number;
}

export class MergeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const errorOf = (t: WorkerTarget, err: unknown): WorkerError => ({ shard: t.shard ?? t.label, error: err instanceof WorkerUnreachable ? err.message : (err as Error).message });

/** Every worker still serving a shard. */
export const live = (targets: readonly WorkerTarget[]) => targets.filter((t) => !t.done);

/** The worker that holds an id (`…SK`), or the one of the unsharded queue/. */
export function targetOfId(targets: readonly WorkerTarget[], id: string): WorkerTarget | undefined {
  const shard = shardOfId(id);
  return live(targets).find((t) => t.shard === shard);
}

/** The same request to every worker at once; answers and failures side by side. */
export async function askAll(targets: readonly WorkerTarget[], method: string, path: string, client?: string): Promise<{ answers: { target: WorkerTarget; status: number; body: unknown }[]; errors: WorkerError[] }> {
  const settled = await Promise.allSettled(live(targets).map((t) => askWorker(t, method, path, { client }).then((a) => ({ target: t, ...a }))));
  const answers: { target: WorkerTarget; status: number; body: unknown }[] = [];
  const errors: WorkerError[] = [];
  settled.forEach((s, i) => (s.status === 'fulfilled' ? answers.push(s.value) : errors.push(errorOf(live(targets)[i], s.reason))));
  for (const a of answers) if (a.status >= 400) errors.push({ shard: a.target.shard ?? a.target.label, status: a.status, error: (a.body as { error?: string }).error ?? `HTTP ${a.status}` });
  return { answers: answers.filter((a) => a.status < 400), errors };
}

/**
 * `GET /queue` over every shard: each worker's first offset+limit entries of the filter,
 * merged in arrival order (queued_at, then id), then the page. Bounded: offset+limit at
 * most MERGE_DEPTH (narrow with filters past that).
 */
export async function mergedList(targets: readonly WorkerTarget[], params: URLSearchParams): Promise<unknown> {
  const offset = Number(params.get('offset') || 0);
  const limit = Math.min(Number(params.get('limit') || 100), 1000);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(limit) || limit < 0) throw new MergeError(400, 'offset and limit must be non-negative numbers');
  if (offset + limit > MERGE_DEPTH) throw new MergeError(400, `with nodes=N, offset + limit must be at most ${MERGE_DEPTH}; narrow the listing with --domain, --state or an age`);
  const q = new URLSearchParams(params);
  q.set('offset', '0');
  q.set('limit', String(offset + limit));
  const { answers, errors } = await askAll(targets, 'GET', `/queue?${q}`);
  const all = answers.flatMap((a) => (a.body as { entries: EntrySummary[] }).entries);
  all.sort((a, b) => (a.queued_at < b.queued_at ? -1 : a.queued_at > b.queued_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const total = answers.reduce((n, a) => n + (a.body as { total: number }).total, 0);
  return { total, entries: all.slice(offset, offset + limit), offset, limit, ...(errors.length ? { errors } : {}) };
}

/** A request about one id, to the worker whose shard the id names. */
export async function byId(targets: readonly WorkerTarget[], method: string, path: string, id: string, client?: string): Promise<{ status: number; body: unknown }> {
  const target = targetOfId(targets, id);
  if (!target) throw new MergeError(404, `no queue entry ${id} (no worker serves its shard)`);
  try {
    return await askWorker(target, method, path, { client });
  } catch (err) {
    throw new MergeError(503, errorOf(target, err).error);
  }
}

export interface BulkRequest {
  readonly ids?: readonly string[];
  readonly all?: boolean;
  readonly domain?: string;
  readonly state?: string;
  readonly reason?: string;
}

/**
 * A bulk action over the shards, one line per entry as each worker answers: ids go to
 * the worker of their shard (in the order asked, grouped by shard), a selection to every
 * worker in turn. A worker that fails gives a line saying so; one summary closes it all.
 */
export async function* mergedBulk(targets: readonly WorkerTarget[], verb: string, request: BulkRequest, client?: string): AsyncGenerator<unknown> {
  let done = 0;
  let failed = 0;
  const plan: { target: WorkerTarget; body: BulkRequest }[] = [];
  if (request.ids) {
    const groups = new Map<WorkerTarget, string[]>();
    for (const id of request.ids) {
      const t = targetOfId(targets, id);
      if (!t) {
        failed++;
        yield { target: id, error: { status: 404, reason: 'not_found', message: `no queued entry ${id} (no worker serves its shard)` } };
        continue;
      }
      groups.set(t, [...(groups.get(t) ?? []), id]);
    }
    for (const [target, ids] of groups) plan.push({ target, body: { ids, ...(request.reason ? { reason: request.reason } : {}) } });
  } else {
    for (const target of live(targets)) plan.push({ target, body: request });
  }
  for (const { target, body } of plan) {
    try {
      for await (const line of workerLines(target, `/queue/${verb}`, JSON.stringify(body), client)) {
        const l = line as { summary?: unknown; error?: unknown };
        if (l.summary) continue;
        if (l.error) failed++;
        else done++;
        yield line;
      }
    } catch (err) {
      failed++;
      yield { target: `shard ${target.label}`, error: { status: 503, reason: 'worker_unreachable', message: errorOf(target, err).error } };
    }
  }
  yield { summary: { action: verb, done, failed } };
}
