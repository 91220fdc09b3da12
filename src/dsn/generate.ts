import { randomBytes, randomUUID } from 'node:crypto';
import qp from 'nodemailer/lib/qp/index.js';
import { formatReply, rfc5322Date } from '../smtp/index.js';
import { defaultHumanText, renderTemplate } from './text-parts.js';
import type { DsnEvent, DsnMessage, DsnParams, DsnRecipient, OriginalMessage } from './types.js';

const ACTION = { bounce: 'failed', expiration: 'failed', delay: 'delayed', success: 'delivered' } as const;
const SUBJECT = {
  bounce: 'Returned mail',
  expiration: 'Returned mail',
  delay: 'Delayed mail (still being retried)',
  success: 'Successful mail delivery report',
} as const;

const nonAscii = (s: string | Buffer) => (typeof s === 'string' ? /[^\x00-\x7f]/.test(s) : s.some((b) => b > 0x7f));

/** RFC 3461 §4.1: who wants which report. No NOTIFY means failures only (delays at the MTA's discretion). */
function wants(r: DsnRecipient, kind: DsnEvent['kind']): boolean {
  const notify = r.notify;
  if (notify?.includes('NEVER')) return false;
  if (kind === 'success') return !!notify?.includes('SUCCESS');
  if (kind === 'delay') return !notify || notify.includes('DELAY');
  return !notify || notify.includes('FAILURE');
}

/** A body part: quoted-printable when a line is too long for 7bit or the text is not ASCII (as the samples do). */
function textPart(contentType: string, charset: string, body: string): string {
  const needsQp = body.split('\r\n').some((l) => l.length > 76) || nonAscii(body);
  const headers = [`Content-Type: ${contentType};`, `\tcharset="${charset}"`];
  if (!needsQp) return headers.join('\r\n') + '\r\n\r\n' + body;
  const encoded = qp.wrap(qp.encode(Buffer.from(body, 'utf8')), 76);
  return [...headers, 'Content-Transfer-Encoding: quoted-printable'].join('\r\n') + '\r\n\r\n' + encoded + (encoded.endsWith('\r\n') ? '' : '\r\n');
}

/** An RFC 5322 comment: the reply text after the status code, with its specials escaped. */
const comment = (text: string) => (text ? ` (${text.replace(/[\\()]/g, (c) => '\\' + c).replace(/[\r\n]+/g, ' ')})` : '');

function statusFields(event: DsnEvent, recipients: readonly DsnRecipient[], params: DsnParams): string {
  const perMessage = [`Reporting-MTA: ${params.reportingMta.type}; ${params.reportingMta.name}`];
  if (event.envid) perMessage.push(`Original-Envelope-Id: ${event.envid}`);
  perMessage.push(`Arrival-Date: ${rfc5322Date(event.arrival)}`);
  const blocks = recipients.map((r) => {
    const status = r.reply.enhanced ?? `${String(r.reply.code)[0]}.0.0`;
    const lines: string[] = [];
    if (r.orcpt) lines.push(`Original-Recipient: ${r.orcpt}`);
    lines.push(`Final-Recipient: rfc822;${r.address}`, `Action: ${ACTION[event.kind]}`, `Status: ${status}${comment(r.reply.text)}`);
    if (r.remoteMta) lines.push(`Remote-MTA: dns; ${r.remoteMta.name}`);
    lines.push(`Diagnostic-Code: smtp; ${formatReply(r.reply)}`, `Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    if (event.kind === 'delay' && event.retryUntil) lines.push(`Will-Retry-Until: ${rfc5322Date(event.retryUntil)}`);
    return lines.join('\r\n');
  });
  return [perMessage.join('\r\n'), ...blocks].join('\r\n\r\n') + '\r\n';
}

function headerSection(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  return end === -1 ? message : message.subarray(0, end + 2);
}

/**
 * Makes an RFC 3464 delivery status notification for one event, or nothing when no
 * report is due: the kind is not enabled, the original sender is null (a bounce is
 * never bounced), or no recipient asked for this kind of report (NOTIFY). Pure: the
 * same event and params give the same bytes when stable_content is on.
 */
export function generateDsn(params: DsnParams, event: DsnEvent, original?: OriginalMessage): DsnMessage | undefined {
  if (event.kind === 'bounce' && !params.enableBounce) return undefined;
  if (event.kind === 'expiration' && !params.enableExpiration) return undefined;
  if (event.sender === '') return undefined;
  const recipients = event.recipients.filter((r) => wants(r, event.kind));
  if (recipients.length === 0) return undefined;

  const host = params.reportingMta.name;
  const boundary = params.stableContent ? 'report-boundary' : `report-${randomBytes(12).toString('hex')}`;
  const messageId = params.stableContent ? `<UUID@${host}>` : `<${randomUUID()}@${host}>`;
  const utf8 = event.smtpUtf8 || nonAscii(event.sender) || recipients.some((r) => nonAscii(r.address) || nonAscii(r.reply.text));

  let mode = params.includeOriginal;
  if (!original) mode = 'No';
  else if (mode === 'FullContent' && (event.ret === 'HDRS' || !original.complete)) mode = 'HeadersOnly';

  const human = params.template && (event.kind === 'bounce' || event.kind === 'expiration')
    ? renderTemplate(params.template, event, recipients, params)
    : defaultHumanText(event, recipients);
  const status = statusFields(event, recipients, params);

  const parts: Buffer[] = [Buffer.from(textPart('text/plain', nonAscii(human) ? 'utf-8' : 'us-ascii', human))];
  // RFC 6533: UTF-8 in the status fields calls for message/global-delivery-status, sent as 8bit.
  parts.push(
    Buffer.from(
      nonAscii(status)
        ? 'Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' + status
        : textPart('message/delivery-status', 'us-ascii', status),
    ),
  );
  let eightBit = nonAscii(status);
  if (mode !== 'No') {
    const body = mode === 'FullContent' ? original!.bytes : headerSection(original!.bytes);
    const is8 = nonAscii(body);
    eightBit ||= is8;
    const type =
      mode === 'FullContent' ? (event.smtpUtf8 ? 'message/global' : 'message/rfc822') : event.smtpUtf8 ? 'message/global-headers' : 'text/rfc822-headers';
    // message/* allows only 7bit or 8bit (RFC 2046 §5.2.1): 8-bit content is labelled, never re-encoded.
    const head = `Content-Type: ${type}\r\n${is8 ? 'Content-Transfer-Encoding: 8bit\r\n' : ''}\r\n`;
    const tail = body.length === 0 || body.subarray(-2).equals(Buffer.from('\r\n')) ? '' : '\r\n';
    parts.push(Buffer.concat([Buffer.from(head), body, Buffer.from(tail)]));
  }

  const top = [
    'Content-Type: multipart/report;',
    `\tboundary="${boundary}";`,
    '\treport-type="delivery-status"',
    `Subject: ${SUBJECT[event.kind]}`,
    'Mime-Version: 1.0',
    `Message-ID: ${messageId}`,
    `To: ${event.sender}`,
    `From: Mail Delivery Subsystem <mailer-daemon@${host}>`,
    `Date: ${rfc5322Date(event.now)}`,
    // RFC 3834: an automatic reply, so that autoresponders leave it alone.
    'Auto-Submitted: auto-replied',
  ].join('\r\n');
  const chunks: Buffer[] = [Buffer.from(top + '\r\n\r\n')];
  for (const part of parts) chunks.push(Buffer.from(`--${boundary}\r\n`), part);
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { bytes: Buffer.concat(chunks), eightBit, smtpUtf8: utf8, reported: recipients.map((r) => r.address) };
}
