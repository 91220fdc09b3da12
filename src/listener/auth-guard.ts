import type { SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import type { Clock } from '../core/index.js';
import type { TernConfig } from '../config/index.js';
import { verifyPassword } from './auth.js';
import { AuthFailureWindow } from './auth-failure-window.js';
import type { ErrorLimits, Refusal } from './error-limits.js';

const INVALID: Refusal = { reason: 'auth_failed', reply: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' } };
// RFC 4954 §6: 454 4.7.0 is the temporary AUTH failure. The password is not even checked,
// so no guess is spent, and a client that may relay by address keeps its connection.
const LOCKED: Refusal = { reason: 'auth_locked', reply: { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure: too many failures from your address, try again later' } };
const TOO_MANY: Refusal = { reason: 'auth_limit', reply: { code: 421, enhanced: '4.7.0', text: 'Too many authentication failures, closing connection' } };

type AuthCallback = (err: Error | null | undefined, response?: { user?: unknown }) => void;

/**
 * AUTH against brute force: every failure is answered late (auth_failure_delay), a
 * connection has auth_failure_limit failures before it is closed with 421 4.7.0, and an
 * address with too many failures in a window is refused AUTH for a while (454 4.7.0).
 * The window belongs to the listener (one per daemon), never to the module.
 */
export class AuthGuard {
  private readonly window = new AuthFailureWindow();

  constructor(
    private readonly config: () => TernConfig,
    private readonly limits: ErrorLimits,
    private readonly clock: Clock,
  ) {}

  async authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: AuthCallback): Promise<void> {
    const cfg = this.config().smtp;
    const name = auth.username ?? '';
    const state = this.limits.state(session);
    const refuse = (refusal: Refusal, delay = cfg.auth_failure_delay) => this.limits.refuse(session, refusal, cb, { minDelaySeconds: delay, authUser: name });

    const exhausted = this.limits.exhausted(session) ?? (state.authFailures >= cfg.auth_failure_limit ? TOO_MANY : undefined);
    if (exhausted) return refuse(exhausted, 0);
    if (this.window.lockedUntil(session.remoteAddress, this.clock.now()) !== undefined) {
      state.authFailures++;
      return refuse(LOCKED);
    }
    const ok = await verifyPassword(this.config().authUsers.get(name), auth.password ?? '').catch(() => false);
    // Many connections from one address verify at once (scrypt runs on the thread pool):
    // once their failures have locked it out, the verdicts still in flight are not told,
    // so that parallel guessing learns no more than sequential guessing.
    if (this.window.lockedUntil(session.remoteAddress, this.clock.now()) !== undefined) {
      state.authFailures++;
      return refuse(LOCKED);
    }
    if (ok) return cb(null, { user: name });
    state.authFailures++;
    this.window.fail(session.remoteAddress, this.clock.now(), {
      failures: cfg.auth_client_failure_limit,
      windowMs: cfg.auth_client_failure_window * 1000,
      lockoutMs: cfg.auth_client_lockout * 1000,
    });
    refuse(INVALID);
  }
}
