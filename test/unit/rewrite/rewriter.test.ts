import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/index.js';
import { parseRewriteRules } from '../../../src/config/index.js';
import { DeliveryStatusRewriter } from '../../../src/rewrite/index.js';

// The seed's own example file, verbatim.
const SEED = `{
  "4\\\\.2\\\\.1 <.+>: Recipient address rejected: this mailbox is inactive and has been disabled": 500,
  "4\\\\.2\\\\.2 The email account that you tried to reach is over quota\\\\.": 500
}`;

describe('rewrite_delivery_status rules', () => {
  const rewriter = new DeliveryStatusRewriter(parseRewriteRules(SEED));

  it("reads KumoMTA's flat format and rewrites a 4xx into a 5xx with the class of the enhanced code", () => {
    const r = rewriter.rewrite({ code: 452, enhanced: '4.2.2', text: 'The email account that you tried to reach is over quota.' }, 'example.com');
    assert.deepEqual(r, { code: 500, enhanced: '5.2.2', text: 'The email account that you tried to reach is over quota. (tern: status was rewritten from 452 -> 500)' });
    const r2 = rewriter.rewrite({ code: 450, enhanced: '4.2.1', text: '<a@b.c>: Recipient address rejected: this mailbox is inactive and has been disabled' }, 'example.com');
    assert.equal(r2.code, 500);
    assert.equal(r2.enhanced, '5.2.1');
  });

  it('leaves unmatched replies and successes alone', () => {
    const reply = { code: 451, enhanced: '4.3.0', text: 'try later' };
    assert.equal(rewriter.rewrite(reply, 'example.com'), reply);
    const ok = { code: 250, enhanced: '2.0.0', text: 'over quota.' };
    assert.equal(rewriter.rewrite(ok, 'example.com'), ok);
  });

  it('tries domain rules first, then the global ones, first match in file order', () => {
    const rules = parseRewriteRules(JSON.stringify({
      'busy': 550,
      'busy, really': 450,
      'Gmail.example': { '5\\.1\\.1': 450, 'busy': 451 },
    }));
    const r = new DeliveryStatusRewriter(rules);
    assert.equal(r.rewrite({ code: 421, text: 'busy, really' }, 'other.example').code, 550, 'first global rule wins');
    assert.equal(r.rewrite({ code: 421, text: 'busy' }, 'gmail.example').code, 451, 'the domain scope comes first');
    const back = r.rewrite({ code: 550, enhanced: '5.1.1', text: 'no such user' }, 'gmail.example');
    assert.deepEqual([back.code, back.enhanced], [450, '4.1.1'], '5xx can become 4xx');
    assert.equal(r.rewrite({ code: 550, enhanced: '5.1.1', text: 'no such user' }, 'other.example').code, 550);
  });

  it('refuses invalid patterns, non-failure codes and broken JSON at load, naming the pattern', () => {
    const bad = (text: string, key: RegExp) =>
      assert.throws(() => parseRewriteRules(text), (e: unknown) => e instanceof ConfigError && e.file === 'rewrite_delivery_status.json' && key.test(e.key));
    bad('{"(unclosed": 500}', /\(unclosed/);
    bad('{"over quota": 250}', /over quota/);
    bad('{"over quota": "500"}', /over quota/);
    bad('{"x.test": {"[bad": 500}}', /\[bad/);
    bad('{ not json', /\(file\)/);
  });
});
