import { createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { DkimConfig, DkimSelectorConfig } from '../config/index.js';
import type { BodyCanonicalization } from './mailauth-adapter.js';

/** One signature to make: a dkim.ini section resolved for one message's domain. */
export interface SigningKey {
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  readonly algorithm: DkimSelectorConfig['algorithm'];
  readonly canonicalization: DkimSelectorConfig['canonicalization'];
  readonly headers: readonly string[];
  readonly oversign: readonly string[];
  readonly key: KeyObject;
  /** The section it comes from, for log records. */
  readonly section: string;
}

const bodyCanonOf = (c: string): BodyCanonicalization => (c.split('/')[1] === 'simple' ? 'simple' : 'relaxed');

/**
 * The keys of one dkim.ini, parsed once (a KeyObject per section) and looked up by
 * domain. A reload builds a new ring; a message keeps the ring it started with.
 */
export class KeyRing {
  readonly signBy: DkimConfig['sign_by'];
  private readonly domains = new Map<string, { config: DkimSelectorConfig; key: KeyObject }[]>();

  constructor(config: DkimConfig) {
    this.signBy = config.sign_by;
    for (const [domain, list] of config.domains) {
      this.domains.set(
        domain,
        list.map((config) => ({ config, key: createPrivateKey(config.privateKey) })),
      );
    }
  }

  /** No sections at all: nothing is ever signed, and messages are not even looked at. */
  get empty(): boolean {
    return this.domains.size === 0;
  }

  /** Every body canonicalization some section uses (what to hash while the domain is not yet known). */
  get bodyCanonicalizations(): BodyCanonicalization[] {
    const all = new Set<BodyCanonicalization>();
    for (const list of this.domains.values()) for (const { config } of list) all.add(bodyCanonOf(config.canonicalization));
    return [...all];
  }

  /**
   * The signatures for mail of `domain`: its own sections, else the nearest parent
   * domain's (mail of news.example.com signs as example.com, which DMARC's relaxed
   * alignment accepts, RFC 7489 §3.1.1), else `[*]`'s; none when no section applies.
   */
  keysFor(domain: string): SigningKey[] {
    const d = domain.toLowerCase().replace(/\.$/, '');
    if (!d) return [];
    const labels = d.split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const candidate = labels.slice(i).join('.');
      const list = this.domains.get(candidate);
      if (list) return list.map((s) => this.signingKey(s, candidate));
    }
    return (this.domains.get('*') ?? []).map((s) => this.signingKey(s, d));
  }

  private signingKey({ config, key }: { config: DkimSelectorConfig; key: KeyObject }, domain: string): SigningKey {
    return {
      domain: config.signingDomain ?? domain,
      selector: config.selector,
      algorithm: config.algorithm,
      canonicalization: config.canonicalization,
      headers: config.headers,
      oversign: config.oversign,
      key,
      section: config.section,
    };
  }
}

export { bodyCanonOf };
