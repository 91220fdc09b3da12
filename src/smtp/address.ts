import { isIP } from 'node:net';

/** The domain part of a mailbox, lower-cased; empty for the null sender or a bare local part. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/**
 * True for a mailbox that can be routed: a local part and a domain made of labels
 * (or an address literal in brackets). smtp-server has checked the syntax loosely
 * already; this is the stricter check before an address becomes a queue entry.
 */
export function isRoutableAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return false;
  const domain = address.slice(at + 1);
  if (domain.startsWith('[') && domain.endsWith(']')) return true;
  return domain.split('.').every((label) => label.length > 0 && label.length <= 63 && !/[\s<>()[\]\\,;:@"]/.test(label));
}

/**
 * True for a domain name as a queue entry can carry it: at most 253 octets, labels of 1
 * to 63 octets (RFC 1035 §2.3.4) made of letters, digits, `-` and `_` (U-labels of RFC
 * 5890 included), or an address literal in brackets (RFC 5321 §4.1.3).
 */
export function isDomainName(name: string): boolean {
  if (name.length === 0 || Buffer.byteLength(name) > 253) return false;
  if (name.startsWith('[') && name.endsWith(']')) return isIP(name.slice(1, -1).replace(/^ipv6:/i, '')) !== 0;
  return name
    .split('.')
    .every((label) => label.length > 0 && Buffer.byteLength(label) <= 63 && /^[\p{L}\p{N}_](?:[\p{L}\p{N}\p{M}_-]*[\p{L}\p{N}\p{M}_])?$/u.test(label));
}
