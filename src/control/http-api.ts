import { createServer } from 'node:http';
import { chmod, rm } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { bearerMatches, closeServer, listenOn } from './admin-http.js';
import { closedError } from '../core/index.js';
import type { Clock, Closable } from '../core/index.js';
import { configHandle, splitHostPort } from '../config/index.js';
import type { ConfigHandle, ConfigInput } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { QueueAdminError } from '../scheduler/index.js';
import type { PolicyOperations, QueueOperations } from '../scheduler/index.js';
import { domainRoutes } from './domain-routes.js';
import type { TernMetrics } from './metrics.js';
import { ACTION_VERBS, ADMIN_STATUS, MAX_IDS, runActions } from './queue-actions.js';
import type { ActionVerb, Selection } from './queue-actions.js';
import { entriesOfMessages, isMessageId } from './queue-scan.js';
import { listQueue, showEntry } from './queue-view.js';
import type { QueueFilter } from './queue-view.js';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const STATES = new Set(['held', 'in-flight', 'deferred', 'scheduled']);
/** A bulk request's body: a thousand ids of a hundred characters fit, with room to spare. */
const MAX_BODY = 256 * 1024;
const MAX_REASON = 500;
const MAX_ADDRESS = 320;


function number(params: URLSearchParams, name: string, fallback?: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new HttpError(400, `${name} must be a non-negative number`);
  return Math.min(n, max);
}

function text(params: URLSearchParams, name: string, max: number): string | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  if (raw.length > max) throw new HttpError(400, `${name} must be at most ${max} characters`);
  return raw;
}

