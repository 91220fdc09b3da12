import { formatReply, rfc5322Date } from '../smtp/index.js';
import type { DsnEvent, DsnParams, DsnRecipient } from './types.js';

function peerLine(r: DsnRecipient): string[] {
  return r.remoteMta ? [`While communicating with ${r.remoteMta.name} (${r.remoteMta.address}):`, `Response: ${formatReply(r.reply)}`] : [`Status: ${formatReply(r.reply)}`];
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
        return [...head, `Status: ${formatReply(r.reply)}`, `It had not been delivered by ${rfc5322Date(r.lastAttempt)}, when it expired.`];
      case 'delay':
        return [
          ...head,
          ...peerLine(r),
          `Delivery has been delayed; attempts continue${event.retryUntil ? ` until ${rfc5322Date(event.retryUntil)}` : ''}.`,
          'No action is required on your part.',
        ];
      case 'success':
        return [...head, `It was delivered${r.remoteMta ? ` to ${r.remoteMta.name} (${r.remoteMta.address})` : ''}.`, `Response: ${formatReply(r.reply)}`];
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
