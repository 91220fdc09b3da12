import { formatReply, rfc5322Date } from '../smtp/index.js';
import { isOwnExpiry } from './status-fields.js';
import type { DsnEvent, DsnParams, DsnRecipient } from './types.js';

/** Names the mail exchanger only when the reply is its own; a reply Tern made is its status. */
function peerLine(r: DsnRecipient, own = 'Status'): string[] {
  const remote = r.reply.remote;
  return remote ? [`While communicating with ${remote.name} (${remote.address}):`, `Response: ${formatReply(r.reply)}`] : [`${own}: ${formatReply(r.reply)}`];
}

function successLines(event: DsnEvent, r: DsnRecipient): string[] {
  const to = r.reply.remote ? ` to ${r.reply.remote.name} (${r.reply.remote.address})` : '';
  if (event.finalDelivery) return [`It was delivered${to}.`, `Response: ${formatReply(r.reply)}`];
  // RFC 3461 §5.2.2: the next hop offers no DSN, so no further report will come.
  return [`It was relayed${to}, which does not offer delivery status notifications: no further report will come.`, `Response: ${formatReply(r.reply)}`];
}

const FINAL = ['The message will be deleted from the queue.', 'No further attempts will be made to deliver it.'];

/** The human-readable part, after the wording of KumoMTA's samples. */
export function defaultHumanText(event: DsnEvent, recipients: readonly DsnRecipient[]): string {
  const received = `The message was received at ${rfc5322Date(event.arrival)}`;
  const blocks = recipients.map((r) => {
    const head = [received, `from ${event.sender} and addressed to ${r.address}.`];
    switch (event.kind) {
      case 'bounce':
        return [...head, ...peerLine(r)];
      case 'expiration':
        return [
          ...head,
          isOwnExpiry(r.reply) ? `Status: ${formatReply(r.reply)}` : 'Status: 5.4.7 Delivery time expired',
          ...(isOwnExpiry(r.reply) ? [] : peerLine(r, 'Last error')),
          `It had not been delivered by ${rfc5322Date(r.lastAttempt)}, when it expired.`,
        ];
      case 'delay':
        return [
          ...head,
          ...peerLine(r),
          `Delivery has been delayed; attempts continue${event.retryUntil ? ` until ${rfc5322Date(event.retryUntil)}` : ''}.`,
          'No action is required on your part.',
        ];
      case 'success':
        return [...head, ...successLines(event, r)];
    }
  });
  const tail = event.kind === 'bounce' || event.kind === 'expiration' ? [FINAL] : [];
  return [...blocks, ...tail].map((b) => b.join('\r\n')).join('\r\n\r\n') + '\r\n';
}

/** Fills Haraka's template variables; unknown `{names}` are left as written. */
export function renderTemplate(template: string, event: DsnEvent, recipients: readonly DsnRecipient[], params: DsnParams): string {
  const values: Record<string, string> = {
    pid: String(params.pid),
    date: rfc5322Date(event.now),
    me: params.me,
    from: event.sender,
    msgid: event.messageId,
    to: recipients[0]?.address ?? '',
    reason: recipients.map((r) => formatReply(r.reply)).join('; '),
  };
  const text = template.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
  return text.replace(/\r?\n/g, '\r\n').replace(/(\r\n)?$/, '\r\n');
}
