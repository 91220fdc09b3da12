import { randomBytes, randomUUID } from 'node:crypto';
import qp from 'nodemailer/lib/qp/index.js';
import { rfc5322Date } from '../smtp/index.js';
import { actionOf, nonAscii, statusFields } from './status-fields.js';
import { defaultHumanText, renderTemplate } from './text-parts.js';
import type { DsnEvent, DsnMessage, DsnParams, DsnRecipient, OriginalMessage } from './types.js';

const SUBJECT = {
  bounce: 'Returned mail',
  expiration: 'Returned mail',
  delay: 'Delayed mail (still being retried)',
  success: 'Successful mail delivery report',
} as const;

/** RFC 3461 §4.1: who wants which report. No NOTIFY means failures only (delays at the MTA's discretion). */
function wants(r: DsnRecipient, kind: DsnEvent['kind']): boolean {
  const notify = r.notify;
  if (notify?.includes('NEVER')) return false;
  if (kind === 'success') return !!notify?.includes('SUCCESS');
  if (kind === 'delay') return !notify || notify.includes('DELAY');
  return !notify || notify.includes('FAILURE');
}

/** The human-readable part: quoted-printable when a line is too long for 7bit or the text is not ASCII (as the samples do). */
function textPart(charset: string, body: string): string {
  const needsQp = body.split('\r\n').some((l) => l.length > 76) || nonAscii(body);
  const headers = ['Content-Type: text/plain;', `\tcharset="${charset}"`];
  if (!needsQp) return headers.join('\r\n') + '\r\n\r\n' + body;
  const encoded = qp.wrap(qp.encode(Buffer.from(body, 'utf8')), 76);
  return [...headers, 'Content-Transfer-Encoding: quoted-printable'].join('\r\n') + '\r\n\r\n' + encoded + (encoded.endsWith('\r\n') ? '' : '\r\n');
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
  // UTF-8 in the envelope or the report's header needs SMTPUTF8; UTF-8 reply text only 8BITMIME (RFC 6533 §6.3).
  const utf8 = event.smtpUtf8 || nonAscii(event.sender) || recipients.some((r) => nonAscii(r.address) || nonAscii(r.orcpt ?? ''));

  let mode = params.includeOriginal;
  if (!original) mode = 'No';
  else if (mode === 'FullContent' && (event.ret === 'HDRS' || !original.complete)) mode = 'HeadersOnly';

  const human = params.template && (event.kind === 'bounce' || event.kind === 'expiration')
    ? renderTemplate(params.template, event, recipients, params)
    : defaultHumanText(event, recipients);
  const status = statusFields(event, recipients, params, actionOf(event));

  const parts: Buffer[] = [Buffer.from(textPart(nonAscii(human) ? 'utf-8' : 'us-ascii', human))];
  // RFC 3464 §2.1 and RFC 6522: the status part is 7bit, its long fields folded, and has no
  // charset parameter; a quoted-printable one is read by few parsers. UTF-8 in it (an
  // address, reply text) calls for RFC 6533's message/global-delivery-status, sent as 8bit.
  parts.push(
    Buffer.from(
      nonAscii(status)
        ? 'Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' + status
        : 'Content-Type: message/delivery-status\r\n\r\n' + status,
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
