import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Automation, AutomationCounter, AutomationMatcher, replyLine } from '../../../src/cluster/index.js';
import type { Firing } from '../../../src/cluster/index.js';
import { parseAutomation } from '../../../src/config/index.js';
import type { AutomationRule } from '../../../src/config/index.js';
import type { DeliveryOutcome, SmtpReply } from '../../../src/core/index.js';
import { createLogger } from '../../../src/log/index.js';

const captured = () => {
  const records: Record<string, unknown>[] = [];
  const logger = createLogger({ destination: new Writable({ write: (c, _e, cb) => (records.push(JSON.parse(String(c))), cb()) }) as never });
  return { records, logger };
};

const base = parseAutomation('[base]\nmatch = x\nthreshold = 1\nwindow = 10m\naction = suspend\nduration = 1h\n').rules[0];
/** A rule with any pattern, even one regexHazard refuses (the worker's bound must hold whatever runs in it). */
const rule = (name: string, source: string): AutomationRule => ({ ...base, name, source, match: new RegExp(source, 'i') });

/** Exponential in backtracking JS engines: never ends on a run of `a` without `b`. */
const EXPONENTIAL = '(a+)+b';
const HOSTILE = replyLine({ code: 550, enhanced: '5.7.1', text: 'a'.repeat(600) });

describe('automation matching in a worker with a time bound', () => {
  it('a pattern that overruns on a hostile reply times out in the worker while the event loop runs on; it counts as not matched, the other rules still answer, and a fresh worker matches the next reply', async () => {
    // The config refuses this one; here it stands for any pattern slower than the bound.
    assert.throws(() => parseAutomation(`[slow]\nmatch = ${EXPONENTIAL}\nthreshold = 1\nwindow = 10m\naction = suspend\nduration = 1h\n`));
    const { records, logger } = captured();
    const matcher = new AutomationMatcher({ logger, clock: { now: () => 1_000 } });
    const slow = rule('slow', EXPONENTIAL);
    const quick = rule('quick', '^550 5\\.7\\.1 a{16}');
    const set = [slow, quick];
    const order: string[] = [];
    const pending = matcher.match(HOSTILE, set, set).then((m) => (order.push('answered'), m));
    // The event loop turns, and timers fire, while the pattern runs.
    let turns = 0;
    await new Promise<void>((resolve) => {
      const spin = () => (order.includes('answered') ? resolve() : (turns++, setImmediate(spin)));
      setImmediate(spin);
      setTimeout(() => order.push('timer'), 0);
    });
    const matched = await pending;
    assert.equal(order[0], 'timer', 'a timer fired before the answer');
    assert.deepEqual(order, ['timer', 'answered']);
    assert.ok(turns > 1, 'the event loop kept turning');
    assert.deepEqual([...matched], ['quick'], 'the slow rule is not matched; the rule after it is, by a fresh worker');
    assert.equal(matcher.timeouts, 1);
    const timeout = records.filter((r) => r.event === 'automation_match_timeout');
    assert.equal(timeout.length, 1);
    assert.equal(timeout[0].rule, 'slow');
    assert.equal(timeout[0].level, 'warn');

    // The next reply, on the fresh worker: every rule answers.
    assert.deepEqual([...(await matcher.match('550 5.7.1 aaaaaaaaaaaaaaaaab', set, set))].sort(), ['quick', 'slow']);
    assert.equal(matcher.timeouts, 1);

    // A second overrun of the same rule within the minute: counted, not logged again.
    assert.deepEqual([...(await matcher.match(HOSTILE, set, set))], ['quick']);
    assert.equal(matcher.timeouts, 2);
    assert.equal(records.filter((r) => r.event === 'automation_match_timeout').length, 1, 'rate-limited');
    await matcher.close();
  });

  it('a new rule set reaches the worker with the next reply', async () => {
    const { logger } = captured();
    const matcher = new AutomationMatcher({ logger, clock: { now: () => 0 } });
    const first = [rule('r', 'mailbox full')];
    assert.deepEqual([...(await matcher.match('452 4.2.2 Mailbox full', first, first))], ['r']);
    const reloaded = [rule('r', 'over quota')];
    assert.deepEqual([...(await matcher.match('452 4.2.2 Mailbox full', reloaded, reloaded))], [], 'the same name, the new pattern');
    assert.deepEqual([...(await matcher.match('452 4.2.2 over quota', reloaded, reloaded))], ['r']);
    await matcher.close();
  });

  it('replies past the queue bound are not matched and counted; those queued are answered; close answers what waits', async () => {
    const { records, logger } = captured();
    const matcher = new AutomationMatcher({ logger, clock: { now: () => 0 }, maxQueued: 2 });
    const set = [rule('slow', EXPONENTIAL)];
    // One runs, two wait, two are dropped.
    const all = await Promise.all(Array.from({ length: 5 }, () => matcher.match(HOSTILE, set, set)));
    assert.ok(all.every((m) => m.size === 0));
    assert.equal(matcher.dropped, 2);
    assert.equal(matcher.timeouts, 3);
    const dropped = records.filter((r) => r.event === 'automation_match_dropped');
    assert.equal(dropped.length, 1, 'rate-limited');
    assert.equal(dropped[0].max_queued, 2);
    const waiting = matcher.match(HOSTILE, set, set);
    await matcher.close();
    assert.equal((await waiting).size, 0, 'a reply waiting at close is answered, not matched');
    assert.equal((await matcher.match('550 ab', set, set)).size, 0, 'nothing is matched after close');
  });

  it('an automation rule whose pattern overruns on a hostile reply does not fire on it, and fires on the next reply it matches', async () => {
    const { records, logger } = captured();
    const clock = { now: () => 5_000 };
    const fired: Firing[] = [];
    const rules = [{ ...rule('hostile', '^550 (a+)+b'), domains: ['x.test'] }];
    const automation = new Automation({ rules: () => rules, counter: new AutomationCounter(clock), logger, clock, nodeId: 'n1', fire: async (f) => void fired.push(f) });
    const remote = { name: 'mx.x.test', address: '192.0.2.1' };
    const outcome = (reply: SmtpReply): DeliveryOutcome => ({ recipients: [{ address: 'u@x.test', result: 'failed', reply }], tls: false });
    automation.observe('x.test', 'e1', outcome({ code: 550, text: 'a'.repeat(600), remote }));
    let turned = false;
    setImmediate(() => (turned = true));
    await automation.settled();
    assert.ok(turned, 'the event loop turned while the reply was matched');
    assert.equal(fired.length, 0, 'a reply that overran the bound is not matched');
    assert.equal(automation.matchTimeouts, 1);
    assert.equal(records.find((r) => r.event === 'automation_match_timeout')?.rule, 'hostile');
    automation.observe('x.test', 'e2', outcome({ code: 550, text: 'aab', remote }));
    await automation.settled();
    assert.equal(fired.length, 1, 'the next reply is matched and fires the rule');
    assert.equal(fired[0].rule.name, 'hostile');
    automation.close();
  });
});
