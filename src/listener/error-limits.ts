import type { SMTPServerSession } from 'smtp-server';
import type { SmtpReply } from '../core/index.js';
import type { TernConfig } from '../config/index.js';
import type { RefusalContext } from './rejections.js';

/** A refusal Tern decides: the reply and the reason its Rejection record names. */
export interface Refusal {
  readonly reason: string;
  readonly reply: SmtpReply;
}

/** What one connection has done wrong so far, and what its next Rejection record should say. */
export interface ConnectionState {
  /** Refusals Tern decided since the connection opened or last delivered a message. */
  errors: number;
  authFailures: number;
  /** The next refusal's context, set just before it is sent and taken by the reply observer. */
  pending: { -readonly [K in keyof RefusalContext]: RefusalContext[K] };
}

/** The Error smtp-server turns into a reply: responseCode and `<enhanced> <text>`. */
export function smtpError(reply: SmtpReply): Error {
  return Object.assign(new Error(`${reply.enhanced ? reply.enhanced + ' ' : ''}${reply.text}`), { responseCode: reply.code });
}

const TOO_MANY_ERRORS: Refusal = { reason: 'error_limit', reply: { code: 421, enhanced: '4.7.0', text: 'Too many errors, closing connection' } };

/**
 * Postfix's per-connection error limits (smtpd_soft_error_limit, smtpd_hard_error_limit,
 * smtpd_error_sleep_time) over the refusals Tern decides. A connection past the soft limit
 * gets every further refusal late, by a timer (the event loop never waits, and smtp-server
 * reads no further command until the reply is out); past the hard limit it is closed with
 * 421 4.7.0, which smtp-server follows by closing the connection. Like Postfix, the count
 * is of errors "without delivering mail": an accepted message starts it again.
 */
export class ErrorLimits {
  // Keyed by smtp-server's session object, which lives as long as its connection.
  private readonly states = new WeakMap<SMTPServerSession, ConnectionState>();

  constructor(private readonly settings: () => TernConfig['smtp']) {}

  state(session: SMTPServerSession): ConnectionState {
    let s = this.states.get(session);
    if (!s) this.states.set(session, (s = { errors: 0, authFailures: 0, pending: {} }));
    return s;
  }

  /** The refusal for a connection that has used up its errors, before anything else is decided. */
  exhausted(session: SMTPServerSession): Refusal | undefined {
    return this.state(session).errors >= this.settings().hard_error_limit ? TOO_MANY_ERRORS : undefined;
  }

  /** A message was accepted: the connection's errors are forgiven. */
  delivered(session: SMTPServerSession): void {
    this.state(session).errors = 0;
  }

  /**
   * Answers with a refusal: counts it, marks its reason for the Rejection record, and calls
   * back at once, or after error_sleep_time past the soft limit (at least `minDelaySeconds`).
   */
  refuse(session: SMTPServerSession, refusal: Refusal, cb: (err: Error) => void, options: { minDelaySeconds?: number; authUser?: string } = {}): void {
    const cfg = this.settings();
    const state = this.state(session);
    const sleep = state.errors >= cfg.soft_error_limit ? cfg.error_sleep_time : 0;
    state.errors++;
    this.mark(session, { reason: { name: refusal.reason, code: refusal.reply.code }, ...(options.authUser !== undefined ? { authUser: options.authUser } : {}) });
    const delayMs = Math.max(sleep, options.minDelaySeconds ?? 0) * 1000;
    const err = smtpError(refusal.reply);
    if (delayMs <= 0 || refusal.reply.code === 421) return cb(err);
    setTimeout(() => cb(err), delayMs).unref();
  }

  /** What the Rejection record of a refusal about to be sent should say beyond the reply; nothing is counted. */
  mark(session: SMTPServerSession, context: RefusalContext): void {
    this.state(session).pending = { ...context };
  }

  /** The context of the reply being sent now; taken once. */
  takePending(session: SMTPServerSession): RefusalContext {
    const state = this.state(session);
    const pending = state.pending;
    state.pending = {};
    return pending;
  }
}
