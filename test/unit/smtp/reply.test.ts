import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyReply, formatReply, parseReply } from '../../../src/smtp/index.js';
import { rfc5322Date } from '../../../src/smtp/index.js';

describe('parseReply', () => {
  it('reads code, enhanced code and text', () => {
    assert.deepEqual(parseReply('550 5.7.1 no thanks'), { code: 550, enhanced: '5.7.1', text: 'no thanks' });
  });
  it('joins multi-line replies and drops repeated codes', () => {
    const raw = '550-5.7.26 This mail is unauthenticated, which poses a security risk\r\n550-5.7.26 to the sender and Gmail users.\r\n550 5.7.26 Learn more at https://support.example/answer';
    assert.deepEqual(parseReply(raw), {
      code: 550,
      enhanced: '5.7.26',
      text: 'This mail is unauthenticated, which poses a security risk to the sender and Gmail users. Learn more at https://support.example/answer',
    });
  });
  it('accepts replies without an enhanced code', () => {
    assert.deepEqual(parseReply('451 Try again later'), { code: 451, enhanced: undefined, text: 'Try again later' });
    assert.deepEqual(parseReply('250'), { code: 250, enhanced: undefined, text: '' });
  });
  it('drops an enhanced code whose class disagrees with the reply code', () => {
    assert.equal(parseReply('550 4.2.1 mixed up')?.enhanced, undefined);
  });
  it('returns undefined for garbage', () => {
    assert.equal(parseReply('hello there'), undefined);
    assert.equal(parseReply(''), undefined);
    assert.equal(parseReply('999 no such class'), undefined);
  });
  it('classifies and formats', () => {
    assert.equal(classifyReply({ code: 252, text: '' }), 'success');
    assert.equal(classifyReply({ code: 421, text: '' }), 'transient');
    assert.equal(classifyReply({ code: 554, text: '' }), 'permanent');
    assert.equal(formatReply({ code: 451, enhanced: '4.4.2', text: 'timeout' }), '451 4.4.2 timeout');
  });
});

describe('rfc5322Date', () => {
  it('formats in UTC with a numeric zone', () => {
    assert.equal(rfc5322Date(new Date('2003-07-01T08:52:37Z')), 'Tue, 1 Jul 2003 08:52:37 +0000');
  });
});
