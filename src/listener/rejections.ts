import type { SMTPServerSession } from 'smtp-server';
import type { Clock } from '../core/index.js';
import { logRejection } from '../log/index.js';
import type { Logger, RejectionRecord } from '../log/index.js';

/** The commands whose refusals are recorded; END-OF-MESSAGE is the reply to the end of DATA (Postfix's name). */
export const RECORDED_COMMANDS: ReadonlySet<string> = new Set(['MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE', 'AUTH']);

/**
 * Every reason a Rejection record can name (README, *Logs*), so that tern_rejections_total
 * can show each at zero before its first refusal.
 */
export const REJECTION_REASONS = [
  'auth_failed',
  'auth_locked',
  'auth_limit',
  'auth_mechanism',
  'encryption_required',
  'error_limit',
  'relay_denied',
  'message_size',
  'too_many_recipients',
  'unknown_parameter',
  'smtputf8_required',
  'bad_sender',
  'bad_recipient',
  'bare_line_ending',
  'mail_loop',
  'hook',
  'local_error',
  'disk_full',
  'syntax',
  'bad_sequence',
  'closing',
  'other',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

interface Rule {
  readonly command?: string;
  readonly code?: number;
  readonly enhanced?: string;
  readonly reason: RejectionReason;
}

/**
 * Why a reply refused, for the refusals smtp-server makes by itself (SIZE= over the limit,
 * too many recipients, syntax) and as a fallback for Tern's own, which name their reason.
 * The first rule that matches wins; `other` when none does.
 */
const RULES: readonly Rule[] = [
  { command: 'AUTH', code: 535, reason: 'auth_failed' },
  { command: 'AUTH', code: 454, enhanced: '4.7.0', reason: 'auth_locked' },
  { command: 'AUTH', code: 504, reason: 'auth_mechanism' },
  { command: 'AUTH', code: 538, reason: 'encryption_required' },
  { command: 'RCPT', code: 550, enhanced: '5.7.1', reason: 'relay_denied' },
  { code: 552, reason: 'message_size' },
  { command: 'RCPT', code: 452, enhanced: '4.5.3', reason: 'too_many_recipients' },
  { code: 555, reason: 'unknown_parameter' },
  { code: 553, enhanced: '5.6.7', reason: 'smtputf8_required' },
  { command: 'MAIL', code: 553, reason: 'bad_sender' },
  { command: 'RCPT', code: 553, reason: 'bad_recipient' },
  { command: 'END-OF-MESSAGE', code: 554, enhanced: '5.6.0', reason: 'bare_line_ending' },
  { command: 'END-OF-MESSAGE', code: 554, enhanced: '5.4.6', reason: 'mail_loop' },
  { code: 452, enhanced: '4.3.1', reason: 'disk_full' },
  { code: 451, reason: 'local_error' },
  { code: 500, reason: 'syntax' },
  { code: 501, reason: 'syntax' },
  { code: 503, reason: 'bad_sequence' },
  { code: 530, reason: 'encryption_required' },
  { code: 421, reason: 'closing' },
];

export function classifyRejection(command: string, code: number, enhanced: string | null): RejectionReason {
  const rule = RULES.find((r) => (r.command === undefined || r.command === command) && (r.code === undefined || r.code === code) && (r.enhanced === undefined || r.enhanced === enhanced));
  return rule?.reason ?? 'other';
}

/** What the listener knows about a refusal that the reply itself does not say. */
export interface RefusalContext {
  /** Set by Tern for the refusals it decides, with the code it refused with. */
  readonly reason?: { readonly name: string; readonly code: number };
  readonly authUser?: string;
  readonly messageId?: string;
}

// Client-chosen values are cut to this length in a record (an address is at most 256, RFC 5321 §4.5.3.1.3).
const MAX_FIELD = 320;
const cut = (s: string) => (s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);

/** The address of a MAIL FROM or RCPT TO line, as the client wrote it. */
export function commandAddress(line: string): string | undefined {
  const m = /^\s*(?:MAIL\s+FROM|RCPT\s+TO)\s*:\s*(?:<([^>]*)>|(\S*))/i.exec(line);
  return m ? cut(m[1] ?? m[2] ?? '') : undefined;
}

/**
 * Turns each refusal the listener sends into one `Rejection` record and counts it. It
 * only needs the reply as sent (code and text), the command verb, the command line of
 * MAIL and RCPT, and the session: whatever observes smtp-server's replies can feed it.
 */
export class Rejections {
  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly counted?: (record: RejectionRecord) => void,
  ) {}

  /**
   * Records one reply if it refuses a recorded command. `text` is the reply after the code,
   * with its enhanced status code when it has one.
   */
  observe(session: SMTPServerSession, code: number, text: string, command: string, line: string | undefined, context: RefusalContext = {}): RejectionRecord | undefined {
    if (code < 400 || !RECORDED_COMMANDS.has(command)) return undefined;
    const m = /^([245]\.\d{1,3}\.\d{1,3})(?: (.*))?$/s.exec(text);
    const enhanced = m ? m[1] : null;
    const content = m ? (m[2] ?? '') : text;
    const reason = context.reason && context.reason.code === code ? context.reason.name : classifyRejection(command, code, enhanced);
    const env = session.envelope;
    const sender = env?.mailFrom ? env.mailFrom.address : undefined;
    const fromLine = line === undefined ? undefined : commandAddress(line);
    const user = typeof session.user === 'string' ? session.user : undefined;
    const record: RejectionRecord = {
      type: 'Rejection',
      reason,
      command,
      client: {
        address: session.remoteAddress,
        port: session.remotePort,
        ...(session.hostNameAppearsAs ? { helo: cut(session.hostNameAppearsAs) } : {}),
        ...(user ? { user } : {}),
        tls: !!session.secure,
      },
      ...(command === 'AUTH' && context.authUser !== undefined ? { auth_user: cut(context.authUser) } : {}),
      ...(command === 'MAIL' ? (fromLine !== undefined ? { sender: fromLine } : {}) : sender !== undefined ? { sender } : {}),
      ...(command === 'RCPT' && fromLine !== undefined ? { recipient: fromLine } : {}),
      ...((command === 'DATA' || command === 'END-OF-MESSAGE') && env?.rcptTo?.length ? { recipients: env.rcptTo.map((r) => r.address) } : {}),
      ...(command === 'END-OF-MESSAGE' && context.messageId ? { message_id: context.messageId } : {}),
      response: { code, enhanced_code: enhanced, content },
      session_id: session.id,
      timestamp: new Date(this.clock.now()).toISOString(),
    };
    logRejection(this.logger, record);
    this.counted?.(record);
    return record;
  }
}
