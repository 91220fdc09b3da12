import type { RecipientOutcome, SmtpReply } from '../core/index.js';

// RFC 3463 §2: class.subject.detail, subject and detail up to three digits each.
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;
const REPLY_LINE = /^(\d{3})([ -]?)(.*)$/;

/**
 * Parses a (possibly multi-line) SMTP reply as servers send it. Continuation lines
 * are joined with a space and their repeated code and enhanced code dropped, so the
 * text reads as one sentence in logs and reports. Returns undefined for input that
 * holds no reply code at all.
 */
export function parseReply(raw: string): SmtpReply | undefined {
  const lines = raw.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.length > 0);
  let code: number | undefined;
  const texts: string[] = [];
  for (const line of lines) {
    const m = REPLY_LINE.exec(line);
    if (!m) {
      texts.push(line.trim());
      continue;
    }
    code ??= Number(m[1]);
    texts.push(m[3]);
  }
  if (code === undefined || code < 200 || code > 599) return undefined;
  return replyFromLines(code, texts);
}

/**
 * A reply from its code and the text of its lines (code and separator removed). The
 * lines are joined with a space and their repeated enhanced code dropped, so the text
 * reads as one sentence in logs and reports.
 */
export function replyFromLines(code: number, lines: readonly string[]): SmtpReply {
  let enhanced: string | undefined;
  const texts: string[] = [];
  for (const line of lines) {
    let text = line.trim();
    const e = ENHANCED.exec(text);
    if (e) {
      enhanced ??= `${e[1]}.${Number(e[2])}.${Number(e[3])}`;
      text = text.slice(e[0].length).trim();
    }
    if (text) texts.push(text);
  }
  // An enhanced code whose class disagrees with the basic code is not trustworthy (RFC 3463 §2).
  if (enhanced && enhanced[0] !== String(code)[0]) enhanced = undefined;
  return { code, enhanced, text: texts.join(' ') };
}

export function formatReply(reply: SmtpReply): string {
  return [String(reply.code), reply.enhanced, reply.text].filter(Boolean).join(' ');
}

export type ReplyClass = 'success' | 'transient' | 'permanent';

export function classifyReply(reply: SmtpReply): ReplyClass {
  if (reply.code < 400) return 'success';
  return reply.code < 500 ? 'transient' : 'permanent';
}

/** One recipient's outcome from the reply that decides it: 2xx delivered, 4xx deferred, 5xx failed. */
export function recipientOutcome(address: string, reply: SmtpReply): RecipientOutcome {
  const cls = classifyReply(reply);
  return { address, reply, result: cls === 'success' ? 'delivered' : cls === 'transient' ? 'deferred' : 'failed' };
}
