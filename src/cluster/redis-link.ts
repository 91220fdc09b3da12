import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { RedisSettings } from '../config/index.js';
import type { Logger } from '../log/index.js';

export type RedisClient = Redis | Cluster;

export interface RedisLinkOptions {
  readonly settings: RedisSettings;
  /** This node's name in Redis; `defaultNodeId()` unless redis.ini says `node_id`. */
  readonly nodeId: string;
  readonly logger: Logger;
  /** A client built elsewhere (tests of a link's failure handling); default: from settings. */
  readonly client?: RedisClient;
}

/** A pub/sub message larger than this is dropped: nothing Tern publishes comes near it. */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** While Redis is down, how often a PING asks whether it is back. */
export const PROBE_EVERY_MS = 1000;
/** Reply errors that say the server cannot serve now, rather than that a command is wrong. */
const UNAVAILABLE = /^(CLUSTERDOWN|LOADING|TRYAGAIN|MASTERDOWN|READONLY|BUSY|NOREPLICAS)\b/;
/** A command error (OOM, NOPERM, a script's bug) is logged at most this often per command, with a count. */
const ERROR_RECORD_EVERY_MS = 10_000;
/** Hash slots (Redis Cluster) remembered as failing at most; past it the oldest are forgotten. */
const MAX_SCOPES = 10_000;

/**
 * What a key's Redis Cluster slot is computed from: the hash tag when the key has one
 * (`{…}`, non-empty), else the whole key (the Cluster specification's rule).
 */
