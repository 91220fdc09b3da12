import { isIP } from 'node:net';
import type { SmtpReply } from '../core/index.js';
import { TernError } from '../core/index.js';
import type { DnsResolver } from './resolver.js';
import { isLocalAddress } from './address-policy.js';

export interface MxHost {
  readonly name: string;
  readonly preference: number;
  /** Addresses in the order to try them (inet_prefer applied). */
  readonly addresses: readonly string[];
}

export type MxPlan =
  | { readonly ok: true; readonly hosts: readonly MxHost[]; readonly implicit: boolean }
  | { readonly ok: false; readonly permanent: boolean; readonly reply: SmtpReply };

export interface MxPlanOptions {
  readonly inetPrefer: 'default' | 'v4' | 'v6';
  readonly localMxOk: boolean;
  readonly random?: () => number;
}

const temporary = (text: string): MxPlan => ({ ok: false, permanent: false, reply: { code: 451, enhanced: '4.4.3', text } });
const permanent = (code: number, enhanced: string, text: string): MxPlan => ({ ok: false, permanent: true, reply: { code, enhanced, text } });

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

interface HostAddresses {
  readonly v4: string[];
  readonly v6: string[];
  readonly temporaryFailure?: string;
}

async function addressesOf(resolver: DnsResolver, name: string): Promise<HostAddresses> {
  if (isIP(name) === 4) return { v4: [name], v6: [] };
  if (isIP(name) === 6) return { v4: [], v6: [name] };
  const [a, aaaa] = await Promise.allSettled([resolver.query(name, 'A'), resolver.query(name, 'AAAA')]);
  const pick = (r: PromiseSettledResult<Awaited<ReturnType<DnsResolver['query']>>>, type: 'A' | 'AAAA') =>
    r.status === 'fulfilled' ? r.value.answers.filter((x) => x.type === type).map((x) => String((x as { data: unknown }).data)) : [];
  const failures = [a, aaaa].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return {
    v4: pick(a, 'A'),
    v6: pick(aaaa, 'AAAA'),
    temporaryFailure: failures.length ? (failures[0].reason as Error).message : undefined,
  };
}

/** The addresses of one host, in inet_prefer order (a literal IP is its own address). */
export async function hostAddresses(resolver: DnsResolver, name: string, prefer: MxPlanOptions['inetPrefer']): Promise<{ addresses: string[]; temporaryFailure?: string }> {
  const addr = await addressesOf(resolver, name);
  return { addresses: ordered(addr, prefer), temporaryFailure: addr.temporaryFailure };
}

function ordered(addr: HostAddresses, prefer: MxPlanOptions['inetPrefer']): string[] {
  // Haraka's `default` prefers IPv6 at equal MX priority.
  return prefer === 'v4' ? [...addr.v4, ...addr.v6] : [...addr.v6, ...addr.v4];
}

/**
 * Turns a destination domain into the ordered list of hosts to try (RFC 5321 §5.1):
 * MX records by preference, random among equals; no MX → the domain itself (implicit
 * MX); a null MX (RFC 7505) → permanent 556 5.1.10.
 */
export async function resolveMxPlan(resolver: DnsResolver, domain: string, options: MxPlanOptions): Promise<MxPlan> {
  const random = options.random ?? Math.random;
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  let candidates: { name: string; preference: number }[];
  let implicit = false;
  if (literal) {
    if (!isIP(literal[1])) return permanent(550, '5.1.2', `invalid address literal ${domain}`);
    candidates = [{ name: literal[1], preference: 0 }];
  } else {
    let mx;
    try {
      mx = await resolver.query(domain, 'MX');
    } catch (err) {
      return temporary(err instanceof TernError ? err.reply.text : String(err));
    }
    if (mx.rcode === 'NXDOMAIN') return permanent(550, '5.1.2', `domain ${domain} does not exist (NXDOMAIN)`);
    const records = mx.answers
      .filter((a) => a.type === 'MX')
      .map((a) => (a as { data: unknown }).data as { preference: number; exchange: string });
    if (records.length === 1 && (records[0].exchange === '' || records[0].exchange === '.')) {
      return permanent(556, '5.1.10', `domain ${domain} accepts no mail (null MX, RFC 7505)`);
    }
    const real = records.filter((r) => r.exchange !== '' && r.exchange !== '.');
    if (real.length === 0) {
      implicit = true;
      candidates = [{ name: domain, preference: 0 }];
    } else {
      const byPref = new Map<number, string[]>();
      for (const r of real) byPref.set(r.preference, [...(byPref.get(r.preference) ?? []), r.exchange.replace(/\.$/, '')]);
      candidates = [...byPref.keys()]
        .sort((x, y) => x - y)
        .flatMap((pref) => shuffle(byPref.get(pref)!, random).map((name) => ({ name, preference: pref })));
    }
  }

  const resolved = await Promise.all(candidates.map(async (c) => ({ ...c, addr: await addressesOf(resolver, c.name) })));
  const hosts: MxHost[] = [];
  let sawTemporary: string | undefined;
  let refusedLocal = 0;
  for (const c of resolved) {
    if (c.addr.temporaryFailure) sawTemporary ??= c.addr.temporaryFailure;
    const all = ordered(c.addr, options.inetPrefer);
    const allowed = options.localMxOk ? all : all.filter((a) => !isLocalAddress(a));
    refusedLocal += all.length - allowed.length;
    if (allowed.length > 0) hosts.push({ name: c.name, preference: c.preference, addresses: allowed });
  }
  if (hosts.length > 0) return { ok: true, hosts, implicit };
  if (sawTemporary) return temporary(sawTemporary);
  if (refusedLocal > 0) {
    return permanent(550, '5.4.4', `mail exchangers of ${domain} resolve only to local or private addresses (set local_mx_ok=true to allow)`);
  }
  return permanent(550, '5.4.4', `no address found for the mail exchangers of ${domain}`);
}
