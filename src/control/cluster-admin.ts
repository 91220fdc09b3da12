import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { closedError } from '../core/index.js';
import type { Closable } from '../core/index.js';
import { splitHostPort } from '../config/index.js';
import type { ConfigHandle } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { askAll, byId, live, MergeError, mergedBulk, mergedList } from './cluster-queue.js';
import type { BulkRequest } from './cluster-queue.js';
import { mergeExpositions } from './metrics-merge.js';
import { bearerMatches, closeServer, listenOn } from './admin-http.js';
import { ACTION_VERBS } from './queue-actions.js';
import type { WorkerTarget } from './worker-client.js';

/** As the single process's API: a bulk body of a thousand ids fits. */
const MAX_BODY = 256 * 1024;
const GAUGES_NAMED_LIKE_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

async function bodyText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new MergeError(413, `the request body must be at most ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The primary's admin API under `nodes=N`: the same endpoints as a single process
 * (http-api.ts), answered by the workers (each serves its own on a unix socket in its
 * shard) and merged here. Requests naming an id go to the shard in the id; listings,
 * counts, flush and suspensions to every worker. A worker that does not answer within
 * its bound leaves its part out, and the answer says so (`errors`), never a hang.
 */
export class ClusterAdminApi implements Closable {
  private server?: Server;
  private closing?: Promise<void>;
  /** The primary's own process metrics, as `shard="primary"`. */
  private readonly registry = new Registry();

  constructor(
    private readonly config: ConfigHandle,
    private readonly targets: () => readonly WorkerTarget[],
    private readonly logger: Logger,
  ) {
    collectDefaultMetrics({ register: this.registry });
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(name);
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  async listen(): Promise<{ host: string; port: number } | undefined> {
    if (this.closed) throw closedError('admin API');
    const http = this.config.current.http;
    if (http.disabled) return undefined;
    const { host, port } = splitHostPort(http.listen);
    const server = createServer((req, res) => void this.handle(req, res));
    const got = await listenOn(server, host, port);
    this.server = server;
    return { host, port: got };
  }

  close(): Promise<void> {
    this.closing ??= closeServer(this.server);
    return this.closing;
  }

  destroy(): void {
    void this.close();
    this.server?.closeAllConnections();
  }

  private authorized(req: IncomingMessage): boolean {
    return bearerMatches(req, this.config.current.http.token);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://tern.invalid');
    const method = req.method ?? 'GET';
    if (this.closed) {
      res.setHeader('connection', 'close');
      return this.json(res, 503, { error: closedError('admin API').message });
    }
    try {
      if (url.pathname === '/health' && method === 'GET') return await this.health(res);
      if (!this.authorized(req)) throw new MergeError(401, 'a valid bearer token is required');
      if (url.pathname === '/metrics' && method === 'GET') return await this.metrics(res);
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const client = req.socket.remoteAddress ?? 'unknown';
      // The client's address and the reason go into the workers' records (Admin…), as given.
      const reason = url.searchParams.get('reason');
      const qs = reason === null ? '' : `?reason=${encodeURIComponent(reason)}`;
      if (parts[0] === 'queue') {
        if (parts.length === 1 && method === 'GET') return this.json(res, 200, await mergedList(this.targets(), url.searchParams));
        if (parts.length === 2 && parts[1] === 'flush' && method === 'POST') return await this.sum(res, method, `/queue/flush${url.search}`, 'flushed', client);
        if (parts.length === 2 && method === 'POST' && ACTION_VERBS.has(parts[1])) return await this.bulk(req, res, parts[1]);
        const path = url.pathname + (method === 'GET' ? '' : qs);
        if (parts.length === 2 && (method === 'GET' || method === 'DELETE')) return this.pass(res, await byId(this.targets(), method, path, parts[1], client));
        if (parts.length === 3 && method === 'POST') return this.pass(res, await byId(this.targets(), method, path, parts[1], client));
      }
      if (parts[0] === 'domains') return await this.domains(res, method, parts, url, client);
      if (parts.length === 1 && parts[0] === 'cluster' && method === 'GET') return this.json(res, 200, await this.cluster());
      throw new MergeError(404, `no such endpoint: ${method} ${url.pathname}`);
    } catch (err) {
      const status = err instanceof MergeError ? err.status : 500;
      if (status === 500) this.logger.error({ err: { message: (err as Error).message }, path: url.pathname }, 'admin API error');
      if (res.headersSent) return void res.end();
      this.json(res, status, { error: (err as Error).message });
    }
  }

  /** ok when every worker says ok; the counts are the machine's. */
  private async health(res: ServerResponse): Promise<void> {
    const { answers, errors } = await askAll(this.targets(), 'GET', '/health');
    const bodies = answers.map((a) => a.body as { status: string; queued: number; in_flight: number });
    const ok = errors.length === 0 && bodies.every((b) => b.status === 'ok');
    const workers = answers.map((a, i) => ({ shard: a.target.shard ?? a.target.label, ...bodies[i] }));
    this.json(res, ok ? 200 : 503, {
      status: ok ? 'ok' : 'degraded',
      queued: bodies.reduce((n, b) => n + b.queued, 0),
      in_flight: bodies.reduce((n, b) => n + b.in_flight, 0),
      workers,
      ...(errors.length ? { errors } : {}),
    });
  }

  /**
   * `GET /cluster`: each worker is a node of its own in Redis and sees every node; their
   * lists are merged (the freshest heartbeat of each node), with each worker's view of Redis.
   */
  private async cluster(): Promise<unknown> {
    const { answers, errors } = await askAll(this.targets(), 'GET', '/cluster');
    type View = { enabled: boolean; node?: string; redis?: unknown; nodes?: { id: string; heartbeat_age_ms: number }[] };
    const views = answers.map((a) => ({ shard: a.target.shard ?? a.target.label, body: a.body as View }));
    const enabled = views.filter((v) => v.body.enabled);
    if (enabled.length === 0) return { enabled: false, ...(errors.length ? { errors } : {}) };
    const byId = new Map<string, { id: string; heartbeat_age_ms: number }>();
    for (const v of enabled) {
      for (const n of v.body.nodes ?? []) {
        const known = byId.get(n.id);
        if (!known || (n.heartbeat_age_ms >= 0 && (known.heartbeat_age_ms < 0 || n.heartbeat_age_ms < known.heartbeat_age_ms))) byId.set(n.id, n);
      }
    }
    const nodes = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const workers = enabled.map((v) => ({ shard: v.shard, node: v.body.node, redis: v.body.redis }));
    return { enabled: true, node: workers[0].node, redis: workers[0].redis, workers, nodes, ...(errors.length ? { errors } : {}) };
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const { answers } = await askAll(this.targets(), 'GET', '/metrics');
    const parts = answers.map((a) => ({ shard: a.target.label, text: String(a.body) }));
    parts.push({ shard: 'primary', text: await this.registry.metrics() });
    res.writeHead(200, { 'content-type': this.registry.contentType });
    res.end(mergeExpositions(parts));
  }

  /** Every worker acts; the counts add up (flush: `flushed`, resume: `released`). */
  private async sum(res: ServerResponse, method: string, path: string, field: string, client: string): Promise<void> {
    const { answers, errors } = await askAll(this.targets(), method, path, client);
    if (answers.length === 0 && errors.length) throw new MergeError(errors.every((e) => e.status === errors[0].status && e.status !== undefined) ? errors[0].status! : 503, errors[0].error);
    const total = answers.reduce((n, a) => n + Number((a.body as Record<string, unknown>)[field] ?? 0), 0);
    const first = (answers[0]?.body ?? {}) as Record<string, unknown>;
    this.json(res, 200, { ...first, [field]: total, ...(errors.length ? { errors } : {}) });
  }

  private async domains(res: ServerResponse, method: string, parts: string[], url: URL, client: string): Promise<void> {
    if (parts.length === 2 && parts[1] === 'suspended' && method === 'GET') {
      // Every worker keeps the suspensions; the union shows one that only some hold (a worker that was down).
      const { answers, errors } = await askAll(this.targets(), 'GET', '/domains/suspended');
      const byDomain = new Map<string, { domain: string }>();
      const byDestination = new Map<string, { destination: string }>();
      for (const a of answers) {
        const body = a.body as { suspensions: { domain: string }[]; overrides?: { destination: string }[] };
        for (const s of body.suspensions) if (!byDomain.has(s.domain)) byDomain.set(s.domain, s);
        for (const o of body.overrides ?? []) if (!byDestination.has(o.destination)) byDestination.set(o.destination, o);
      }
      const suspensions = [...byDomain.values()];
      const overrides = [...byDestination.values()].sort((a, b) => a.destination.localeCompare(b.destination));
      return this.json(res, 200, { suspended: suspensions.map((s) => s.domain), suspensions, overrides, ...(errors.length ? { errors } : {}) });
    }
    if (parts.length === 3 && method === 'POST' && ['suspend', 'resume', 'override', 'clear'].includes(parts[2])) {
      const { answers, errors } = await askAll(this.targets(), method, url.pathname + url.search, client);
      if (answers.length === 0) {
        // Refused alike by every worker (a name that is not a domain): the worker's status; else unreachable.
        const status = errors.every((e) => e.status !== undefined && e.status === errors[0].status) ? errors[0].status! : 503;
        throw new MergeError(status, errors[0]?.error ?? 'no worker answered');
      }
      if (parts[2] !== 'resume') return this.json(res, 200, { ...(answers[0].body as object), ...(errors.length ? { errors } : {}) });
      const released = answers.reduce((n, a) => n + Number((a.body as { released?: number }).released ?? 0), 0);
      return this.json(res, 200, { ...(answers[0].body as object), released, ...(errors.length ? { errors } : {}) });
    }
    throw new MergeError(404, `no such endpoint: ${method} /${parts.join('/')}`);
  }

  private async bulk(req: IncomingMessage, res: ServerResponse, verb: string): Promise<void> {
    let body: BulkRequest;
    try {
      body = JSON.parse((await bodyText(req)) || '{}') as BulkRequest;
    } catch (err) {
      throw err instanceof MergeError ? err : new MergeError(400, 'the request body must be JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MergeError(400, 'the request body must be a JSON object');
    if (body.ids !== undefined && (!Array.isArray(body.ids) || body.ids.length === 0 || body.ids.length > 1000 || !body.ids.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 100))) {
      throw new MergeError(400, 'ids must be a list of 1 to 1000 ids');
    }
    if (body.ids === undefined && body.all !== true) throw new MergeError(400, 'give ids, or all: true (narrowed by domain and state)');
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for await (const line of mergedBulk(this.targets(), verb, body, req.socket.remoteAddress ?? 'unknown')) {
      if (res.destroyed) return;
      if (!res.write(JSON.stringify(line) + '\n')) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
    }
    this.logger.info({ action: verb, client: req.socket.remoteAddress ?? 'unknown', shards: live(this.targets()).length }, 'queue action by the operator, sent to every shard concerned');
    res.end();
  }

  private pass(res: ServerResponse, answer: { status: number; body: unknown }): void {
    this.json(res, answer.status, answer.body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
  }
}
