import type { SmtpReply } from '../core/index.js';
import { replyFromLines } from './reply.js';

/** One complete reply as it came off the wire: its code and the text of each line. */
export interface WireReply {
  readonly code: number;
  /** The text after `NNN-`/`NNN ` of each line, decoded as UTF-8. */
  readonly lines: readonly string[];
}

export interface ReplyLimits {
  /** Octets in one line, CRLF excluded (RFC 5321 §4.5.3.1.5 says 512; servers exceed it). */
  readonly maxLineBytes: number;
  readonly maxLines: number;
  /** Octets in one reply, all lines with their CRLFs. */
  readonly maxReplyBytes: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = { maxLineBytes: 4096, maxLines: 1000, maxReplyBytes: 64 * 1024 };

/** What a feed produced: the replies completed by this chunk and, once the peer broke the protocol, why. */
export interface ParseResult {
  readonly replies: WireReply[];
  readonly error?: SmtpReply;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Streaming SMTP reply parser. Each input byte is looked at a bounded number of times:
 * a line is found with one `indexOf` over the new chunk, decoded once when complete
 * (UTF-8, invalid sequences replaced, never throwing) and never revisited, so the cost is
 * linear in the input under any chunking. A peer that breaks the protocol (a line or a
 * reply over the limits, a line without a code, a multi-line reply whose lines carry
 * different codes) gets one error back; the parser then ignores everything else.
 */
export class ReplyParser {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private lines: string[] = [];
  private code = 0;
  private replyBytes = 0;
  private failed?: SmtpReply;

  constructor(private readonly limits: ReplyLimits = DEFAULT_REPLY_LIMITS) {}

  /** Bytes of a reply received but not yet complete: 0 between replies. */
  get pendingBytes(): number {
    return this.partialBytes + this.replyBytes;
  }

  feed(chunk: Buffer): ParseResult {
    const replies: WireReply[] = [];
    if (this.failed) return { replies, error: this.failed };
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        // No end of line in the rest of this chunk: keep it (a reference, not a copy), bounded.
        if (this.partialBytes + chunk.length - start > this.limits.maxLineBytes + 1) {
          return { replies, error: this.fail(`sent a reply line longer than ${this.limits.maxLineBytes} octets`) };
        }
        this.partial.push(chunk.subarray(start));
        this.partialBytes += chunk.length - start;
        break;
      }
      let line: Buffer;
      if (this.partialBytes === 0) line = chunk.subarray(start, lf);
      else {
        this.partial.push(chunk.subarray(start, lf));
        line = Buffer.concat(this.partial, this.partialBytes + lf - start);
        this.partial = [];
        this.partialBytes = 0;
      }
      start = lf + 1;
      const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
      if (end > this.limits.maxLineBytes) return { replies, error: this.fail(`sent a reply line longer than ${this.limits.maxLineBytes} octets`) };
      const reply = this.onLine(line, end);
      if (this.failed) return { replies, error: this.failed };
      if (reply) replies.push(reply);
    }
    return { replies };
  }

  private onLine(line: Buffer, end: number): WireReply | undefined {
    const code = replyCode(line, end);
    const sep = end > 3 ? line[3] : 0x20;
    if (code === undefined || (sep !== 0x20 && sep !== 0x2d)) {
      this.fail(`sent a line that is not an SMTP reply: "${line.toString('utf8', 0, Math.min(end, 80))}"`);
      return undefined;
    }
    if (this.lines.length > 0 && code !== this.code) {
      this.fail(`sent a multi-line reply with different codes (${this.code} and ${code})`);
      return undefined;
    }
    this.replyBytes += line.length + 1;
    if (this.lines.length >= this.limits.maxLines || this.replyBytes > this.limits.maxReplyBytes) {
      this.fail(`sent a reply of more than ${this.limits.maxLines} lines or ${this.limits.maxReplyBytes} octets`);
      return undefined;
    }
    this.code = code;
    this.lines.push(end > 4 ? line.toString('utf8', 4, end) : '');
    if (sep === 0x2d) return undefined;
    const reply: WireReply = { code, lines: this.lines };
    this.lines = [];
    this.replyBytes = 0;
    return reply;
  }

  private fail(what: string): SmtpReply {
    this.failed = { code: 451, enhanced: '4.5.0', text: `protocol error: the server ${what}` };
    this.partial = [];
    this.lines = [];
    return this.failed;
  }
}

function replyCode(line: Buffer, end: number): number | undefined {
  if (end < 3) return undefined;
  const a = line[0] - 0x30;
  const b = line[1] - 0x30;
  const c = line[2] - 0x30;
  if (a < 2 || a > 5 || b < 0 || b > 9 || c < 0 || c > 9) return undefined;
  return a * 100 + b * 10 + c;
}

/**
 * The reply as Tern logs and judges it: code, enhanced code and the lines' text joined,
 * with the mail exchanger that sent it (reports name a Remote-MTA only for such replies).
 */
export function toSmtpReply(wire: WireReply, remote?: SmtpReply['remote']): SmtpReply {
  const reply = replyFromLines(wire.code, wire.lines);
  return remote ? { ...reply, remote } : reply;
}
