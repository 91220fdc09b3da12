import type { Clock } from '../core/index.js';
import type { SharedTlsMemory, TlsHost } from '../cluster/index.js';
import type { Logger } from '../log/index.js';

/** How long an answer of the shared memory is kept here before Redis is asked again about that host. */
const RECHECK_MS = 60_000;
/** Hosts kept in each map; past it the expired ones go, then the oldest. */
const MAX_HOSTS = 10_000;

/**
 * Opportunistic hosts whose TLS handshake failed, until when they get plaintext (as
 * Haraka does): this node's own memory, authoritative, and, with redis.ini, what other
 * nodes remember of the exact same host (name, address, port), asked at most once a
 * minute per host. No answer from the shared memory is no memory: TLS is tried.
 */
export class NoTlsMemory {
  /** address:port → until (epoch ms): what this node saw itself. */
  private readonly own = new Map<string, number>();
  /** name|address|port → what the shared memory answered, and until when that answer is used. */
  private readonly heard = new Map<string, { until: number; recheckAt: number }>();

  constructor(
    private readonly deps: {
      readonly clock: Clock;
      readonly logger: Logger;
      readonly shared?: SharedTlsMemory;
    },
  ) {}

  /** Whether this opportunistic host gets plaintext now; `shared`: whether other nodes' memory may be asked (no_tls_memory > 0). */
  async remembered(host: TlsHost, shared: boolean): Promise<boolean> {
    const now = this.deps.clock.now();
    if ((this.own.get(`${host.address}:${host.port}`) ?? 0) > now) return true;
    if (!this.deps.shared || !shared) return false;
    const key = `${host.name.toLowerCase()}|${host.address}|${host.port}`;
    const known = this.heard.get(key);
    if (known && known.recheckAt > now) return known.until > now;
    const remainingMs = await this.deps.shared.recall(host);
    const at = this.deps.clock.now();
    this.heard.delete(key);
    bound(this.heard, at, (v) => v.recheckAt);
    this.heard.set(key, { until: remainingMs === undefined ? 0 : at + remainingMs, recheckAt: at + RECHECK_MS });
    if (remainingMs === undefined) return false;
    this.deps.logger.info({ event: 'tls_memory_shared', peer: { name: host.name, address: host.address, port: host.port }, remaining_ms: remainingMs }, 'another node remembers a failed TLS handshake at this host: plaintext');
    return true;
  }

  /** TLS failed at this host: plaintext for `ms`, here and (as a cache) for the other nodes. */
  remember(host: TlsHost, ms: number): void {
    const now = this.deps.clock.now();
    bound(this.own, now, (until) => until);
    this.own.set(`${host.address}:${host.port}`, now + ms);
    if (ms > 0) this.deps.shared?.remember(host, ms);
  }
}

/** Makes room for one more: expired entries go first, then the oldest. */
function bound<V>(map: Map<string, V>, now: number, expiry: (v: V) => number): void {
  if (map.size < MAX_HOSTS) return;
  for (const [k, v] of map) if (expiry(v) <= now) map.delete(k);
  for (const k of map.keys()) {
    if (map.size < MAX_HOSTS) break;
    map.delete(k);
  }
}
