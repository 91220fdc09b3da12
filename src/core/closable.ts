import { ErrorCode, TernError } from './errors.js';

/**
 * The lifetime every long-lived part shares (undici's dispatcher: close() and destroy()).
 * Both are idempotent and may be called in any order; once either has been called the
 * part refuses new work with a `closedError`.
 */
export interface Closable {
  /** Graceful: no new work; what is in progress finishes (within the part's own bound). The same promise on every call. */
  close(): Promise<unknown>;
  /** Immediate: what is in progress is cut off; resources are released now. */
  destroy(): void;
  readonly closed: boolean;
}

/**
 * The refusal of a closed part. RFC 5321 §3.8: a server that is shutting down answers
 * 421; the enhanced code is RFC 3463's "system not accepting network messages".
 */
export function closedError(part: string): TernError {
  return new TernError(ErrorCode.CLOSED, { code: 421, enhanced: '4.3.2', text: `Service shutting down (${part} closed), try again later` });
}
