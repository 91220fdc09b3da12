import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { Capabilities, DotStuffer, ReplyParser, dotStuffed, mailCommand, rcptCommand, toSmtpReply, xtext } from '../../../src/smtp/index.js';
import type { WireReply } from '../../../src/smtp/index.js';

/** Feeds `input` in the given pieces; returns every reply and the error, if any. */
function feedAll(parser: ReplyParser, pieces: readonly Buffer[]): { replies: WireReply[]; error?: { code: number; enhanced?: string } } {
  const replies: WireReply[] = [];
  for (const piece of pieces) {
    const r = parser.feed(piece);
    replies.push(...r.replies);
    if (r.error) return { replies, error: r.error };
  }
  return { replies };
}

const EHLO = Buffer.from('250-mx.example.net Hello, pleased to meet you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-DSN\r\n250 SMTPUTF8\r\n', 'utf8');

describe('ReplyParser', () => {
  it('gives the same replies for every split of the input, at every byte position', () => {
    const input = Buffer.concat([EHLO, Buffer.from('550-5.1.1 Nö such üser\r\n550 5.1.1 gone\r\n221 bye\r\n', 'utf8')]);
    const whole = feedAll(new ReplyParser(), [input]);
    assert.equal(whole.replies.length, 3);
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j += 7) {
        const got = feedAll(new ReplyParser(), [input.subarray(0, i), input.subarray(i, j), input.subarray(j)]);
        assert.deepEqual(got, whole, `split at ${i} and ${j}`);
      }
    }
    const oneByOne = feedAll(new ReplyParser(), [...input].map((b) => Buffer.from([b])));
    assert.deepEqual(oneByOne, whole);
    assert.deepEqual(toSmtpReply(whole.replies[1]), { code: 550, enhanced: '5.1.1', text: 'Nö such üser gone' });
  });

  it('reads the lines of a multi-line reply', () => {
    const { replies } = feedAll(new ReplyParser(), [EHLO]);
    assert.equal(replies[0].code, 250);
    assert.deepEqual(replies[0].lines, ['mx.example.net Hello, pleased to meet you', 'PIPELINING', 'SIZE 10240000', 'DSN', 'SMTPUTF8']);
    const caps = new Capabilities(replies[0].lines);
    assert.ok(caps.has('pipelining') && caps.has('DSN') && caps.has('SMTPUTF8'));
    assert.equal(caps.sizeLimit, 10240000);
    assert.ok(!caps.has('STARTTLS'));
  });

  it('accepts a bare code and LF line ends', () => {
    const { replies } = feedAll(new ReplyParser(), [Buffer.from('250\n354 go\r\n')]);
    assert.deepEqual(replies, [{ code: 250, lines: [''] }, { code: 354, lines: ['go'] }]);
  });

  it('calls a multi-line reply with different codes a protocol error', () => {
    const { replies, error } = feedAll(new ReplyParser(), [Buffer.from('250-first\r\n550 second\r\n')]);
    assert.equal(replies.length, 0);
    assert.equal(error?.code, 451);
    assert.equal(error?.enhanced, '4.5.0');
  });

  it('calls a line that is no reply a protocol error', () => {
    assert.equal(feedAll(new ReplyParser(), [Buffer.from('hello there\r\n')]).error?.enhanced, '4.5.0');
    assert.equal(feedAll(new ReplyParser(), [Buffer.from('250x\r\n')]).error?.enhanced, '4.5.0');
    assert.equal(feedAll(new ReplyParser(), [Buffer.from('999 no\r\n')]).error?.enhanced, '4.5.0');
  });

  it('stops at a line over the limit, before its end arrives, and ignores what follows', () => {
    const parser = new ReplyParser();
    const first = parser.feed(Buffer.from('250-ok\r\n250-' + 'x'.repeat(5000)));
    assert.equal(first.error?.code, 451);
    assert.equal(first.error?.enhanced, '4.5.0');
    assert.deepEqual(parser.feed(Buffer.from('\r\n250 fine\r\n')).replies, []);
    // Byte by byte too: the bound is counted as the partial line grows.
    const slow = new ReplyParser();
    let error;
    for (let i = 0; i < 5000 && !error; i++) error = slow.feed(Buffer.from('2')).error;
    assert.equal(error?.enhanced, '4.5.0');
  });

  it('stops at a reply of too many lines or octets', () => {
    const lines = new ReplyParser().feed(Buffer.from('250-x\r\n'.repeat(1001) + '250 end\r\n'));
    assert.equal(lines.error?.enhanced, '4.5.0');
    assert.equal(lines.replies.length, 0);
    const octets = new ReplyParser().feed(Buffer.from(`250-${'y'.repeat(2000)}\r\n`.repeat(40) + '250 end\r\n'));
    assert.equal(octets.error?.enhanced, '4.5.0');
    const fine = new ReplyParser().feed(Buffer.from('250-x\r\n'.repeat(999) + '250 end\r\n'));
    assert.equal(fine.error, undefined);
    assert.equal(fine.replies[0].lines.length, 1000);
  });

  it('decodes UTF-8, replaces invalid bytes and never throws', () => {
    const raw = Buffer.concat([Buffer.from('550 5.1.1 <reject-ünï@dest.test> bad '), Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82]), Buffer.from(' end\r\n')]);
    for (let i = 0; i <= raw.length; i++) {
      const { replies } = feedAll(new ReplyParser(), [raw.subarray(0, i), raw.subarray(i)]);
      const reply = toSmtpReply(replies[0]);
      assert.match(reply.text, /^<reject-ünï@dest\.test> bad \uFFFD\uFFFD\(\uFFFD end$/);
    }
  });

  it('holds the bytes after a reply until they complete the next (what a STARTTLS check looks at)', () => {
    const parser = new ReplyParser();
    const r = parser.feed(Buffer.from('220 go\r\n250 inj'));
    assert.equal(r.replies.length, 1);
    assert.ok(parser.pendingBytes > 0);
    const clean = new ReplyParser();
    clean.feed(Buffer.from('220 go\r\n'));
    assert.equal(clean.pendingBytes, 0);
    const continued = new ReplyParser();
    continued.feed(Buffer.from('220 go\r\n250-injected\r\n'));
    assert.ok(continued.pendingBytes > 0, 'a dangling continuation counts');
  });

  it('is linear: a flood of continuation lines costs one pass and stops at the bound', () => {
    const parser = new ReplyParser();
    const chunk = Buffer.from('250-flood flood flood flood flood flood\r\n'.repeat(1600));
    let error;
    let fed = 0;
    while (!error && fed < 1000) {
      error = parser.feed(chunk).error;
      fed++;
    }
    assert.equal(error?.enhanced, '4.5.0');
    assert.equal(fed, 1, 'the first 64 KiB chunk already ends it');
  });
});

