import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Clock } from '../core/index.js';
import type { SharedPolicyCache } from '../cluster/index.js';
import type { DnsResolver } from '../dns/index.js';
import { hostAddresses } from '../dns/index.js';
import type { Logger } from '../log/index.js';

/** An RFC 8461 policy as published at https://mta-sts.<domain>/.well-known/mta-sts.txt. */
export interface StsPolicy {
  readonly mode: 'enforce' | 'testing' | 'none';
  readonly mx: readonly string[];
  readonly maxAge: number;
  /** The `id=` of the TXT record the policy was fetched under. */
  readonly id: string;
}

interface Cached {
  readonly policy: StsPolicy;
  readonly expires: number;
}

const MAX_POLICY_BYTES = 64 * 1024;

/** RFC 8461 §3.2: `mx: *.example.net` matches exactly one leftmost label. */
export function mxMatches(patterns: readonly string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    const pattern = p.toLowerCase().replace(/\.$/, '');
    if (pattern.startsWith('*.')) {
      const rest = pattern.slice(1);
      return name.endsWith(rest) && !name.slice(0, -rest.length).includes('.') && name.length > rest.length;
    }
    return name === pattern;
  });
}

export function parsePolicy(text: string, id: string): StsPolicy | undefined {
  const fields = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([a-z_]+):\s*(.*?)\s*$/i.exec(line);
    if (m) fields.set(m[1].toLowerCase(), [...(fields.get(m[1].toLowerCase()) ?? []), m[2]]);
  }
  const mode = fields.get('mode')?.[0];
  const maxAge = Number(fields.get('max_age')?.[0]);
  if (fields.get('version')?.[0] !== 'STSv1' || (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') || !Number.isInteger(maxAge) || maxAge < 0) {
    return undefined;
  }
  return { mode, mx: fields.get('mx') ?? [], maxAge: Math.min(maxAge, 31557600), id };
}

/**
 * MTA-STS (RFC 8461) policies: discovered through the `_mta-sts` TXT record, fetched over
 * HTTPS with a verified certificate (through Tern's own resolver), cached for max_age
 * and fetched again when the record's id changes. A policy that cannot be fetched, with
 * none cached, means no policy (§5).
 */
export class MtaStsPolicies {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly deps: {
      readonly resolver: () => DnsResolver;
      readonly clock: Clock;
      readonly logger: Logger;
      readonly ca: () => Buffer | undefined;
      /** outbound.ini mta_sts_port: 443 but in tests. */
      readonly port: () => number;
      /** Read at each fetch, so that a reload of connect_timeout applies to the next one. */
      readonly timeoutMs: () => number;
      /** redis.ini: policies other nodes fetched, asked before fetching over HTTPS. */
      readonly shared?: SharedPolicyCache;
    },
  ) {}

  async policyFor(domain: string): Promise<StsPolicy | undefined> {
    const now = this.deps.clock.now();
    const cached = this.cache.get(domain);
    let id: string | undefined;
    try {
      const txt = await this.deps.resolver().query(`_mta-sts.${domain}`, 'TXT');
      const records = txt.answers
        .filter((a) => a.type === 'TXT')
        .map((a) => {
          const data = (a as { data: unknown }).data;
          return (Array.isArray(data) ? data : [data]).map((d) => (Buffer.isBuffer(d) ? d.toString('utf8') : String(d))).join('');
        })
        .filter((t) => /^v=STSv1\s*;/.test(t));
      if (records.length === 1) id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(records[0])?.[1];
    } catch {
      // DNS trouble: keep whatever is cached.
    }
    if (cached && cached.expires > now && (id === undefined || id === cached.policy.id)) return cached.policy;
    if (id === undefined) return cached && cached.expires > now ? cached.policy : undefined;
    const stored = await this.fromCluster(domain, id);
    if (stored) return stored;
    try {
      const text = await this.fetch(domain);
      const policy = parsePolicy(text, id);
      if (!policy) throw new Error('the policy does not parse');
      this.cache.set(domain, { policy, expires: now + policy.maxAge * 1000 });
      this.deps.shared?.store(domain, { id, text, maxAgeMs: policy.maxAge * 1000 });
      this.deps.logger.info({ domain, mode: policy.mode, mx: policy.mx, max_age: policy.maxAge, id }, 'MTA-STS policy fetched');
      return policy;
    } catch (err) {
      this.deps.logger.warn({ domain, id, error: (err as Error).message }, 'MTA-STS policy could not be fetched');
      return cached && cached.expires > now ? cached.policy : undefined;
    }
  }

  /**
   * The policy another node fetched under the id the TXT record names now, validated as a
   * fetched one (parsePolicy; the cache read at most 64 KiB of it). Anything else, or no
   * answer, and the policy is fetched over HTTPS as without a cluster.
   */
  private async fromCluster(domain: string, id: string): Promise<StsPolicy | undefined> {
    const found = await this.deps.shared?.lookup(domain);
    if (!found || found.id !== id) return undefined;
    const policy = parsePolicy(found.text, id);
    if (!policy) {
      this.deps.logger.warn({ event: 'mta_sts_shared_invalid', domain, id }, 'the MTA-STS policy in the cluster cache does not parse: fetching it over HTTPS');
      return undefined;
    }
    const now = this.deps.clock.now();
    this.cache.set(domain, { policy, expires: now + Math.min(found.remainingMs, policy.maxAge * 1000) });
    this.deps.logger.info({ event: 'mta_sts_shared', domain, mode: policy.mode, mx: policy.mx, max_age: policy.maxAge, id, remaining_ms: found.remainingMs }, 'MTA-STS policy from the cluster cache');
    return policy;
  }

  private async fetch(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    const { addresses } = await hostAddresses(this.deps.resolver(), host, 'default');
    if (addresses.length === 0) throw new Error(`no address for ${host}`);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: addresses[0],
          port: this.deps.port(),
          servername: host,
          headers: { host },
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          // Node's ca option replaces the defaults: keep the public roots beside an operator's own CA.
          ca: this.deps.ca() ? [...rootCertificates, this.deps.ca()!.toString()] : undefined,
          rejectUnauthorized: true,
          timeout: this.deps.timeoutMs(),
        },
        (res) => {
          // RFC 8461 §3.3: no redirects, 200 only, text/plain.
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode} from ${host}`));
          if (!/^text\/plain\b/i.test(res.headers['content-type'] ?? '')) return reject(new Error(`content-type ${res.headers['content-type']} from ${host}`));
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_POLICY_BYTES) req.destroy(new Error('policy larger than 64 KiB'));
            else chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timeout fetching the policy from ${host}`)));
      req.on('error', reject);
      req.end();
    });
  }
}
