import type { SmtpReply } from './types.js';

/** Stable error codes; tests and scripts match these, never message text. */
export const ErrorCode = {
  CONFIG_INVALID: 'TERN_ERR_CONFIG_INVALID',
  SPOOL_WRITE: 'TERN_ERR_SPOOL_WRITE',
  SPOOL_FULL: 'TERN_ERR_SPOOL_FULL',
  DNS_TEMPORARY: 'TERN_ERR_DNS_TEMPORARY',
  /** A part that was closed (shutdown) refused new work. */
  CLOSED: 'TERN_ERR_CLOSED',
  /** Another live process holds the queue directory. */
  QUEUE_IN_USE: 'TERN_ERR_QUEUE_IN_USE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Tern's reply for a fault of its own (RFC 3463 X.3.0, "other or undefined mail system
 * status"): always temporary, so that the client or the queue tries again, never a 5xx.
 */
export function localError(text = 'Local error in processing'): SmtpReply {
  return { code: 451, enhanced: '4.3.0', text };
}

/** An error that knows the SMTP reply it becomes when it reaches a client or a log record. */
export class TernError extends Error {
  readonly code: ErrorCode;
  readonly reply: SmtpReply;

  constructor(code: ErrorCode, reply: SmtpReply, options?: { cause?: unknown }) {
    super(`${reply.code}${reply.enhanced ? ' ' + reply.enhanced : ''} ${reply.text}`, options);
    this.name = 'TernError';
    this.code = code;
    this.reply = reply;
  }
}

/** A configuration problem, naming the file, key and value at fault. */
export class ConfigError extends Error {
  readonly code = ErrorCode.CONFIG_INVALID;
  constructor(
    readonly file: string,
    readonly key: string,
    readonly value: unknown,
    readonly problem: string,
  ) {
    super(`${file}: ${key}=${JSON.stringify(value)}: ${problem}`);
    this.name = 'ConfigError';
  }
}