describe('SMTP commands', () => {
  const all = new Capabilities(['mx', 'SIZE 1000', '8BITMIME', 'SMTPUTF8', 'DSN', 'PIPELINING']);
  const none = new Capabilities(['mx']);

  it('puts parameters on MAIL only when the server announced their extension', () => {
    const opts = { size: 42, eightBit: true, smtpUtf8: true, dsn: { ret: 'HDRS' as const, envid: 'id+1=x y' } };
    assert.equal(mailCommand('a@b.test', opts, all), 'MAIL FROM:<a@b.test> SIZE=42 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3Dx+20y');
    assert.equal(mailCommand('a@b.test', opts, none), 'MAIL FROM:<a@b.test>');
    assert.equal(mailCommand('', { size: 0, eightBit: false, smtpUtf8: false }, all), 'MAIL FROM:<>');
  });

  it("gives each RCPT its own NOTIFY and ORCPT, xtext-encoded, only to a server with DSN", () => {
    assert.equal(rcptCommand('x@d.test', { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;X+Y@d.test' }, all), 'RCPT TO:<x@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X+2BY@d.test');
    assert.equal(rcptCommand('x@d.test', { notify: ['NEVER'] }, all), 'RCPT TO:<x@d.test> NOTIFY=NEVER');
    assert.equal(rcptCommand('x@d.test', { notify: ['NEVER'], orcpt: 'rfc822;x@d.test' }, none), 'RCPT TO:<x@d.test>');
    assert.equal(rcptCommand('x@d.test', undefined, all), 'RCPT TO:<x@d.test>');
    assert.equal(xtext('ü='), '+C3+BC+3D');
  });
});

describe('dot-stuffing', () => {
  const body = Buffer.from('.first\r\nline\r\n..two\r\n.\r\nlast');
  const expected = Buffer.from('..first\r\nline\r\n...two\r\n..\r\nlast\r\n.\r\n');

  it('doubles leading dots and terminates, as one buffer', () => {
    assert.deepEqual(dotStuffed(body), expected);
    assert.deepEqual(dotStuffed(Buffer.from('a\r\n')), Buffer.from('a\r\n.\r\n'));
    assert.deepEqual(dotStuffed(Buffer.alloc(0)), Buffer.from('.\r\n'));
  });

  it('gives the same bytes streamed, whatever the chunking', async () => {
    for (let i = 0; i <= body.length; i++) {
      const chunks: Buffer[] = [];
      for await (const c of Readable.from([body.subarray(0, i), body.subarray(i)]).pipe(new DotStuffer())) chunks.push(c as Buffer);
      assert.deepEqual(Buffer.concat(chunks), expected, `split at ${i}`);
    }
  });
});
