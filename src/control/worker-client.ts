import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { CLIENT_HEADER } from './http-api.js';

/** One worker's admin API, as the primary reaches it (`nodes=N`). */
export interface WorkerTarget {
  /** K, or `queue` for the unsharded queue/. */
  readonly label: string;
  /** undefined: the unsharded queue/ (ids without `SK`). */
  readonly shard?: number;
  readonly socket: string;
  /** Listening now (a worker being restarted is not). */
  readonly up: boolean;
  /** A shard delivered to the end, whose worker is gone for good: not asked, not an error. */
  readonly done: boolean;
}

export interface WorkerAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** Past these a worker's answer is an error: the primary never waits or buffers without bound. */
export const WORKER_TIMEOUT_MS = 10_000;
export const WORKER_MAX_BYTES = 64 * 1024 * 1024;

export class WorkerUnreachable extends Error {
  constructor(
    readonly target: WorkerTarget,
    why: string,
  ) {
    super(`worker of shard ${target.label} did not answer: ${why}`);
  }
}

function open(target: WorkerTarget, method: string, path: string, body: string | undefined, timeoutMs: number, client?: string): Promise<IncomingMessage> {
  if (!target.up) return Promise.reject(new WorkerUnreachable(target, 'not running (being restarted)'));
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: target.socket, method, path, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(client ? { [CLIENT_HEADER]: client } : {}) }, timeout: timeoutMs }, resolve);
    req.on('timeout', () => req.destroy(new WorkerUnreachable(target, `no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof WorkerUnreachable ? err : new WorkerUnreachable(target, err.message)));
    req.end(body);
  });
}

/** A request to one worker, its whole answer (JSON, or text for /metrics), bounded in time and size. */
export async function askWorker(target: WorkerTarget, method: string, path: string, options: { body?: string; client?: string; timeoutMs?: number } = {}): Promise<WorkerAnswer> {
  const timeoutMs = options.timeoutMs ?? WORKER_TIMEOUT_MS;
  const res = await open(target, method, path, options.body, timeoutMs, options.client);
  const deadline = setTimeout(() => res.destroy(new WorkerUnreachable(target, `answer not complete within ${timeoutMs} ms`)), timeoutMs);
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res) {
      size += (chunk as Buffer).length;
      if (size > WORKER_MAX_BYTES) throw new WorkerUnreachable(target, `answer larger than ${WORKER_MAX_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (!(res.headers['content-type'] ?? '').includes('json')) return { status: res.statusCode ?? 502, body: text };
    try {
      return { status: res.statusCode ?? 502, body: JSON.parse(text) };
    } catch {
      throw new WorkerUnreachable(target, 'answer is not JSON');
    }
  } catch (err) {
    throw err instanceof WorkerUnreachable ? err : new WorkerUnreachable(target, (err as Error).message);
  } finally {
    clearTimeout(deadline);
  }
}

/**
 * A bulk action on one worker (NDJSON): its lines as they come. A worker silent for
 * `idleMs` between two lines is given up (its work goes on; the answer says it failed).
 */
export async function* workerLines(target: WorkerTarget, path: string, body: string, client?: string, idleMs = WORKER_TIMEOUT_MS): AsyncGenerator<unknown> {
  const res = await open(target, 'POST', path, body, idleMs, client);
  res.setTimeout(idleMs, () => res.destroy(new WorkerUnreachable(target, `silent for ${idleMs} ms`)));
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8').slice(0, 10_000);
    throw Object.assign(new Error(JSON.parse(text || '{}').error ?? `HTTP ${res.statusCode}`), { status: res.statusCode });
  }
  try {
    // Lines of a bulk answer are small; crlfDelay irrelevant, a line past 1 MiB is a broken worker.
    for await (const line of createInterface({ input: res })) {
      if (line.length > 1024 * 1024) throw new WorkerUnreachable(target, 'answer line too long');
      if (line) yield JSON.parse(line);
    }
  } catch (err) {
    throw err instanceof WorkerUnreachable ? err : new WorkerUnreachable(target, (err as Error).message);
  }
}
