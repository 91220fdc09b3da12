import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig, loadConfig, parseAutomation, settingsByFile } from '../../../src/config/index.js';
import { MATCHED_BYTES, replyLine } from '../../../src/cluster/index.js';
import { ConfigError } from '../../../src/core/index.js';

const YAHOO = `
[yahoo-ts04]
match = \\[TS04\\]
domains = yahoo.com, ymail.com      ; optional
threshold = 1
window = 10m
action = suspend
duration = 2h
`;

const MICROSOFT = `
[microsoft-throttled]
match = ^4\\d\\d 4\\.7\\.\\d+ .*throttl
mx = *.mail.protection.outlook.com
threshold = 3
window = 10m
action = override
max_connections = 1
max_message_rate = 1/min
duration = 90m
`;

function refused(text: string): ConfigError {
  try {
    parseAutomation(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('accepted');
}

describe('automation.ini', () => {
  it('reads the README examples: Yahoo TS04 and Microsoft throttling', () => {
    const { rules } = parseAutomation(YAHOO + MICROSOFT);
    assert.equal(rules.length, 2);
    const [yahoo, ms] = rules;
    assert.equal(yahoo.name, 'yahoo-ts04');
    assert.deepEqual(yahoo.domains, ['yahoo.com', 'ymail.com']);
    assert.equal(yahoo.threshold, 1);
    assert.equal(yahoo.windowMs, 600_000);
    assert.equal(yahoo.action, 'suspend');
    assert.equal(yahoo.durationMs, 7_200_000);
    assert.ok(yahoo.match.test('421 4.7.0 [TS04] Messages from 192.0.2.1 temporarily deferred'));
    assert.equal(ms.mx, '*.mail.protection.outlook.com');
    assert.ok(ms.mxRegExp!.test('contoso-com.mail.protection.outlook.com'));
    assert.equal(ms.maxConnections, 1);
    assert.deepEqual(ms.maxMessageRate, { count: 1, perMs: 60_000 });
    assert.ok(ms.match.test('451 4.7.500 Server busy. Please try again later, throttled'));
    assert.equal(ms.match.test('550 5.7.1 throttled'), false);
  });

  it('no file: no rules', () => {
    assert.deepEqual(parseAutomation(undefined).rules, []);
  });

  it('names the file, section and key of each mistake', () => {
    const cases: [string, RegExp][] = [
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\ncolour=red\n', /automation\.ini: \[r\] colour=.*unknown key/],
      ['[r]\nmatch=(unclosed\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\n', /\[r\] match=.*not a regular expression/],
      [`[r]\nmatch=${'a'.repeat(501)}\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\n`, /\[r\] match=.*at most 500/],
      ['[r]\nmatch=x\nwindow=1m\naction=suspend\nduration=1h\n', /\[r\] threshold=.*required/],
      ['[r]\nmatch=x\nthreshold=1\naction=suspend\nduration=1h\n', /\[r\] window=.*required/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=suspend\n', /\[r\] duration=.*required/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=override\nduration=1h\n', /\[r\] action=.*needs max_connections= or max_message_rate=/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\nmax_connections=1\n', /\[r\] action=.*go with action=override/],
      ['[r]\nmatch=x\nthreshold=0\nwindow=1m\naction=suspend\nduration=1h\n', /\[r\] threshold=/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=soon\naction=suspend\nduration=1h\n', /\[r\] window=/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=bounce\nduration=1h\n', /\[r\] action=/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=override\nmax_message_rate=fast\nduration=1h\n', /\[r\] max_message_rate=/],
      ['[r]\nmatch=x\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\ndomains=a.test\nmx=*.b.test\n', /\[r\] mx=.*not both/],
      ['match=x\n', /automation\.ini: match=.*under a \[rule-name\] section/],
    ];
    for (const [text, expected] of cases) assert.match(refused(text).message, expected, text);
  });

  it('refuses patterns that can backtrack for long on a hostile reply, naming the section and key', () => {
    const rule = (m: string) => `[slow]\nmatch=${m}\nthreshold=1\nwindow=1m\naction=suspend\nduration=1h\n`;
    // (\w+\s*)+ throttled on "451 4.7.500 aaa…!" doubles its time every ~2 characters.
    for (const m of ['(\\w+\\s*)+ throttled', '(a+)+b', '(a|aa)+b', '(?:x?){20}y', '(a)\\1', '(?<=x)y', '.*a.*b.*c', 'a.{0,500}b.{0,500}c.{0,500}d', `${'a?'.repeat(18)}${'a'.repeat(18)}`, `${'a{0,16}'.repeat(10)}b`, 'a{0,16}a{0,16}b', '.*a.*b?']) {
      assert.match(refused(rule(m)).message, /automation\.ini: \[slow\] match=/, m);
    }
    for (const m of ['\\[TS04\\]', '^4\\d\\d 4\\.7\\.\\d+ .*throttl', '(?:deferred|throttled) by', '(\\d{3})+ x', '(\\d+\\.)?x', 'from \\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}', 'a*a*b']) {
      assert.equal(parseAutomation(rule(m)).rules.length, 1, m);
    }
    // What is accepted runs on a hostile reply and answers (the match is cut to its first bytes).
    const hostile = replyLine({ code: 451, enhanced: '4.7.500', text: `${'a '.repeat(2000)}!` });
    assert.equal(hostile.length, MATCHED_BYTES);
    assert.equal(parseAutomation(rule('^4\\d\\d 4\\.7\\.\\d+ .*throttl')).rules[0].match.test(hostile), false);
  });

  it('is one of the config files: tern config check lists its problem, config show its rules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-automation-'));
    writeFileSync(join(dir, 'automation.ini'), MICROSOFT);
    const shown = settingsByFile(loadConfig(dir))['automation.ini'];
    assert.equal(shown['[microsoft-throttled].max_message_rate'], '1/min');
    assert.equal(shown['[microsoft-throttled].duration'], 5400);
    writeFileSync(join(dir, 'automation.ini'), '[r]\nmatch=(\n');
    const problems = checkConfig(dir);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].file, 'automation.ini');
  });
});
