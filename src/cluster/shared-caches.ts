import { slotScope } from './redis-link.js';
import type { RedisLink } from './redis-link.js';

/**
 * Opportunistic hosts whose TLS handshake failed, as other nodes remember them. Only a
 * cache: the caller's own memory decides first, and no answer means no memory (try TLS).
 */
export interface SharedTlsMemory {
  /** How much longer a node remembers that TLS failed at this exact host, or undefined (none, or no answer). */
  recall(host: TlsHost): Promise<number | undefined>;
  /** This node remembers for `ms` that TLS failed at this host. */
  remember(host: TlsHost, ms: number): void;
}

/** One MX host exactly: its name, the address and port TLS failed at. */
export interface TlsHost {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** An MTA-STS policy as another node fetched it: its text, unparsed (the reader validates it as a fetched one). */
export interface StoredPolicy {
  readonly id: string;
  readonly text: string;
  /** How much longer it may be used (what is left of its max_age). */
  readonly remainingMs: number;
}

export interface SharedPolicyCache {
  /** The policy of `domain` another node fetched, or undefined (none, too large, garbled, or no answer). */
  lookup(domain: string): Promise<StoredPolicy | undefined>;
  /** Stores a policy this node fetched over HTTPS, for its max_age. */
  store(domain: string, policy: { readonly id: string; readonly text: string; readonly maxAgeMs: number }): void;
}

/** RFC 8461 §3.3: a policy is at most 64 KiB; a stored one larger than that is not read. */
export const MAX_STORED_POLICY_BYTES = 64 * 1024;
/** A policy id (RFC 8461 §3.1: 1 to 32 alphanumerics). */
const POLICY_ID = /^[A-Za-z0-9]{1,32}$/;
/** A year: RFC 8461 §3.2 caps max_age at 31557600 s. */
const MAX_AGE_MS = 31_557_600_000;
const MAX_NAME = 255;

/** GET and PTTL of one key in one round trip; a value longer than ARGV[1] bytes is not sent (an empty answer). */
const READ = `
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return {} end
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`;
/** JSON escapes at most sextuple a byte; anything larger cannot hold a 64 KiB policy. */
const MAX_STORED_VALUE_BYTES = MAX_STORED_POLICY_BYTES * 6 + 128;

/**
 * The TLS-failure memory and the MTA-STS policies of every node, in Redis: one key per
 * exact host (`notls:<name>|<address>|<port>`, expiring with the memory) and one per
 * domain (`{domain}:mta-sts`, JSON `{id, policy}`, expiring with max_age).
 */
export class RedisSharedCaches implements SharedTlsMemory, SharedPolicyCache {
  constructor(private readonly link: RedisLink) {}

  async recall(host: TlsHost): Promise<number | undefined> {
    const key = this.tlsKey(host);
    if (!key) return undefined;
    const ttl = await this.link.call('notls_recall', (c) => c.pttl(key), slotScope(key));
    return ttl !== undefined && ttl > 0 ? ttl : undefined;
  }

  remember(host: TlsHost, ms: number): void {
    const key = this.tlsKey(host);
    if (!key || !(ms >= 1)) return;
    void this.link.call('notls_remember', (c) => c.set(key, this.link.nodeId, 'PX', Math.round(ms)), slotScope(key));
  }

  async lookup(domain: string): Promise<StoredPolicy | undefined> {
    if (domain.length > MAX_NAME) return undefined;
    const answer = await this.link.script('sts_read', READ, [this.link.destinationKey(domain, 'mta-sts')], [MAX_STORED_VALUE_BYTES]);
    if (!Array.isArray(answer) || answer.length !== 2 || typeof answer[0] !== 'string') return undefined;
    const [value, ttl] = [answer[0], Number(answer[1])];
    if (!(ttl > 0) || value.length > MAX_STORED_VALUE_BYTES) return undefined;
    let stored: { id?: unknown; policy?: unknown };
    try {
      stored = JSON.parse(value) as typeof stored;
    } catch {
      return undefined;
    }
    const { id, policy } = stored ?? {};
    if (typeof id !== 'string' || !POLICY_ID.test(id) || typeof policy !== 'string' || Buffer.byteLength(policy) > MAX_STORED_POLICY_BYTES) return undefined;
    return { id, text: policy, remainingMs: Math.min(ttl, MAX_AGE_MS) };
  }

  store(domain: string, policy: { readonly id: string; readonly text: string; readonly maxAgeMs: number }): void {
    if (domain.length > MAX_NAME || !POLICY_ID.test(policy.id) || Buffer.byteLength(policy.text) > MAX_STORED_POLICY_BYTES || !(policy.maxAgeMs >= 1)) return;
    const key = this.link.destinationKey(domain, 'mta-sts');
    const value = JSON.stringify({ id: policy.id, policy: policy.text });
    void this.link.call('sts_store', (c) => c.set(key, value, 'PX', Math.min(Math.round(policy.maxAgeMs), MAX_AGE_MS)), slotScope(key));
  }

  private tlsKey(host: TlsHost): string | undefined {
    if (host.name.length > MAX_NAME || host.address.length > 64 || !Number.isInteger(host.port)) return undefined;
    return this.link.key('notls', `${host.name.toLowerCase().replace(/\.$/, '')}|${host.address}|${host.port}`);
  }
}
