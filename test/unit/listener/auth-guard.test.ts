import { before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import type { SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import { loadConfig } from '../../../src/config/index.js';
import type { TernConfig } from '../../../src/config/index.js';
import { AuthGuard } from '../../../src/listener/auth-guard.js';
import { ErrorLimits } from '../../../src/listener/error-limits.js';
import { hashPassword } from '../../../src/listener/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

type Answer = { err: (Error & { responseCode?: number }) | null | undefined; user?: unknown };

/** One client connection from `address`, as smtp-server hands it to the guard. */
const connection = (address: string) => ({ remoteAddress: address }) as SMTPServerSession;

describe('AuthGuard: AUTH against brute force, as smtp.ini configures it', () => {
  let config: TernConfig;
  const clock = { ms: 1_000_000, now() { return this.ms; } };

  before(async () => {
    config = loadConfig(
      writeConfig({
        auth_users: `app:${await hashPassword('right-password')}\n`,
        // No per-failure delay unless a test asks for one; lockout after 3 failures per address.
        'smtp.ini': '[main]\nauth_failure_delay=0\nauth_failure_limit=2\nauth_client_failure_limit=3\nauth_client_failure_window=10m\nauth_client_lockout=10m\nsoft_error_limit=100\nhard_error_limit=100\n',
      }),
    );
  });

  const guard = (cfg = () => config) => new AuthGuard(cfg, new ErrorLimits(() => cfg().smtp), clock);
  const auth = (g: AuthGuard, session: SMTPServerSession, password: string, username = 'app') =>
    new Promise<Answer>((resolve) => void g.authenticate({ method: 'PLAIN', username, password } as SMTPServerAuthentication, session, (err, response) => resolve({ err, user: response?.user })));
  const code = (a: Answer) => [a.err?.responseCode, a.err?.message.split(' ')[0]];

  it('lets the right password in and refuses a wrong one, or an unknown user, with 535 5.7.8', async () => {
    const g = guard();
    assert.deepEqual(await auth(g, connection('192.0.2.1'), 'right-password'), { err: null, user: 'app' });
    assert.deepEqual(code(await auth(g, connection('192.0.2.1'), 'wrong')), [535, '5.7.8']);
    assert.deepEqual(code(await auth(g, connection('192.0.2.1'), 'right-password', 'nobody')), [535, '5.7.8']);
  });

  it('closes a connection with 421 4.7.0 once it has used up auth_failure_limit, even for the right password', async () => {
    const g = guard();
    const session = connection('192.0.2.2');
    assert.deepEqual(code(await auth(g, session, 'wrong1')), [535, '5.7.8']);
    assert.deepEqual(code(await auth(g, session, 'wrong2')), [535, '5.7.8']);
    assert.deepEqual(code(await auth(g, session, 'right-password')), [421, '4.7.0']);
    assert.deepEqual(await auth(g, connection('192.0.2.2'), 'right-password'), { err: null, user: 'app' }, 'a new connection may try again');
  });

  it('refuses AUTH with 454 4.7.0 to an address past auth_client_failure_limit, on every connection, until auth_client_lockout has passed', async () => {
    const g = guard();
    for (let i = 0; i < 3; i++) await auth(g, connection('192.0.2.3'), `wrong${i}`);
    assert.deepEqual(code(await auth(g, connection('192.0.2.3'), 'right-password')), [454, '4.7.0'], 'the right password does not help while locked');
    assert.deepEqual(await auth(g, connection('192.0.2.4'), 'right-password'), { err: null, user: 'app' }, 'another address is not locked');
    clock.ms += 10 * 60 * 1000 + 1;
    assert.deepEqual(await auth(g, connection('192.0.2.3'), 'right-password'), { err: null, user: 'app' });
  });

  it('locks an IPv6 client out by its /64, as one host with many addresses', async () => {
    const g = guard();
    for (let i = 1; i <= 3; i++) await auth(g, connection(`2001:db8:1:2::${i}`), 'wrong');
    assert.deepEqual(code(await auth(g, connection('2001:db8:1:2::99'), 'right-password')), [454, '4.7.0']);
    assert.deepEqual(await auth(g, connection('2001:db8:1:3::1'), 'right-password'), { err: null, user: 'app' }, 'the next /64 is someone else');
  });

  it('answers a failure only after auth_failure_delay, and a success at once', async () => {
    const slow = loadConfig(writeConfig({ auth_users: `app:${config.authUsers.get('app')!.hash}\n`, 'smtp.ini': '[main]\nauth_failure_delay=2\n' }));
    const g = guard(() => slow);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let answered: Answer | undefined;
      const answer = (err: Answer['err'], response?: { user?: unknown }) => void (answered = { err, user: response?.user });
      await g.authenticate({ method: 'PLAIN', username: 'app', password: 'wrong' } as SMTPServerAuthentication, connection('192.0.2.5'), answer);
      assert.equal(answered, undefined, 'the password was checked; the refusal waits');
      mock.timers.tick(1999);
      assert.equal(answered, undefined);
      mock.timers.tick(1);
      assert.deepEqual(code(answered!), [535, '5.7.8']);
      answered = undefined;
      await g.authenticate({ method: 'PLAIN', username: 'app', password: 'right-password' } as SMTPServerAuthentication, connection('192.0.2.5'), answer);
      assert.deepEqual(answered, { err: null, user: 'app' });
    } finally {
      mock.timers.reset();
    }
  });
});
