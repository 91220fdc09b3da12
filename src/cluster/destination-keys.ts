import type { Clock } from '../core/index.js';
import { defaultBurst, mxPattern } from '../config/index.js';
import type { LimitSection, LimitsConfig } from '../config/index.js';
import type { DestinationLimits } from './coordinator.js';
import type { OverrideTable } from './limit-overrides.js';
import { lowerRate } from './policy-records.js';
import type { OverrideRecord } from './policy-records.js';

/** A destination under limits.ini: the key its limits are kept by, and the limits. */
export interface ShapedDestination {
  /** The recipient domain, `site:<MX hosts>` (scope=site) or `mx:<pattern>`. */
  readonly key: string;
  readonly limits: DestinationLimits;
  /** limits.ini max_deliveries_per_connection, when set. */
  readonly maxDeliveries?: number;
}

export interface DestinationKeyOptions {
  readonly limits: () => LimitsConfig;
  /**
   * The connection cap routes.ini or outbound.ini give the domain: a shaped destination's
   * sessions stay within it too (the lower limit wins).
   */
  readonly localLimit: (domain: string) => number;
  /** The names of the domain's MX hosts (the implicit MX is the domain), undefined when unknown now. */
  readonly mxHosts: (domain: string) => Promise<readonly string[] | undefined>;
  readonly clock: Clock;
  /** Limit overrides in force (`tern domain override`, automation.ini): they lower limits.ini's. */
  readonly overrides?: OverrideTable;
}

/** How long a domain's MX host names are kept for its site (the resolver's cache is per record). */
const SITE_TTL_MS = 60_000;
const SITE_CACHE_MAX = 10_000;
const FAILED_TTL_MS = 5_000;
const MISSING = Symbol('not looked up');

/**
 * Which limits.ini section governs a recipient domain, and under which key its limits are
 * kept. In order: the domain's own section; an `[mx:pattern]` section matching one of its
 * MX hosts; a `scope=site` domain section whose MX hosts are the same as the domain's
 * (googlemail.com shares gmail.com's); `[*]`. A section takes the keys it leaves unset
 * from `[*]`. With scope=site the key is the site, the sorted names of the MX hosts, so
 * that every domain served by those hosts shares one limit (KumoMTA's site_name).
 *
 * The MX lookup is needed only when a site could apply (an `[mx:]` section, a scope=site
 * section); otherwise the answer is synchronous and costs nothing.
 */
export class DestinationKeys {
  private readonly sites = new Map<string, { hosts?: readonly string[]; until: number; pending?: Promise<readonly string[] | undefined> }>();

  constructor(private readonly options: DestinationKeyOptions) {}

  /**
   * undefined: neither limits.ini nor an override shapes this domain (today's per-domain cap
   * applies alone). An override lowers the limits of the domain's own key, of the domain,
   * and of an `mx:` destination matching one of its MX hosts; a domain limits.ini leaves
   * alone becomes shaped by it (under the `mx:` key when one matches, so that every domain
   * those hosts serve shares it).
   */
  resolve(domain: string): ShapedDestination | undefined | Promise<ShapedDestination | undefined> {
    const base = this.fromLimits(domain);
    const table = this.options.overrides;
    if (!table || table.size === 0) return base;
    if (base instanceof Promise) return base.then((b) => this.overridden(domain, b, table));
    return this.overridden(domain, base, table);
  }

  private overridden(domain: string, base: ShapedDestination | undefined, table: OverrideTable): ShapedDestination | undefined | Promise<ShapedDestination | undefined> {
    const mxKeys = table.mxKeys();
    let hosts: readonly string[] | undefined;
    if (mxKeys.length > 0) {
      const cached = this.cachedHosts(domain);
      if (cached === MISSING) return this.lookUp(domain).then(() => this.overridden(domain, base, table));
      hosts = cached;
    }
    const found: OverrideRecord[] = [];
    const add = (o: OverrideRecord | undefined) => o && !found.includes(o) && found.push(o);
    add(table.get(domain));
    if (base) add(table.get(base.key));
    let mxKey: string | undefined;
    for (const key of mxKeys) {
      const pattern = mxPattern(key.slice(3));
      if (hosts?.some((h) => pattern.test(h))) {
        add(table.get(key));
        mxKey ??= key;
      }
    }
    if (found.length === 0) return base;
    const local = this.options.localLimit(domain);
    let maxConnections = base?.limits.maxConnections ?? local;
    let rate = base?.limits.rate;
    for (const o of found) {
      if (o.maxConnections !== undefined) maxConnections = Math.min(maxConnections, o.maxConnections);
      const lower = lowerRate(rate, o.maxMessageRate);
      if (lower !== rate && lower) rate = { count: lower.count, perMs: lower.perMs, burst: Math.min(defaultBurst(lower), rate?.burst ?? Infinity) };
    }
    return {
      key: base?.key ?? mxKey ?? domain,
      limits: { maxConnections, ...(rate ? { rate } : {}) },
      ...(base?.maxDeliveries !== undefined ? { maxDeliveries: base.maxDeliveries } : {}),
    };
  }

