import { isIP } from 'node:net';
import type { DnsResolver } from './resolver.js';

// RFC 1035 §2.3.4 limits; the underscore is tolerated since real PTR records carry it.
const MAX_NAME = 253;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;
// A PTR set is under the control of whoever owns the address; a few names are enough.
const MAX_NAMES_TRIED = 3;

/** A name that can be written into a Received header or a log: a plain host name. */
function usableName(raw: string): string | undefined {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (!name || name.length > MAX_NAME) return undefined;
  return name.split('.').every((label) => LABEL.test(label)) ? name : undefined;
}

function sameAddress(a: string, b: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  if (isIP(norm(a)) === 6 && isIP(norm(b)) === 6) return expand(norm(a)) === expand(norm(b));
  return norm(a) === norm(b);
}

function expand(v6: string): string {
  const [head, tail] = v6.includes('::') ? v6.split('::') : [v6, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

/**
 * The client's host name, forward-confirmed as Postfix does it (smtpd_peer_init): a PTR
 * name counts only when its own A/AAAA records lead back to the address. Anything
 * else (no PTR, a name that does not resolve back, a DNS failure) is undefined, and
 * the caller writes the address alone.
 */
export async function confirmedClientName(resolver: Pick<DnsResolver, 'reverse' | 'query'>, address: string): Promise<string | undefined> {
  const v4 = isIP(address) === 4 || /^::ffff:\d+\./i.test(address);
  let names: string[];
  try {
    names = await resolver.reverse(address);
  } catch {
    return undefined;
  }
  for (const raw of names.slice(0, MAX_NAMES_TRIED)) {
    const name = usableName(raw);
    if (!name) continue;
    try {
      const forward = await resolver.query(name, v4 ? 'A' : 'AAAA');
      if (forward.answers.some((a) => a.type === (v4 ? 'A' : 'AAAA') && sameAddress(String(a.data), address))) return name;
    } catch {
      // A failed forward lookup leaves the name unconfirmed, like a mismatch.
    }
  }
  return undefined;
}
