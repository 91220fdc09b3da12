/** Longer values are cut: the header comes from a client, and it is written into every record of the message. */
export const MESSAGE_ID_MAX = 320;

/**
 * The value of the first Message-ID header field (RFC 5322 §3.6.4) in a header section,
 * unfolded and trimmed but otherwise as received (angle brackets included, no syntax
 * check: the log shows what the sender wrote), cut to MESSAGE_ID_MAX characters; null
 * when there is none or it is empty.
 */
export function messageIdHeader(headers: string): string | null {
  // A field starts a line; continuation lines start with white space (RFC 5322 §2.2.3).
  const m = /(?:^|\r?\n)Message-ID[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/i.exec(headers);
  if (!m) return null;
  const value = m[1].replace(/\r?\n(?=[ \t])/g, '').trim();
  return value === '' ? null : value.slice(0, MESSAGE_ID_MAX);
}
