import { rfc5322Date } from '../smtp/index.js';
import type { DsnEvent, DsnParams, DsnRecipient } from './types.js';

/** Lines SHOULD stay within 78 characters and MUST within 998 octets (RFC 5322 §2.1.1). */
const SOFT = 78;
/** A word longer than this (no white space in it) is cut in pieces that fit 78, or its line could pass 998 octets. */
const LONGEST_WORD = 900;

/** The diagnostic type of a reply Tern made itself, as Postfix writes `X-Postfix;` (RFC 3464 §2.3.6: "X-" types). */
const OWN_DIAGNOSTIC_TYPE = 'X-Tern';

const ACTION = { bounce: 'failed', expiration: 'failed', delay: 'delayed' } as const;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
export const nonAscii = (s: string | Buffer) => (typeof s === 'string' ? /[^\x00-\x7f]/.test(s) : s.some((b) => b > 0x7f));

function cut(word: string): string[] {
  if (bytes(word) <= LONGEST_WORD) return [word];
  const pieces: string[] = [];
  let piece = '';
  for (const ch of word) {
    if (bytes(piece + ch) > SOFT - 2) {
      pieces.push(piece);
      piece = '';
    }
    piece += ch;
  }
  return [...pieces, piece];
}

/**
 * One field, folded the RFC 5322 way (§2.2.3): a CRLF goes before a space, so that
 * unfolding gives the field back. Runs of white space, CR and LF in the value become
 * one space. The first `keep` words stay on the first line, so that a parser reading
 * line by line still finds `Diagnostic-Code: smtp; 550` there. Folds before 78
 * characters where a space allows; no line passes 998 octets.
 */
export function foldField(name: string, value: string, keep = 2): string {
  const words = `${name}: ${value}`.split(/\s+/).filter((w) => w.length > 0).flatMap(cut);
  const lines: string[] = [];
  let line = words.slice(0, keep).join(' ');
  for (const word of words.slice(keep)) {
    const longer = `${line} ${word}`;
    if (bytes(longer) <= SOFT) line = longer;
    else {
      lines.push(line);
      line = ` ${word}`;
    }
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** An RFC 5322 comment, its specials escaped. */
const comment = (text: string) => (text ? ` (${text.replace(/[\\()]/g, (c) => '\\' + c)})` : '');

/** RFC 6533 §3: an address that is not ASCII is of type `utf-8`. */
function addressField(name: string, typed: string): string {
  const semi = typed.indexOf(';');
  const type = semi === -1 ? 'rfc822' : typed.slice(0, semi).trim();
  const address = semi === -1 ? typed : typed.slice(semi + 1).trim();
  return foldField(name, `${nonAscii(address) ? 'utf-8' : type};${address}`, 3);
}

/**
 * The Status code of a recipient block: the reply's own for a bounce; 5.4.7 for an
 * expiration and 4.4.7 for a delay (RFC 3463: delivery time expired), whatever the last
 * reply was, which stays in Diagnostic-Code.
 */
function statusOf(kind: DsnEvent['kind'], r: DsnRecipient): string {
  if (kind === 'expiration') return '5.4.7 (delivery time expired)';
  if (kind === 'delay') return '4.4.7 (delivery delayed, still being retried)';
  return `${r.reply.enhanced ?? `${String(r.reply.code)[0]}.0.0`}${comment(r.reply.text.replace(/\s+/g, ' ').trim())}`;
}

/** A reply of Tern's own that is the expiry itself (X.4.7, delivery time expired): no attempt got a reply. */
export const isOwnExpiry = (reply: DsnRecipient['reply']) => !reply.remote && /^[45]\.4\.7$/.test(reply.enhanced ?? '');

/**
 * The Diagnostic-Code: a remote MTA's reply as `smtp;` with its code (RFC 3464 §2.3.6);
 * text Tern made up itself as its own type, without a reply code, for no remote said it.
 * An expiration after Tern's own errors says so first, as parsers look for it there.
 */
function diagnostic(kind: DsnEvent['kind'], r: DsnRecipient): string {
  const { reply } = r;
  if (reply.remote) return foldField('Diagnostic-Code', `smtp; ${[String(reply.code), reply.enhanced, reply.text].filter(Boolean).join(' ')}`, 3);
  const text = reply.text || [reply.code, reply.enhanced].filter(Boolean).join(' ');
  const own = kind === 'expiration' && !isOwnExpiry(reply) ? `delivery time expired; last error: ${text}` : text;
  return foldField('Diagnostic-Code', `${OWN_DIAGNOSTIC_TYPE}; ${own}`, 3);
}

/**
 * The body of the message/delivery-status part (RFC 3464 §2): the per-message fields and
 * one block per recipient, every line within 998 octets so that the part stays 7bit.
 */
export function statusFields(event: DsnEvent, recipients: readonly DsnRecipient[], params: DsnParams, action: string): string {
  const perMessage = [foldField('Reporting-MTA', `${params.reportingMta.type}; ${params.reportingMta.name}`, 3)];
  if (event.envid) perMessage.push(foldField('Original-Envelope-Id', event.envid));
  perMessage.push(`Arrival-Date: ${rfc5322Date(event.arrival)}`);
  const blocks = recipients.map((r) => {
    const lines: string[] = [];
    if (r.orcpt) lines.push(addressField('Original-Recipient', r.orcpt));
    lines.push(addressField('Final-Recipient', r.address), `Action: ${action}`, foldField('Status', statusOf(event.kind, r)));
    // RFC 3464 §2.3.5: only when a remote MTA was involved, and it is the one whose reply this is.
    if (r.reply.remote) lines.push(foldField('Remote-MTA', `dns; ${r.reply.remote.name}`, 3));
    lines.push(diagnostic(event.kind, r), `Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    if (event.kind === 'delay' && event.retryUntil) lines.push(`Will-Retry-Until: ${rfc5322Date(event.retryUntil)}`);
    return lines.join('\r\n');
  });
  return [perMessage.join('\r\n'), ...blocks].join('\r\n\r\n') + '\r\n';
}

/** The Action of a report's recipients; a success report's comes with the event (delivered or relayed). */
export function actionOf(event: DsnEvent): string {
  return event.kind === 'success' ? (event.finalDelivery ? 'delivered' : 'relayed') : ACTION[event.kind];
}
