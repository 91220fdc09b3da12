import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import type { SMTPServerSession } from 'smtp-server';
import { loadConfig } from '../../../src/config/index.js';
import { ErrorLimits } from '../../../src/listener/error-limits.js';
import { writeConfig } from '../../helpers/tern-process.js';

const smtp = loadConfig(writeConfig({ 'smtp.ini': '[main]\nsoft_error_limit=2\nhard_error_limit=4\nerror_sleep_time=3\n' })).smtp;
const refusal = { reason: 'relay_denied', reply: { code: 550, enhanced: '5.7.1', text: 'Relaying denied' } };

describe('ErrorLimits', () => {
  it('answers at once up to the soft limit, then only when error_sleep_time has passed, then 421 4.7.0 past the hard limit', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const limits = new ErrorLimits(() => smtp);
      const session = {} as SMTPServerSession;
      const answered: (Error & { responseCode?: number })[] = [];
      for (let i = 0; i < 2; i++) limits.refuse(session, refusal, (err) => answered.push(err));
      assert.equal(answered.length, 2, 'no delay within the soft limit');
      limits.refuse(session, refusal, (err) => answered.push(err));
      assert.equal(answered.length, 2, 'past the soft limit the reply waits for a timer');
      mock.timers.tick(2999);
      assert.equal(answered.length, 2);
      mock.timers.tick(1);
      assert.equal(answered.length, 3);
      assert.equal(answered[2].responseCode, 550);
      assert.equal(answered[2].message, '5.7.1 Relaying denied');
      assert.equal(limits.exhausted(session), undefined);
      limits.refuse(session, refusal, () => undefined);
      assert.deepEqual(limits.exhausted(session)?.reply, { code: 421, enhanced: '4.7.0', text: 'Too many errors, closing connection' });
      assert.deepEqual(limits.takePending(session), { reason: { name: 'relay_denied', code: 550 } });
      assert.deepEqual(limits.takePending(session), {}, 'taken once');
      limits.delivered(session);
      assert.equal(limits.exhausted(session), undefined, 'an accepted message forgives the errors');
    } finally {
      mock.timers.reset();
    }
  });
});
