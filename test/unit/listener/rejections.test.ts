import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { SMTPServerSession } from 'smtp-server';
import { classifyRejection, commandAddress, Rejections } from '../../../src/listener/rejections.js';
import type { RejectionRecord } from '../../../src/log/index.js';

describe('Rejection reasons', () => {
  it('classifies the refusals smtp-server makes by itself', () => {
    assert.equal(classifyRejection('MAIL', 552, '5.3.4'), 'message_size');
    assert.equal(classifyRejection('RCPT', 452, '4.5.3'), 'too_many_recipients');
    assert.equal(classifyRejection('RCPT', 501, '5.1.3'), 'syntax');
    assert.equal(classifyRejection('AUTH', 538, '5.0.0'), 'encryption_required');
    assert.equal(classifyRejection('RCPT', 550, '5.7.1'), 'relay_denied');
    assert.equal(classifyRejection('END-OF-MESSAGE', 554, '5.6.0'), 'bare_line_ending');
    assert.equal(classifyRejection('RCPT', 599, null), 'other');
  });

  it('reads the address of a MAIL or RCPT line', () => {
    assert.equal(commandAddress('MAIL FROM:<a@b.test> SIZE=10'), 'a@b.test');
    assert.equal(commandAddress('rcpt to: <c@d.test>'), 'c@d.test');
    assert.equal(commandAddress('RCPT TO:bare@d.test'), 'bare@d.test');
    assert.equal(commandAddress('RCPT TO:<' + 'x'.repeat(1000) + '>')!.length, 320);
  });

  it('writes one record per refusal, with the reason Tern named when the code matches', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ base: null }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
    const counted: RejectionRecord[] = [];
    const r = new Rejections(logger, { now: () => 0 } as never, (rec) => counted.push(rec));
    const session = {
      id: 'abc', remoteAddress: '192.0.2.7', remotePort: 4000, secure: true, hostNameAppearsAs: 'h.test',
      envelope: { mailFrom: { address: 's@x.test' }, rcptTo: [] },
    } as unknown as SMTPServerSession;
    assert.equal(r.observe(session, 250, '2.1.5 Accepted', 'RCPT', 'RCPT TO:<a@b.test>'), undefined);
    assert.equal(r.observe(session, 500, '5.5.2 bad', 'EHLO', undefined), undefined, 'only MAIL, RCPT, DATA, AUTH and the end of DATA');
    const rec = r.observe(session, 550, '5.7.1 Relaying denied', 'RCPT', 'RCPT TO:<a@b.test>', { reason: { name: 'policy', code: 550 } })!;
    assert.equal(rec.reason, 'policy');
    assert.equal(rec.sender, 's@x.test');
    assert.equal(rec.recipient, 'a@b.test');
    assert.deepEqual(rec.response, { code: 550, enhanced_code: '5.7.1', content: 'Relaying denied' });
    const auth = r.observe(session, 535, '5.7.8 Authentication credentials invalid', 'AUTH', undefined, { reason: { name: 'policy', code: 421 }, authUser: 'app' })!;
    assert.equal(auth.reason, 'auth_failed', 'a reason named for another code is not used');
    assert.equal(auth.auth_user, 'app');
    assert.equal(counted.length, 2);
    assert.equal(lines.length, 2);
    assert.equal(lines[1].msg, 'Rejection');
    assert.deepEqual(Object.keys(lines[1]).slice(0, 5), ['level', 'time', 'type', 'reason', 'command']);
  });
});
