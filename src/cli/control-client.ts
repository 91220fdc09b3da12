import { join } from 'node:path';
import { loadConfig, splitHostPort } from '../config/index.js';
import { requireConfig } from './locations.js';
import type { ConfigLocation } from './locations.js';

export interface ApiTarget {
  readonly base: string;
  readonly token?: string;
  /** Where the address came from, for the line that says the daemon cannot be reached. */
  readonly from: string;
}

/** Where the daemon's admin API is: --api/--token, else TERN_API/TERN_API_TOKEN, else the config directory's http.ini. */
export function apiTarget(opts: { api?: string; token?: string; config: ConfigLocation }): ApiTarget {
  const token = opts.token ?? process.env.TERN_API_TOKEN;
  const api = opts.api ?? process.env.TERN_API;
  if (api) return { base: api.replace(/\/$/, ''), token, from: opts.api ? '--api' : 'TERN_API' };
  const dir = requireConfig(opts.config);
  let listen = '127.0.0.1:8025';
  let configured: string | undefined;
  let from = `${join(dir, 'http.ini')}`;
  try {
    const cfg = loadConfig(dir);
    listen = cfg.http.listen;
    configured = cfg.http.token;
  } catch {
    // A broken config must not stop an operator from looking at the queue: use the default address.
    from = `the default; ${dir} does not load`;
  }
  const { host: bound, port } = splitHostPort(listen);
  // A wildcard listen is reached on loopback.
  const host = bound === '0.0.0.0' ? '127.0.0.1' : bound;
  return { base: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, token: token ?? configured, from };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function call(target: ApiTarget, method: string, path: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(target.base + path, { method, headers: target.token ? { authorization: `Bearer ${target.token}` } : {} });
  } catch (err) {
    throw new ApiError(0, `cannot reach the Tern admin API at ${target.base} (from ${target.from}): ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}; is the daemon running?`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; errors?: { shard?: unknown; error?: unknown }[] };
  if (!res.ok) throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`);
  // nodes=N: a worker that did not answer left its part out of this answer; say so.
  if (Array.isArray(body.errors)) for (const e of body.errors.slice(0, 100)) process.stderr.write(`tern: warning: partial answer: ${String(e?.error ?? 'a worker did not answer').slice(0, 500)}\n`);
  return body;
}

/**
 * A request whose answer is NDJSON (the bulk queue actions): each line is handed over as
 * it arrives, so that a long action shows its progress and no answer is held whole.
 */
export async function callLines(target: ApiTarget, method: string, path: string, body: unknown, onLine: (line: unknown) => void): Promise<void> {
  let res: Response;
  try {
    res = await fetch(target.base + path, {
      method,
      headers: { 'content-type': 'application/json', ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `cannot reach the Tern admin API at ${target.base} (from ${target.from}): ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}; is the daemon running?`);
  }
  if (!res.ok || !res.body) {
    const failed = (await res.json().catch(() => ({}))) as { error?: string };
    throw new ApiError(res.status, failed.error ?? `HTTP ${res.status}`);
  }
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of res.body) {
    rest += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  if (rest.trim()) onLine(JSON.parse(rest));
}
