import type { SmtpReply } from '../core/index.js';
import { parseReply } from '../smtp/index.js';

export type Phase = 'greeting' | 'command' | 'mail' | 'rcpt' | 'data-init' | 'data-block' | 'data-done';

/**
 * Pairs each server reply with the command it answers, from nodemailer's transaction
 * log (replies come back in command order, also when pipelined, RFC 2920 §3.1). This
 * gives Tern every RCPT reply, including the exact text of accepted ones, and tells
 * which phase the session is in for the RFC 5321 §4.5.3.2 timeouts.
 */
export class Transcript {
  readonly rcptReplies = new Map<string, SmtpReply>();
  mailReply?: SmtpReply;
  dataReply?: SmtpReply;
  /** The reply after the final dot: the one that decides accepted recipients. */
  finalReply?: SmtpReply;
  /** LMTP (RFC 2033 §4.2): one reply after the final dot per accepted recipient. */
  readonly lmtpReplies = new Map<string, SmtpReply>();
  private lmtpPending: string[] = [];

  constructor(private readonly lmtp = false) {}
  greeting?: SmtpReply;
  phase: Phase = 'greeting';
  /** STARTTLS was sent and no EHLO has followed it yet: a failure now is a TLS failure. */
  tlsPending = false;
  private readonly awaiting: string[] = [];
  private sawGreeting = false;
  private awaitingFinal = false;
  private bodyEnded = false;

  /** A new transaction on the same connection: forget the last one's replies. */
  beginTransaction(): void {
    this.rcptReplies.clear();
    this.lmtpReplies.clear();
    this.lmtpPending = [];
    this.mailReply = undefined;
    this.dataReply = undefined;
    this.finalReply = undefined;
    this.awaitingFinal = false;
    this.bodyEnded = false;
    this.phase = 'command';
  }

  onClient(line: string): void {
    const verb = line.slice(0, 4).toUpperCase();
    if (line.toUpperCase().startsWith('STARTTLS')) this.tlsPending = true;
    else if (verb === 'EHLO' || verb === 'HELO' || verb === 'LHLO') this.tlsPending = false;
    this.awaiting.push(line);
    if (verb === 'MAIL') this.phase = 'mail';
    else if (verb === 'RCPT') this.phase = 'rcpt';
    else if (verb === 'DATA') this.phase = 'data-init';
    else this.phase = 'command';
  }

  onServer(raw: string): void {
    const reply = parseReply(raw);
    if (!this.sawGreeting) {
      this.sawGreeting = true;
      this.greeting = reply;
      this.phase = 'command';
      return;
    }
    // After a 354 the next reply answers the message itself, not a command (under LMTP,
    // one reply per accepted recipient, in RCPT order).
    if (this.awaitingFinal) {
      if (this.lmtp) {
        const rcpt = this.lmtpPending.shift();
        if (rcpt && reply) this.lmtpReplies.set(rcpt, reply);
        if (this.lmtpPending.length > 0) return;
      } else {
        this.finalReply = reply;
      }
      this.awaitingFinal = false;
      this.phase = 'command';
      return;
    }
    const command = this.awaiting.shift();
    if (!command || !reply) return;
    const verb = command.slice(0, 4).toUpperCase();
    if (verb === 'MAIL') this.mailReply = reply;
    else if (verb === 'RCPT') {
      const m = /^RCPT TO:<([^>]*)>/i.exec(command);
      if (m) this.rcptReplies.set(m[1], reply);
    } else if (verb === 'DATA') {
      this.dataReply = reply;
      if (reply.code === 354) {
        this.awaitingFinal = true;
        this.lmtpPending = [...this.rcptReplies].filter(([, r]) => r.code < 400).map(([a]) => a);
        this.phase = this.bodyEnded ? 'data-done' : 'data-block';
      }
    }
  }

  /**
   * The message body is being read (per chunk) or has been read to its end. Reading can
   * run ahead of the 354 (stream buffering), so the phase only moves once DATA is answered.
   */
  onBody(ended: boolean): void {
    if (ended) this.bodyEnded = true;
    if (this.awaitingFinal) this.phase = this.bodyEnded ? 'data-done' : 'data-block';
  }
}
