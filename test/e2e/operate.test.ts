import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, writeConfig } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const TOKEN = 'test-token-0123456789abcdef';

describe('operating the queue: admin API, CLI and metrics', () => {
  let world: World;
  let tern: TernProcess;

  /** The real CLI, as an operator runs it. */
  function cli(...args: string[]) {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api, '--token', TOKEN], { encoding: 'utf8', timeout: 15000 });
    return { code: res.status, out: res.stdout, err: res.stderr, json: () => JSON.parse(res.stdout) };
  }

  before(async () => {
    world = await new World({ tls: '127.0.0.52', dead: '127.0.0.53', plain: '127.0.0.54' }).start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1h*10',
      files: { 'http.ini': `listen=127.0.0.1:0\ntoken=${TOKEN}\n`, 'dsn.ini': 'enable_bounce=true\n' },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('lists deferred entries with filters, in a table and as JSON', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['tempfail-op1@good.test'], body: message('op1') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['tempfail-op2@good.test', 'tempfail-op3@implicit.test'], body: message('op2') });
    await tern.waitForCount((r) => r.type === 'TransientFailure' && String(r.recipient).startsWith('tempfail-op'), 3);
    const all = cli('queue', 'ls', '--json').json();
    assert.equal(all.total, 3);
    assert.ok(all.entries.every((e: { state: string }) => e.state === 'deferred'));
    const good = cli('queue', 'ls', '--json', '--domain', 'good.test').json();
    assert.equal(good.total, 2);
    const paged = cli('queue', 'ls', '--json', '--limit', '1', '--offset', '1').json();
    assert.equal(paged.entries.length, 1);
    assert.equal(paged.total, 3);
    const human = cli('queue', 'ls');
    assert.equal(human.code, 0);
    assert.match(human.out, /^ID +STATE +DOMAIN +SENDER +RCPTS +SIZE +TRIES +AGE +NEXT +LAST REPLY\n/);
    assert.match(human.out, /deferred +good\.test +app@other\.test +1 .* 451 4\.2\.1 Mailbox busy, try later/);
    assert.match(human.out, /-- 1-3 of 3 entries\n$/);
  });

  it('shows one entry with its recipients, holds, releases and removes it', async () => {
    const [entry] = cli('queue', 'ls', '--json', '--domain', 'implicit.test').json().entries;
    const shown = cli('queue', 'show', entry.id, '--json').json();
    assert.equal(shown.recipients[0].address, 'tempfail-op3@implicit.test');
    assert.equal(shown.recipients[0].lastReply.code, 451);
    assert.match(cli('queue', 'show', entry.id).out, /RECIPIENT +STATE +LAST REPLY\ntempfail-op3@implicit\.test +deferred +451 4\.2\.1/);

    assert.equal(cli('queue', 'hold', entry.id).code, 0);
    assert.equal(cli('queue', 'ls', '--json', '--state', 'held').json().total, 1);
    assert.equal(cli('queue', 'flush', '--json').json().flushed, 2, 'held entries are not flushed');
    await tern.waitForCount((r) => r.type === 'TransientFailure' && String(r.recipient).startsWith('tempfail-op'), 5);
    assert.equal(cli('queue', 'show', entry.id, '--json').json().attempts, 1, 'the held entry was not tried');
    assert.equal(cli('queue', 'release', entry.id).code, 0);
    await tern.waitFor((r) => r.type === 'TransientFailure' && r.id === entry.id && r.attempt === 2);

    const rm = cli('queue', 'rm', entry.id);
    assert.equal(rm.code, 0);
    assert.equal(rm.out, `removed ${entry.id}\n`);
    assert.equal(existsSync(join(tern.queueDir, 'entries', `${entry.id}.json`)), false);
    const missing = cli('queue', 'show', entry.id);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no queue entry/);
  });

  it('bounces an entry on demand, with a report to the sender', async () => {
    const [entry] = cli('queue', 'ls', '--json', '--domain', 'good.test', '--limit', '1').json().entries;
    assert.equal(cli('queue', 'bounce', entry.id).code, 0);
    const b = await tern.waitFor((r) => r.type === 'Bounce' && r.id === entry.id);
    assert.deepEqual(b.response, { code: 550, enhanced_code: '5.0.0', content: 'Message bounced by the operator' });
    await tern.waitFor((r) => r.type === 'Reception' && (r.report as { original_id?: string } | undefined)?.original_id === entry.id);
  });

  it('suspends and resumes delivery to one domain', async () => {
    assert.equal(cli('domain', 'suspend', 'other.test').code, 0);
    assert.deepEqual(cli('domain', 'ls', '--json').json().suspended, ['other.test']);
    await sendMail({ port: tern.port, from: 'app@client.test', to: ['held-by-suspend@other.test'], body: message('suspend') });
    await tern.waitFor((r) => r.type === 'Reception' && (r.recipients as string[]).includes('held-by-suspend@other.test'));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(tern.dispositions('Delivery').filter((r) => r.recipient === 'held-by-suspend@other.test').length, 0);
    assert.match(cli('domain', 'resume', 'other.test').out, /resumed \(1 entries due again\) other\.test/);
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === 'held-by-suspend@other.test');
  });

  it('serves Prometheus metrics and refuses requests without the token', async () => {
    const res = await fetch(`${tern.api}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await res.text();
    assert.match(text, /^tern_queue_entries\{state="deferred"\} \d+$/m);
    assert.match(text, /^tern_dispositions_total\{outcome="TransientFailure"\} [1-9]\d*$/m);
    assert.match(text, /^tern_replies_total\{code="451"\} [1-9]/m);
    assert.match(text, /^tern_messages_received_total [1-9]/m);
    assert.match(text, /^tern_dsn_generated_total\{kind="bounce"\} 1$/m);
    assert.match(text, /^tern_delivery_attempt_seconds_count [1-9]/m);
    assert.match(text, /^tern_queue_time_seconds_count [1-9]/m);
    assert.match(text, /^tern_outbound_connections_open \d+$/m);
    assert.equal((await fetch(`${tern.api}/metrics`)).status, 401);
    assert.equal((await fetch(`${tern.api}/queue`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    assert.equal((await fetch(`${tern.api}/health`)).status, 200, 'the health check needs no token');
  });

  it('shows live counts in the process title', async () => {
    const { readFileSync } = await import('node:fs');
    assert.match(readFileSync(`/proc/${tern.child.pid}/cmdline`, 'utf8'), /^tern: queued=\d+ in_flight=\d+ sessions=\d+/);
  });
});

describe('tern config check', () => {
  const check = (dir: string) => spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'config', 'check', '--config', dir], { encoding: 'utf8' });

  it('exits 0 for the shipped config', () => {
    const res = check(join(REPO_ROOT, 'config'));
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });

  it('prints one line per problem and exits 78', () => {
    const res = check(writeConfig({ 'outbound.ini': 'concurrency_max=x\nfoo=1\n', 'rewrite_delivery_status.json': '{"(": 500}' }));
    assert.equal(res.status, 78);
    const lines = res.stdout.trim().split('\n');
    assert.equal(lines.length, 3, res.stdout);
    assert.match(lines[0], /^outbound\.ini: concurrency_max="x": /);
    assert.match(lines[1], /^outbound\.ini: foo="1": unknown key/);
    assert.match(lines[2], /^rewrite_delivery_status\.json: \(="\(": invalid regular expression/);
  });
});
