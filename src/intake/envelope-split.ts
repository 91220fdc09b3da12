import type { Envelope } from '../core/index.js';
import { domainOf } from '../smtp/index.js';
import type { EntryDraft } from '../spool/index.js';

/**
 * One entry per destination domain, so that each domain's recipients share one SMTP
 * transaction; with always_split, one entry per recipient (Haraka's semantics).
 */
export function splitEnvelope(envelope: Envelope, alwaysSplit: boolean, headerMessageId?: string | null, headerPrefix?: string): EntryDraft[] {
  const groups = new Map<string, EntryDraft['recipients']>();
  envelope.recipients.forEach((r, i) => {
    const domain = domainOf(r.address);
    const key = alwaysSplit ? `${domain}\u0000${i}` : domain;
    const list = groups.get(key) ?? [];
    list.push({ address: r.address, state: 'pending', ...(r.dsn ? { dsn: r.dsn } : {}) });
    groups.set(key, list);
  });
  return [...groups.entries()].map(([key, recipients]) => ({
    domain: key.split('\u0000')[0],
    sender: envelope.sender,
    recipients,
    dsn: envelope.dsn,
    smtpUtf8: envelope.smtpUtf8,
    bodyType: envelope.bodyType,
    ...(headerMessageId ? { headerMessageId } : {}),
    ...(headerPrefix ? { headerPrefix } : {}),
  }));
}