export function slotScope(key: string): string {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

/** This node's default name: the host name, with the shard under nodes=N. */
export function defaultNodeId(shard?: number): string {
  return shard === undefined ? hostname() : `${hostname()}/shard-${shard}`;
}

/**
 * Redis configured for failure (issue #17): ioredis by default queues commands without
 * bound while Redis is away and retries each up to 20 times. Here a command that cannot be
 * sent fails at once (no offline queue), is retried once at most, and gives up after
 * `command_timeout`; reconnects back off up to 2 s, so a node is back within seconds of
 * Redis.
 */
function buildClient(settings: RedisSettings, nodeId: string): RedisClient {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: settings.command_timeout,
    connectTimeout: settings.connect_timeout,
    connectionName: `tern:${nodeId}`.replace(/[^\x21-\x7e]/g, '_'),
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
  const auth = { ...(settings.username ? { username: settings.username } : {}), ...(settings.password ? { password: settings.password } : {}) };
  if (settings.url) return new Redis(settings.url, common);
  if (settings.cluster) {
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
      slotsRefreshTimeout: settings.connect_timeout,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      maxRedirections: 4,
      redisOptions: {
        ...auth,
        ...(settings.tls ? { tls: {} } : {}),
        maxRetriesPerRequest: 1,
        commandTimeout: settings.command_timeout,
        connectTimeout: settings.connect_timeout,
        connectionName: common.connectionName,
      },
    };
    return new Cluster(settings.cluster.map(({ host, port }) => ({ host, port })), options);
  }
  if (settings.sentinels) {
    return new Redis({
      ...common,
      ...auth,
      ...(settings.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      sentinels: settings.sentinels.map(({ host, port }) => ({ host, port })),
      name: settings.name,
      db: settings.db,
    });
  }
  throw new Error('redis.ini: enabled without url=, cluster= or sentinels=');
}

/**
 * One node's connection to the shared state, and the one place that decides whether Redis
 * is up. Every call is bounded by `command_timeout` and never rejects: an error or a
 * timeout answers `undefined`, marks Redis down, and from then on calls answer
 * `undefined` at once (the caller applies `failure_mode`) until a PING is answered again.
 * Events: `down` and `up` (callers resynchronise what they hold on `up`).
 */
export class RedisLink extends EventEmitter {
  readonly nodeId: string;
  readonly prefix: string;
  readonly timeoutMs: number;
  private readonly client: RedisClient;
  private subscriber?: RedisClient;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private isUp = false;
  private downSince: number | undefined = Date.now();
  private probeTimer?: NodeJS.Timeout;
  private probing = false;
  private closed = false;
  private readonly scripts = new Set<string>();
  /**
   * Redis Cluster: slots (by scope) whose master did not answer, until when. One master
   * down takes only its slots' destinations to failure_mode; the link stays up for the
   * rest (a PING to another master would say up, and the link would flap).
   */
  private readonly scopesDown = new Map<string, number>();
  private readonly errorRecords = new Map<string, { at: number; suppressed: number }>();
  private readonly clustered: boolean;

  constructor(private readonly options: RedisLinkOptions) {
    super();
    this.nodeId = options.nodeId;
    this.prefix = options.settings.key_prefix;
    this.timeoutMs = options.settings.command_timeout;
    this.client = options.client ?? buildClient(options.settings, options.nodeId);
    this.clustered = this.client instanceof Cluster;
    // ioredis emits `error` on every failed reconnect; unhandled, an EventEmitter would throw.
    this.client.on('error', (err: Error) => this.noteError(err));
    // A connection lost and made again at once (Redis restarted between two calls) reports no
    // error: down and up still, so that callers check what Redis lost (the rejoin fence).
    this.client.on('close', () => this.noteError(new Error('connection closed')));
    this.client.on('ready', () => void this.probe());
    this.scheduleProbe();
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Since when (ms) Redis has not answered; undefined while it is up. */
  get downSinceMs(): number | undefined {
    return this.isUp ? undefined : this.downSince;
  }

  /** Resolves once Redis answered, or after `withinMs` (start-up waits that long at most). */
  async ready(withinMs: number): Promise<boolean> {
    if (this.isUp) return true;
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer);
        this.off('up', onUp);
        resolve(value);
      };
      const onUp = () => done(true);
      const timer = setTimeout(() => done(this.isUp), withinMs);
      timer.unref();
      this.on('up', onUp);
      void this.probe();
    });
  }

  /** A key of the whole cluster (`<prefix><parts…>`). */
  key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  /**
   * A key of one destination: every key of a destination carries it as the hash tag, so
   * that a script touching several of them runs on one Redis Cluster node.
   */
  destinationKey(destination: string, what: string): string {
    return `${this.prefix}{${destination.replace(/[{}]/g, '_')}}:${what}`;
  }

  /**
   * Runs `fn` against Redis within the timeout; `undefined` when Redis is down or fails.
   * `scope` names the hash slot the call works on (see slotScope): on a Redis Cluster a
   * failure then marks only that slot down for a moment, not the whole link.
   */
  async call<T>(what: string, fn: (client: RedisClient) => Promise<T>, scope?: string): Promise<T | undefined> {
    if (!this.isUp || this.closed) return undefined;
    if (scope !== undefined && this.clustered) {
      const until = this.scopesDown.get(scope);
      // Past its moment, the next call asks the slot's master again (and clears it on an answer).
      if (until !== undefined && until > Date.now()) return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      // ioredis's commandTimeout bounds each command; this bounds a call of several, and a
      // Cluster redirection.
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs + 50);
      });
      const answer = await Promise.race([fn(this.client), deadline]);
      if (scope !== undefined && this.clustered && this.scopesDown.delete(scope)) this.options.logger.info({ event: 'redis_slot_up', node: this.nodeId, scope }, 'a Redis Cluster master answers again');
      return answer;
    } catch (err) {
      this.fault(what, err as Error, scope);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs a Lua script (EVALSHA, loading it on NOSCRIPT). Scripts name every key they touch
   * in `keys` (Redis Cluster routes by them), and must be safe to run twice: a call that
   * timed out here may still run on the server.
   */
  async script(name: string, lua: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const command = `tern_${name}`;
    if (!this.scripts.has(command)) {
      this.client.defineCommand(command, { numberOfKeys: keys.length, lua });
      this.scripts.add(command);
    }
    const scope = keys.length > 0 ? slotScope(keys[0]) : undefined;
    return this.call(name, (c) => (c as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[command](...keys, ...args), scope);
  }

  /** Publishes on a cluster-wide channel (fire and forget; a lost message is caught by the periodic checks). */
  publish(channel: string, message: string): void {
    void this.call('publish', (c) => c.publish(this.key('ch', channel), message));
  }

  /**
   * Listens on a cluster-wide channel. The subscriber is a connection of its own (a
   * subscribed connection can do nothing else); it resubscribes after a reconnect.
   */
  subscribe(channel: string, handler: (message: string) => void): () => void {
    const full = this.key('ch', channel);
    let set = this.handlers.get(full);
    if (!set) {
      set = new Set();
      this.handlers.set(full, set);
      void this.subscriberClient()
        .subscribe(full)
        .catch((err: Error) => this.noteError(err));
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  private subscriberClient(): RedisClient {
    if (this.subscriber) return this.subscriber;
    // The subscriber may queue its SUBSCRIBE until connected: it carries no delivery's wait.
    // It waits for Redis as long as it takes (no retry limit): a SUBSCRIBE dropped while
    // Redis was away at start would leave the node deaf to every notice for its lifetime.
    const sub: RedisClient =
      this.client instanceof Cluster
        ? this.client.duplicate(undefined, { enableOfflineQueue: true, redisOptions: { ...this.client.options.redisOptions, maxRetriesPerRequest: null, commandTimeout: undefined } })
        : this.client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null });
    // After every (re)connection: what ioredis resubscribes is what it knew to be subscribed.
    sub.on('ready', () => {
      const channels = [...this.handlers.keys()];
      if (channels.length > 0) void sub.subscribe(...channels).catch((err: Error) => this.noteError(err));
    });
    sub.on('error', (err: Error) => this.noteError(err));
    sub.on('message', (channel: string, message: string) => {
      if (Buffer.byteLength(message) > MAX_MESSAGE_BYTES) return;
      for (const handler of this.handlers.get(channel) ?? []) {
        try {
          handler(message);
        } catch (err) {
          this.options.logger.error({ event: 'redis_message_failed', channel, err: (err as Error).message }, 'a Redis message could not be applied');
        }
      }
    });
    this.subscriber = sub;
    return sub;
  }

  /** Redis's clock in microseconds (`TIME`), or undefined when Redis is down. */
  async time(): Promise<number | undefined> {
    const t = await this.call('time', (c) => c.time());
    return t ? Number(t[0]) * 1e6 + Number(t[1]) : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probeTimer);
    const quit = async (c: RedisClient | undefined) => {
      if (!c) return;
      try {
        await Promise.race([c.quit(), new Promise((resolve) => setTimeout(resolve, this.timeoutMs).unref())]);
      } catch {
        // Already gone: nothing to say goodbye to.
      }
      c.disconnect();
    };
    await Promise.all([quit(this.client), quit(this.subscriber)]);
  }

  private fault(what: string, err: Error, scope?: string): void {
    if (this.closed) return;
    // A command's own error (a script's bug, OOM, NOPERM) is not Redis being away: the call
    // fails alone (the caller applies failure_mode), and the record is not repeated per call.
    if (err.name === 'ReplyError' && !UNAVAILABLE.test(err.message)) {
      const now = Date.now();
      const seen = this.errorRecords.get(what);
      if (seen && now - seen.at < ERROR_RECORD_EVERY_MS) {
        seen.suppressed++;
        return;
      }
      if (this.errorRecords.size > 100) this.errorRecords.clear();
      this.errorRecords.set(what, { at: now, suppressed: 0 });
      this.options.logger.error({ event: 'redis_command_failed', what, err: err.message, suppressed: seen?.suppressed ?? 0 }, 'a Redis command failed');
      return;
    }
    // One master of a Redis Cluster away: its slots wait, the others go on.
    if (this.clustered && scope !== undefined && (this.client as Cluster).status === 'ready') {
      if (this.scopesDown.size >= MAX_SCOPES) this.scopesDown.delete(this.scopesDown.keys().next().value!);
      const fresh = !this.scopesDown.has(scope);
      this.scopesDown.set(scope, Date.now() + PROBE_EVERY_MS);
      if (fresh) this.options.logger.warn({ event: 'redis_slot_down', node: this.nodeId, what, scope, err: err.message, failure_mode: this.options.settings.failure_mode }, 'a Redis Cluster master does not answer: its destinations follow failure_mode for a second, then ask again');
      return;
    }
    if (!this.isUp) return;
    this.isUp = false;
    this.downSince = Date.now();
    this.options.logger.warn({ event: 'redis_down', node: this.nodeId, what, err: err.message, failure_mode: this.options.settings.failure_mode }, 'Redis does not answer: limits follow failure_mode until it does');
    this.emit('down');
    this.scheduleProbe();
  }

  private noteError(err: Error): void {
    if (this.isUp && !this.closed) this.fault('connection', err);
  }

  private scheduleProbe(): void {
    if (this.closed || this.isUp) return;
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.probe().finally(() => this.scheduleProbe()), PROBE_EVERY_MS);
    this.probeTimer.unref();
  }

  /** A PING within the timeout: answered, Redis is up again. */
  private async probe(): Promise<void> {
    if (this.isUp || this.probing || this.closed) return;
    this.probing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), this.timeoutMs);
      });
      await Promise.race([this.client.ping(), deadline]);
      if (this.closed) return;
      this.isUp = true;
      const downMs = this.downSince === undefined ? 0 : Date.now() - this.downSince;
      this.downSince = undefined;
      this.options.logger.info({ event: 'redis_up', node: this.nodeId, down_ms: downMs }, 'Redis answers: limits are shared again');
      this.emit('up');
    } catch {
      // Still away: the next probe asks again.
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }
}
