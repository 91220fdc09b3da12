import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { closedError } from '../core/index.js';
import type { Clock, Closable } from '../core/index.js';
import { configHandle, splitHostPort } from '../config/index.js';
import type { ConfigHandle, ConfigInput } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { QueueAdminError } from '../scheduler/index.js';
import type { QueueOperations, Suspension } from '../scheduler/index.js';
import type { TernMetrics } from './metrics.js';
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
const ADMIN_STATUS: Record<QueueAdminError['reason'], number> = { not_found: 404, in_flight: 409, invalid: 400 };

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const suspensionView = (s: Suspension) => ({ domain: s.domain, reason: s.reason, since: iso(s.since), until: iso(s.until) });

function number(params: URLSearchParams, name: string, fallback?: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new HttpError(400, `${name} must be a non-negative number`);
  return Math.min(n, max);
}

/**
 * The admin API on loopback (KumoMTA's HTTP API, Postfix's postqueue/postsuper as JSON).
 * Off loopback a bearer token is required (config validation insists on one).
 */
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
    if (this.config.disabled) return undefined;
    const { host, port } = splitHostPort(this.config.listen);
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const addr = server.address();
    return { host, port: typeof addr === 'object' && addr ? addr.port : port };
  }

  /**
   * Stops accepting; a request in progress gets its answer, idle keep-alive connections
   * are closed. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    return this.closing;
  }

  /** Stops accepting and drops every connection, busy or not. */
  destroy(): void {
    void this.close();
    this.server?.closeAllConnections();
  }

  private authorized(req: IncomingMessage): boolean {
    const token = this.config.token;
    if (!token) return true;
    const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
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
      const body = await this.route(req.method ?? 'GET', url);
      this.json(res, 200, body);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof QueueAdminError ? ADMIN_STATUS[err.reason] : 500;
      if (status === 500) this.logger.error({ err: { message: (err as Error).message }, path: url.pathname }, 'admin API error');
      this.json(res, status, { error: (err as Error).message });
    }
  }

  private async route(method: string, url: URL): Promise<unknown> {
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
          offset: number(q, 'offset', 0)!,
          limit: number(q, 'limit', 100, 1000)!,
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
      if (parts.length === 2 && method === 'GET') {
        const entry = await s.load(id);
        if (!entry) throw new HttpError(404, `no queue entry ${id}`);
        return showEntry(s, entry);
      }
      if (parts.length === 2 && method === 'DELETE') return { removed: (await s.remove(id)).id };
      if (parts.length === 3 && method === 'POST') {
        switch (parts[2]) {
          case 'hold':
            return { held: (await s.hold(id)).id };
          case 'release':
            return { released: (await s.release(id)).id };
          case 'bounce':
            return { bounced: (await s.bounce(id)).id };
        }
      }
    }
    if (parts[0] === 'domains') return this.domains(method, parts, q);
    throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
  }

  /** Suspensions (KumoMTA's suspend, with a reason and an optional duration). */
  private async domains(method: string, parts: string[], q: URLSearchParams): Promise<unknown> {
    const s = this.scheduler;
    if (parts.length === 2 && parts[1] === 'suspended' && method === 'GET') {
      const list = s.suspensions();
      return { suspended: list.map((x) => x.domain), suspensions: list.map(suspensionView) };
    }
    if (parts.length === 3 && method === 'POST' && parts[2] === 'suspend') {
      const seconds = number(q, 'duration');
      const suspension = await s.suspend(parts[1], { reason: q.get('reason') ?? undefined, durationMs: seconds === undefined ? undefined : seconds * 1000 });
      this.logger.info({ domain: suspension.domain, reason: suspension.reason, until: iso(suspension.until) }, 'delivery to domain suspended by the operator');
      return { suspended: suspension.domain, ...suspensionView(suspension) };
    }
    if (parts.length === 3 && method === 'POST' && parts[2] === 'resume') {
      const released = await s.resume(parts[1]);
      this.logger.info({ domain: parts[1].toLowerCase(), released }, 'delivery to domain resumed by the operator');
      return { resumed: parts[1].toLowerCase(), released };
    }
    throw new HttpError(404, `no such endpoint: ${method} /${parts.join('/')}`);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
  }
}