/** The request's body, at most `max` bytes, as JSON. */
async function jsonBody(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new HttpError(413, `the request body must be at most ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the request body must be JSON');
  }
}

/** `{"ids":[…]}`, or `{"all":true}` with `domain` and `state` to narrow it; `reason` in both. */
function selectionOf(body: unknown): { selection: Selection; reason?: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const reason = b.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON)) throw new HttpError(400, `reason must be a string of at most ${MAX_REASON} characters`);
  if (b.ids !== undefined) {
    const ids = b.ids;
    if (b.all !== undefined || b.domain !== undefined || b.state !== undefined) throw new HttpError(400, 'give ids, or all with domain and state, not both');
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS || !ids.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 100)) {
      throw new HttpError(400, `ids must be a list of 1 to ${MAX_IDS} ids`);
    }
    return { selection: { ids: ids as string[] }, reason };
  }
  if (b.all !== true) throw new HttpError(400, 'give ids, or all: true (narrowed by domain and state)');
  const domain = b.domain;
  const state = b.state;
  if (domain !== undefined && (typeof domain !== 'string' || domain.length > 255)) throw new HttpError(400, 'domain must be a domain name');
  if (state !== undefined && (typeof state !== 'string' || !STATES.has(state))) throw new HttpError(400, `state must be one of ${[...STATES].join(', ')}`);
  return { selection: { all: true, domain: domain?.toLowerCase() || undefined, state: state as QueueFilter['state'] }, reason };
}

/**
 * The admin API on loopback (KumoMTA's HTTP API, Postfix's postqueue/postsuper as JSON).
 * Off loopback a bearer token is required (config validation insists on one).
 */
export interface AdminApiOptions {
  /**
   * A worker's API (`nodes=N`): a unix socket (mode 0600, in the worker's shard directory)
   * that only the primary talks to. No token (the socket's mode is the access control), and
   * a page may go as deep as the primary's merge needs (MERGE_DEPTH entries).
   */
  readonly socket?: string;
  /** redis.ini enabled: the nodes sharing limits, and this node's view of Redis (`GET /cluster`). */
  readonly cluster?: () => Promise<unknown>;
  /** Suspensions and overrides, shared with other nodes when Redis is on; default: the scheduler's suspensions alone. */
  readonly policy?: PolicyOperations;
}

/** How deep a worker's page may go for the primary's merged listing (control/cluster-admin.ts). */
export const MERGE_DEPTH = 100_000;

/** The primary's client, passed on to a worker (lower case: node's header names). */
export const CLIENT_HEADER = 'x-tern-client';

export class AdminApi implements Closable {
  private server?: Server;
  private readonly configs: ConfigHandle;
  private closing?: Promise<void>;

  constructor(
    config: ConfigInput,
    private readonly scheduler: QueueOperations,
    private readonly metrics: TernMetrics,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly options: AdminApiOptions = {},
  ) {
    this.configs = configHandle(config);
  }

  /** http.ini of the moment (a reload changes the token at once; listen and disabled bind at start). */
  private get config() {
    return this.configs.current.http;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  async listen(): Promise<{ host: string; port: number } | undefined> {
    if (this.closed) throw closedError('admin API');
    const socket = this.options.socket;
    if (socket !== undefined) return this.listenSocket(socket);
    if (this.config.disabled) return undefined;
    const { host, port } = splitHostPort(this.config.listen);
    const server = createServer((req, res) => void this.handle(req, res));
    const got = await listenOn(server, host, port);
    this.server = server;
    return { host, port: got };
  }

  /** A worker's API: a socket left by a worker that was killed is replaced. */
  private async listenSocket(path: string): Promise<undefined> {
    await rm(path, { force: true });
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    this.server = server;
    await chmod(path, 0o600);
    return undefined;
  }

  /**
   * Stops accepting; a request in progress gets its answer, idle keep-alive connections
   * are closed. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= closeServer(this.server);
    return this.closing;
  }

  /** Stops accepting and drops every connection, busy or not. */
  destroy(): void {
    void this.close();
    this.server?.closeAllConnections();
  }

  /**
   * Who asked, for the Admin… records. On a worker's socket only the primary talks, and it
   * names its own client (CLIENT_HEADER); anywhere else the header is ignored.
   */
  private client(req: IncomingMessage): string {
    const forwarded = req.headers[CLIENT_HEADER];
    if (this.options.socket !== undefined && typeof forwarded === 'string' && forwarded.length <= 64) return forwarded;
    return req.socket.remoteAddress ?? 'unknown';
  }

  private authorized(req: IncomingMessage): boolean {
    // A worker's socket: only the primary talks there (mode 0600), with no token.
    return this.options.socket !== undefined || bearerMatches(req, this.config.token);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://tern.invalid');
    if (this.closed) {
      // A request that arrives on a kept-alive connection while the daemon stops.
      res.setHeader('connection', 'close');
      return this.json(res, 503, { error: closedError('admin API').message });
    }
    try {
      if (url.pathname === '/health' && req.method === 'GET') {
        return this.json(res, 200, { status: 'ok', queued: this.scheduler.size, in_flight: this.scheduler.inFlightCount });
      }
      if (!this.authorized(req)) throw new HttpError(401, 'a valid bearer token is required');
      if (url.pathname === '/metrics' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        res.end(await this.metrics.registry.metrics());
        return;
      }
      const bulk = /^\/queue\/([a-z]+)$/.exec(url.pathname)?.[1];
      if (req.method === 'POST' && bulk && ACTION_VERBS.has(bulk)) return await this.bulk(req, res, bulk as ActionVerb);
      const body = await this.route(req.method ?? 'GET', url, req);
      this.json(res, 200, body);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof QueueAdminError ? ADMIN_STATUS[err.reason] : 500;
      if (status === 500) this.logger.error({ err: { message: (err as Error).message }, path: url.pathname }, 'admin API error');
      if (res.headersSent) return void res.end();
      this.json(res, status, { error: (err as Error).message });
    }
  }

  /**
   * `POST /queue/hold|release|bounce|remove`: one action over many entries, answered as
   * it goes (NDJSON, one line per entry, then `{"summary":…}`), so that neither the answer
   * nor the work waits for the whole selection. A client that goes away stops it.
   */
  private async bulk(req: IncomingMessage, res: ServerResponse, verb: ActionVerb): Promise<void> {
    const { selection, reason } = selectionOf(await jsonBody(req, MAX_BODY));
    const by = { client: this.client(req), ...(reason ? { reason } : {}) };
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    let done = 0;
    let failed = 0;
    for await (const line of runActions(this.scheduler, verb, selection, by, this.clock.now(), this.logger)) {
      if (line.error) failed++;
      else done++;
      if (res.destroyed) return;
      if (!res.write(JSON.stringify(line) + '\n')) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
    }
    this.logger.info({ action: verb, client: by.client, done, failed }, 'queue action by the operator');
    res.end(JSON.stringify({ summary: { action: verb, done, failed } }) + '\n');
  }

  private async route(method: string, url: URL, req: IncomingMessage): Promise<unknown> {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const q = url.searchParams;
    const s = this.scheduler;
    if (parts[0] === 'queue') {
      if (parts.length === 1 && method === 'GET') {
        const state = q.get('state') || undefined;
        if (state && !STATES.has(state)) throw new HttpError(400, `state must be one of ${[...STATES].join(', ')}`);
        const filter: QueueFilter = {
          domain: q.get('domain')?.toLowerCase() || undefined,
          state: state as QueueFilter['state'],
          olderThan: number(q, 'older_than'),
          newerThan: number(q, 'newer_than'),
          sender: text(q, 'sender', MAX_ADDRESS),
          recipient: text(q, 'recipient', MAX_ADDRESS),
          offset: number(q, 'offset', 0)!,
          limit: number(q, 'limit', 100, this.options.socket === undefined ? 1000 : MERGE_DEPTH)!,
        };
        return { ...(await listQueue(s, filter, this.clock.now())), offset: filter.offset, limit: filter.limit };
      }
      if (parts.length === 2 && parts[1] === 'flush' && method === 'POST') {
        const domain = q.get('domain')?.toLowerCase() || undefined;
        const flushed = s.flush(domain);
        this.logger.info({ domain, flushed }, 'queue flushed by the operator');
        return { flushed };
      }
      const id = parts[1];
      if (parts.length === 2 && method === 'GET' && isMessageId(id)) {
        const ids = (await entriesOfMessages(s.all(), new Set([id]))).get(id) ?? [];
        const entries = (await Promise.all(ids.map((e) => s.load(e)))).filter((e) => e !== undefined);
        if (entries.length === 0) throw new HttpError(404, `no queued entry of message ${id}`);
        return { message_id: id, entries: entries.map((e) => showEntry(s, e)) };
      }
      if (parts.length === 2 && method === 'GET') {
        const entry = await s.load(id);
        if (!entry) throw new HttpError(404, `no queue entry ${id}`);
        return showEntry(s, entry);
      }
      const reason = text(q, 'reason', MAX_REASON);
      const by = { client: this.client(req), ...(reason ? { reason } : {}) };
      if (parts.length === 2 && method === 'DELETE') return { removed: (await s.remove(id, by)).id };
      if (parts.length === 3 && method === 'POST') {
        switch (parts[2]) {
          case 'hold':
            return { held: (await s.hold(id, by)).id };
          case 'release':
            return { released: (await s.release(id, by)).id };
          case 'bounce':
            return { bounced: (await s.bounce(id, by)).id };
        }
      }
    }
    if (parts[0] === 'domains') return this.domains(method, parts, q);
    if (parts.length === 1 && parts[0] === 'cluster' && method === 'GET') return this.options.cluster ? await this.options.cluster() : { enabled: false };
    throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
  }

  /** Suspensions and limit overrides (domain-routes.ts). */
  private async domains(method: string, parts: string[], q: URLSearchParams): Promise<unknown> {
    const s = this.scheduler;
    const policy: PolicyOperations = this.options.policy ?? {
      suspend: (d, o) => s.suspend(d, o),
      resume: (d) => s.resume(d),
      suspensions: () => s.suspensions(),
      override: () => Promise.reject(new QueueAdminError('invalid', 'limit overrides are not kept here')),
      clear: () => Promise.resolve(undefined),
      overrides: () => [],
    };
    return domainRoutes(policy, this.logger, method, parts, q);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
  }
}
