import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Automation, AutomationCounter, MATCHED_BYTES, replyLine, ruleMatches } from '../../../src/cluster/index.js';
import type { Firing } from '../../../src/cluster/index.js';
import { parseAutomation } from '../../../src/config/index.js';
import type { DeliveryOutcome, SmtpReply } from '../../../src/core/index.js';
import { createLogger } from '../../../src/log/index.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });

const RULES = parseAutomation(`
[yahoo-ts04]
match = \\[TS04\\]
domains = yahoo.com
threshold = 2
window = 10m
action = suspend
duration = 2h
[microsoft-throttled]
match = ^4\\d\\d 4\\.7\\.\\d+ .*throttl
mx = *.mail.protection.outlook.com
threshold = 3
window = 10m
action = override
max_connections = 1
duration = 90m
`).rules;

const remote = (name: string) => ({ name, address: '192.0.2.1' });
const reply = (code: number, enhanced: string | undefined, text: string, mx = 'mta5.am0.yahoodns.net'): SmtpReply => ({ code, ...(enhanced ? { enhanced } : {}), text, remote: remote(mx) });
const outcome = (...replies: SmtpReply[]): DeliveryOutcome => ({ recipients: replies.map((r, i) => ({ address: `u${i}@x.test`, result: r.code >= 500 ? 'failed' : 'deferred', reply: r })), tls: false });

describe('automation rules: matching', () => {
  it('matches `code enhanced text` of the reply, only on the domains or MX hosts the rule watches', () => {
    const [yahoo, ms] = RULES;
    const ts04 = reply(421, '4.7.0', '[TS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume');
    assert.equal(replyLine(ts04), '421 4.7.0 [TS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume');
    assert.equal(ruleMatches(yahoo, 'yahoo.com', ts04), true);
    assert.equal(ruleMatches(yahoo, 'aol.com', ts04), false, 'not one of its domains');
    const throttled = reply(451, '4.7.500', 'Server busy, throttled', 'contoso-com.mail.protection.outlook.com');
    assert.equal(ruleMatches(ms, 'contoso.com', throttled), true);
    assert.equal(ruleMatches(ms, 'contoso.com', { ...throttled, remote: remote('mx.contoso.com') }), false, 'another MX host');
    assert.equal(ruleMatches(ms, 'contoso.com', { code: 451, enhanced: '4.7.500', text: 'throttled' }), false, 'Tern’s own reply has no remote host');
  });

  it('matches only the first KiB of a reply: a long reply costs no more', () => {
    const long = reply(421, '4.7.0', 'x'.repeat(100_000) + ' [TS04]');
    assert.equal(replyLine(long).length, MATCHED_BYTES);
    assert.equal(ruleMatches(RULES[0], 'yahoo.com', long), false);
    const multi = reply(421, '4.7.0', 'first line\n[TS04] second line');
    assert.equal(replyLine(multi), '421 4.7.0 first line [TS04] second line');
  });
});

describe('automation rules: counting on one node', () => {
  it('fires once at the threshold, then not again while its action lasts', async () => {
    let now = 1_000_000;
    const clock = { now: () => now };
    const fired: Firing[] = [];
    const automation = new Automation({ rules: () => RULES, counter: new AutomationCounter(clock), logger: silent, clock, nodeId: 'n1', fire: async (f) => void fired.push(f) });
    const ts04 = reply(421, '4.7.0', '[TS04] deferred');
    // Ten recipients of one attempt with the same reply: one match.
    automation.observe('yahoo.com', 'e1', outcome(...Array.from({ length: 10 }, () => ts04)));
    await automation.settled();
    assert.equal(fired.length, 0, 'one attempt is one match, below the threshold of 2');
    now += 11 * 60_000;
    automation.observe('yahoo.com', 'e2', outcome(ts04));
    await automation.settled();
    assert.equal(fired.length, 0, 'the first match left the 10-minute window');
    automation.observe('yahoo.com', 'e3', outcome(ts04));
    await automation.settled();
    assert.equal(fired.length, 1);
    assert.equal(fired[0].rule.name, 'yahoo-ts04');
    assert.equal(fired[0].destination, 'yahoo.com');
    assert.equal(fired[0].matches, 2);
    for (const id of ['e4', 'e5', 'e6']) automation.observe('yahoo.com', id, outcome(ts04));
    await automation.settled();
    assert.equal(fired.length, 1, 'fired once for its duration');
    automation.close();
  });

  it('an override rule with mx= counts and acts on the mx: destination, over every domain those hosts serve', async () => {
    const clock = { now: () => 5_000_000 };
    const fired: Firing[] = [];
    const automation = new Automation({ rules: () => RULES, counter: new AutomationCounter(clock), logger: silent, clock, nodeId: 'n1', fire: async (f) => void fired.push(f) });
    const throttled = (mx: string) => reply(451, '4.7.500', 'Server busy, throttled', mx);
    automation.observe('contoso.com', 'a', outcome(throttled('contoso-com.mail.protection.outlook.com')));
    automation.observe('fabrikam.com', 'b', outcome(throttled('fabrikam-com.mail.protection.outlook.com')));
    automation.observe('contoso.com', 'c', outcome(reply(250, '2.0.0', 'ok throttled', 'contoso-com.mail.protection.outlook.com')));
    await automation.settled();
    assert.equal(fired.length, 0, 'a 2xx reply is not matched');
    automation.observe('fabrikam.com', 'd', outcome(throttled('fabrikam-com.mail.protection.outlook.com')));
    await automation.settled();
    assert.equal(fired.length, 1);
    assert.equal(fired[0].destination, 'mx:*.mail.protection.outlook.com');
    assert.equal(fired[0].domain, 'fabrikam.com');
    automation.close();
  });
});
