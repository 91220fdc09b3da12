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