  /** What limits.ini alone says of the domain. */
  private fromLimits(domain: string): ShapedDestination | undefined | Promise<ShapedDestination | undefined> {
    const { sections } = this.options.limits();
    if (sections.size === 0) return undefined;
    const own = sections.get(domain);
    const star = sections.get('*');
    if (own && own.scope !== 'site') return this.shaped(domain, domain, star, own);
    const siteMatters = own !== undefined || star?.scope === 'site' || [...sections].some(([name, s]) => name.startsWith('mx:') || (s.scope === 'site' && name !== '*'));
    if (!siteMatters) return star ? this.shaped(domain, domain, star) : undefined;
    // From the cache when every MX lookup it needs is there (always, but for the first time
    // of a domain in a while): the scheduler asks again then, and gets the answer at once.
    const missing = new Set<string>();
    const cached = (name: string) => {
      const hosts = this.cachedHosts(name);
      if (hosts === MISSING) missing.add(name);
      return hosts === MISSING ? undefined : hosts;
    };
    const found = this.bySite(domain, cached, sections, star, own);
    if (missing.size === 0) return found;
    return Promise.all([...missing].map((name) => this.lookUp(name))).then(() => this.bySite(domain, (name) => {
      const hosts = this.cachedHosts(name);
      return hosts === MISSING ? undefined : hosts;
    }, sections, star, own));
  }

  private bySite(domain: string, hostsOf: (name: string) => readonly string[] | undefined, sections: ReadonlyMap<string, LimitSection>, star?: LimitSection, own?: LimitSection): ShapedDestination | undefined {
    const hosts = hostsOf(domain);
    // Unknown MX hosts (a lookup failing now): the domain is its own destination until they are known.
    const site = hosts && hosts.length > 0 ? `site:${hosts.join(',')}` : domain;
    if (own) return this.shaped(domain, site, star, own);
    for (const [name, section] of sections) {
      if (!name.startsWith('mx:') || !hosts) continue;
      const pattern = mxPattern(name.slice(3));
      if (hosts.some((h) => pattern.test(h))) return this.shaped(domain, name, star, section);
    }
    for (const [name, section] of sections) {
      if (section.scope !== 'site' || name === '*' || name.startsWith('mx:') || !hosts) continue;
      const theirs = hostsOf(name);
      if (theirs && theirs.join(',') === hosts.join(',')) return this.shaped(domain, site, star, section);
    }
    if (!star) return undefined;
    return this.shaped(domain, star.scope === 'site' ? site : domain, star);
  }

  private shaped(domain: string, key: string, star?: LimitSection, own?: LimitSection): ShapedDestination | undefined {
    const pick = <K extends keyof LimitSection>(k: K) => own?.[k] ?? star?.[k];
    const maxConnections = pick('max_connections');
    const rate = pick('max_message_rate');
    const maxDeliveries = pick('max_deliveries_per_connection');
    if (maxConnections === undefined && rate === undefined && maxDeliveries === undefined) return undefined;
    // The burst belongs with the rate it was written for: a section's own rate takes its own burst.
    const burst = own?.max_message_rate !== undefined ? own.burst : (own?.burst ?? star?.burst);
    const local = this.options.localLimit(domain);
    return {
      key,
      limits: {
        maxConnections: Math.min(maxConnections ?? local, local),
        ...(maxConnections === undefined ? { nodeOnly: true } : {}),
        ...(rate ? { rate: { count: rate.count, perMs: rate.perMs, burst: burst ?? defaultBurst(rate) } } : {}),
      },
      ...(maxDeliveries !== undefined ? { maxDeliveries } : {}),
    };
  }

  /** The domain's MX host names (sorted, lower case) from the cache; MISSING when not there or stale. */
  private cachedHosts(domain: string): readonly string[] | undefined | typeof MISSING {
    const known = this.sites.get(domain);
    return known && !known.pending && known.until > this.options.clock.now() ? known.hosts : MISSING;
  }

  /** Looks the domain's MX hosts up into the cache (one lookup at a time per domain). */
  private lookUp(domain: string): Promise<unknown> {
    const known = this.sites.get(domain);
    if (known?.pending) return known.pending;
    const pending = this.options
      .mxHosts(domain)
      .then((names) => (names ? [...new Set(names.map((n) => n.toLowerCase().replace(/\.$/, '')))].sort() : undefined))
      .catch(() => undefined)
      .then((hosts) => {
        this.sites.delete(domain);
        // A failed lookup is asked again soon; a found site is kept a while.
        this.sites.set(domain, { hosts, until: this.options.clock.now() + (hosts ? SITE_TTL_MS : FAILED_TTL_MS) });
        if (this.sites.size > SITE_CACHE_MAX) this.sites.delete(this.sites.keys().next().value!);
        return hosts;
      });
    this.sites.set(domain, { until: 0, pending });
    return pending;
  }
}
