import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mxMatches, parsePolicy } from '../../../src/delivery/mta-sts.js';

const policy = (...lines: string[]) => lines.join('\r\n') + '\r\n';

describe('MTA-STS policy parsing (RFC 8461 §3.2)', () => {
  it('parses a policy and refuses a broken one', () => {
    assert.deepEqual(parsePolicy('version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmx: *.b.example\r\nmax_age: 604800\r\n', 'X1'), {
      mode: 'enforce', mx: ['a.example', '*.b.example'], maxAge: 604800, id: 'X1',
    });
    assert.equal(parsePolicy('version: STSv2\nmode: enforce\nmax_age: 1\n', 'X'), undefined);
    assert.equal(parsePolicy('version: STSv1\nmode: strict\nmax_age: 1\n', 'X'), undefined);
  });

  it('accepts LF as well as CRLF line ends, and a last line without one', () => {
    const lf = parsePolicy('version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 86400', 'L');
    assert.deepEqual(lf, { mode: 'testing', mx: ['mx.example'], maxAge: 86400, id: 'L' });
  });

  it('takes each of the three modes, and refuses a policy without one', () => {
    for (const mode of ['enforce', 'testing', 'none'] as const) {
      assert.equal(parsePolicy(policy('version: STSv1', `mode: ${mode}`, 'mx: mx.example', 'max_age: 60'), 'M')?.mode, mode);
    }
    assert.equal(parsePolicy(policy('version: STSv1', 'mx: mx.example', 'max_age: 60'), 'M'), undefined);
  });

  it('refuses a policy without its version or max_age, or with a negative or fractional max_age', () => {
    assert.equal(parsePolicy(policy('mode: enforce', 'mx: mx.example', 'max_age: 60'), 'V'), undefined);
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: enforce', 'mx: mx.example'), 'V'), undefined);
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: enforce', 'mx: mx.example', 'max_age: -5'), 'V'), undefined);
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: enforce', 'mx: mx.example', 'max_age: 1.5'), 'V'), undefined);
  });

  it('caps max_age at 31557600 s, the most the RFC allows (one year)', () => {
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: enforce', 'mx: mx.example', 'max_age: 9999999999'), 'A')?.maxAge, 31557600);
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: enforce', 'mx: mx.example', 'max_age: 0'), 'A')?.maxAge, 0);
  });

  it('ignores fields it does not know, and whitespace around values', () => {
    const p = parsePolicy(policy('version: STSv1', 'mode:   enforce  ', 'future_field: whatever', 'mx:mx.example', 'max_age: 86400 '), 'U');
    assert.deepEqual(p, { mode: 'enforce', mx: ['mx.example'], maxAge: 86400, id: 'U' });
  });

  it('uses the first of a repeated field other than mx, and every mx line', () => {
    const p = parsePolicy(policy('version: STSv1', 'mode: testing', 'mode: enforce', 'mx: one.example', 'mx: two.example', 'max_age: 10', 'max_age: 20'), 'R');
    assert.deepEqual(p, { mode: 'testing', mx: ['one.example', 'two.example'], maxAge: 10, id: 'R' });
  });

  it('keeps the id of the TXT record the policy was fetched under', () => {
    assert.equal(parsePolicy(policy('version: STSv1', 'mode: none', 'max_age: 86400'), '20261125T1')?.id, '20261125T1');
  });

  it('gives an enforce policy without mx lines no MX host at all', () => {
    const p = parsePolicy(policy('version: STSv1', 'mode: enforce', 'max_age: 86400'), 'E');
    assert.deepEqual(p?.mx, []);
    assert.equal(mxMatches(p!.mx, 'mx.example'), false);
  });

  it('refuses an HTML page or anything else that is not a policy', () => {
    assert.equal(parsePolicy('<html><body>404 Not Found</body></html>', 'H'), undefined);
    assert.equal(parsePolicy('', 'H'), undefined);
  });
});

describe('MTA-STS MX matching (RFC 8461 §4.1)', () => {
  it('matches wildcards on exactly one label', () => {
    assert.ok(mxMatches(['*.example.net'], 'mx1.example.net'));
    assert.ok(!mxMatches(['*.example.net'], 'a.mx1.example.net'));
    assert.ok(!mxMatches(['*.example.net'], 'example.net'));
    assert.ok(mxMatches(['MX.Example.COM'], 'mx.example.com.'));
  });

  it('matches a name exactly, never a suffix or a look-alike', () => {
    assert.ok(mxMatches(['mx.example.com'], 'mx.example.com'));
    assert.ok(!mxMatches(['mx.example.com'], 'evil-mx.example.com'));
    assert.ok(!mxMatches(['mx.example.com'], 'mx.example.com.evil.test'));
    assert.ok(!mxMatches(['*.example.com'], 'mx.badexample.com'), 'the wildcard stands for a whole label');
  });

  it('ignores case and a trailing dot on either side', () => {
    assert.ok(mxMatches(['*.Example.COM.'], 'MX1.example.com'));
    assert.ok(mxMatches(['mx.example.com.'], 'MX.EXAMPLE.COM'));
  });

  it('matches when any pattern of the policy does', () => {
    assert.ok(mxMatches(['a.example', '*.b.example'], 'mx.b.example'));
    assert.ok(!mxMatches(['a.example', '*.b.example'], 'c.example'));
  });
});
