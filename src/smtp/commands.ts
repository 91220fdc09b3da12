import type { EnvelopeDsn, RecipientDsn } from '../core/index.js';
import type { Capabilities } from './capabilities.js';

/**
 * xtext (RFC 3461 §4): printable ASCII except `+` and `=` as is, every other octet of the
 * UTF-8 encoding as `+HH`.
 */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d ? String.fromCharCode(byte) : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** ORCPT as stored (`rfc822;user@example.com`, decoded): the address type as is, the address as xtext (RFC 3461 §4.2). */
export function orcptParam(orcpt: string): string | undefined {
  const semi = orcpt.indexOf(';');
  if (semi <= 0) return undefined;
  const type = orcpt.slice(0, semi).trim();
  if (!/^[A-Za-z0-9-]+$/.test(type)) return undefined;
  return `ORCPT=${type};${xtext(orcpt.slice(semi + 1).trim())}`;
}

export interface MailOptions {
  readonly size: number;
  readonly eightBit: boolean;
  readonly smtpUtf8: boolean;
  readonly dsn?: EnvelopeDsn;
}

/** MAIL FROM with each parameter only when the server announced its extension. */
export function mailCommand(sender: string, opts: MailOptions, caps: Capabilities): string {
  let line = `MAIL FROM:<${sender}>`;
  if (caps.has('SIZE') && opts.size > 0) line += ` SIZE=${opts.size}`;
  if (opts.eightBit && caps.has('8BITMIME')) line += ' BODY=8BITMIME';
  if (opts.smtpUtf8 && caps.has('SMTPUTF8')) line += ' SMTPUTF8';
  if (caps.has('DSN')) {
    if (opts.dsn?.ret) line += ` RET=${opts.dsn.ret}`;
    if (opts.dsn?.envid) line += ` ENVID=${xtext(opts.dsn.envid)}`;
  }
  return line;
}

/** RCPT TO with this recipient's own NOTIFY and ORCPT (RFC 3461 §4.1, §4.2), only to a server announcing DSN. */
export function rcptCommand(address: string, dsn: RecipientDsn | undefined, caps: Capabilities): string {
  let line = `RCPT TO:<${address}>`;
  if (dsn && caps.has('DSN')) {
    if (dsn.notify && dsn.notify.length > 0) line += ` NOTIFY=${dsn.notify.join(',')}`;
    const orcpt = dsn.orcpt ? orcptParam(dsn.orcpt) : undefined;
    if (orcpt) line += ` ${orcpt}`;
  }
  return line;
}
