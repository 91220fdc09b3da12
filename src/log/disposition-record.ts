import { isAdminAction } from '../core/index.js';
import type { AdminAction, Disposition, DispositionEntry, PeerInfo, Reception, RecipientDisposition, SmtpReply } from '../core/index.js';
import type { DispositionRecord } from './records.js';

function response(reply: SmtpReply): NonNullable<DispositionRecord['response']> {
  return { code: reply.code, enhanced_code: reply.enhanced ?? null, content: reply.text };
}

function peer(p: PeerInfo | undefined): DispositionRecord['peer'] {
  return p ? { name: p.name, address: p.address, port: p.port } : null;
}

function receptionRecord(e: Reception): DispositionRecord {
  const head = {
    type: e.kind,
    id: e.messageId,
    message_id: e.messageId,
    message_id_header: e.headerMessageId,
    sender: e.envelope.sender,
    recipients: e.envelope.recipients.map((r) => r.address),
    response: response(e.reply),
    size: e.size,
    queued_at: e.at.toISOString(),
    ...(e.dkim?.length ? { dkim: e.dkim.map((s) => ({ domain: s.domain, selector: s.selector, algorithm: s.algorithm })) } : {}),
  };
  if (e.reason.kind === 'report') {
    const r = e.reason.report;
    return { ...head, report: { kind: r.kind, original_id: r.originalId, original_message_id: r.originalMessageId, recipients: r.recipients } };
  }
  const c = e.reason.client;
  return { ...head, client: { address: c.address, ...(c.name !== undefined ? { name: c.name } : {}), helo: c.helo, user: c.user, tls: c.tls } };
}

// Records of one queue entry open with who it is and close with its size and times, in
// this order, whatever comes between (the field order is part of the records' format).
function entryIdentity(entry: DispositionEntry) {
  return { id: entry.id, message_id: entry.messageId, message_id_header: entry.headerMessageId ?? null, sender: entry.sender, domain: entry.domain };
}

function entryTimes(e: RecipientDisposition | AdminAction) {
  return { size: e.entry.size, queued_at: new Date(e.entry.queuedAt).toISOString(), timestamp: e.at.toISOString(), type: e.kind };
}

function recipientRecord(e: RecipientDisposition): DispositionRecord {
  return {
    ...entryIdentity(e.entry),
    attempt: e.attempt,
    peer: peer(e.peer),
    tls: e.tls,
    tls_version: e.tlsInfo?.version ?? null,
    tls_cipher: e.tlsInfo?.cipher ?? null,
    ...entryTimes(e),
    recipient: e.recipient,
    response: response(e.reply),
    ...(e.nextAttemptAt ? { next_attempt_at: e.nextAttemptAt.toISOString() } : {}),
  };
}

function adminRecord(e: AdminAction): DispositionRecord {
  return {
    ...entryIdentity(e.entry),
    ...entryTimes(e),
    recipients: e.recipients,
    admin: { client: e.admin.client, reason: e.admin.reason ?? null },
  };
}

/**
 * The log record of a disposition: the one place that knows the record's field names
 * (snake_case, ISO 8601 times), documented in README's *Logs*. Nothing reads them back.
 */
export function dispositionRecord(event: Disposition): DispositionRecord {
  if (event.kind === 'Reception') return receptionRecord(event);
  return isAdminAction(event) ? adminRecord(event) : recipientRecord(event);
}
