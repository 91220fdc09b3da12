import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';

/**
 * Issue 14.4–14.6, as an operator meets them: the id in `Queued as X` works with every
 * queue command, ls filters by sender and recipient, hold/release/rm/bounce take many ids,
 * ALL, a selection or stdin as postsuper does, and each action leaves a record.
 */
describe('queue tools: message ids, bulk actions and their records', () => {
  let world: World;
  let tern: TernProcess;

  function cli(args: string[], input?: string) {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api], { encoding: 'utf8', timeout: 15000, input });
    return { code: res.status, out: res.stdout, err: res.stderr, json: () => JSON.parse(res.stdout) };
  }
  const admin = (type: string, id: string) => (r: LogRecord) => r.type === type && r.id === id;
  const queuedAs = (response: string) => /Queued as (\S+)/.exec(response)![1];

  before(async () => {
    world = await new World({ tls: '127.0.0.191', dead: '127.0.0.192', plain: '127.0.0.193' }).start();
    tern = await world.tern({ outbound: 'temp_fail_intervals=1h*10', files: { 'http.ini': 'listen=127.0.0.1:0\n', 'dsn.ini': 'enable_bounce=true\n' } });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('takes the id of `Queued as X` for every entry of the message, and records who held, released, removed and bounced', async () => {
    const sent = await sendMail({ port: tern.port, from: 'App@Sender.test', to: ['tempfail-a@good.test', 'tempfail-b@implicit.test'], body: message('trace') });
    const X = queuedAs(sent.response);
    await tern.waitForCount((r) => r.type === 'TransientFailure' && r.message_id === X, 2);

    const shown = cli(['queue', 'show', X, '--json']).json();
    assert.equal(shown.message_id, X);
    assert.deepEqual(shown.entries.map((e: { id: string }) => e.id).sort(), [`${X}.1`, `${X}.2`]);
    assert.match(cli(['queue', 'show', X]).out, /tempfail-a@good\.test +deferred[\s\S]*tempfail-b@implicit\.test +deferred/);

    assert.equal(cli(['queue', 'ls', '--json', '--sender', 'App@SENDER.TEST']).json().total, 2, 'the domain part matches in any case');
    assert.equal(cli(['queue', 'ls', '--json', '--sender', 'app@sender.test']).json().total, 0, 'the local part matches exactly');
    assert.equal(cli(['queue', 'ls', '--json', '--sender', '@sender.test']).json().total, 2);
    const byRcpt = cli(['queue', 'ls', '--json', '--recipient', 'tempfail-b@IMPLICIT.test']).json();
    assert.equal(byRcpt.total, 1);
    assert.deepEqual(byRcpt.entries[0].recipients, [{ address: 'tempfail-b@implicit.test', state: 'deferred' }]);

    const held = cli(['queue', 'hold', X, '--reason', 'checking the content']);
    assert.equal(held.code, 0, held.err);
    assert.deepEqual(held.out.split('\n').filter(Boolean).sort(), [`held ${X}.1 (message ${X})`, `held ${X}.2 (message ${X})`]);
    assert.match(held.err, /2 entries held/);
    const hold = await tern.waitFor(admin('AdminHold', `${X}.2`));
    assert.deepEqual(hold.admin, { client: '127.0.0.1', reason: 'checking the content' });
    assert.equal(hold.message_id, X);
    assert.deepEqual(hold.recipients, ['tempfail-b@implicit.test']);
    await tern.waitFor(admin('AdminHold', `${X}.1`));
    assert.equal(cli(['queue', 'ls', '--json', '--state', 'held']).json().total, 2);

    assert.equal(cli(['queue', 'release', X]).code, 0);
    assert.deepEqual((await tern.waitFor(admin('AdminRelease', `${X}.1`))).admin, { client: '127.0.0.1', reason: null });
    await tern.waitForCount((r) => r.type === 'TransientFailure' && r.message_id === X && r.attempt === 2, 2);

    const rm = cli(['queue', 'rm', `${X}.2`]);
    assert.equal(rm.out, `removed ${X}.2\n`);
    assert.deepEqual((await tern.waitFor(admin('AdminRemove', `${X}.2`))).recipients, ['tempfail-b@implicit.test']);

    assert.equal(cli(['queue', 'bounce', X, '--reason', 'spam run']).code, 0);
    const bounce = await tern.waitFor(admin('AdminBounce', `${X}.1`));
    assert.deepEqual(bounce.admin, { client: '127.0.0.1', reason: 'spam run' });
    const b = await tern.waitFor(is('Bounce', 'tempfail-a@good.test'));
    assert.equal((b.response as { code: number }).code, 550);
    assert.ok(tern.records.indexOf(bounce) < tern.records.indexOf(b), 'AdminBounce comes before the Bounce it causes');

    const gone = cli(['queue', 'show', X]);
    assert.equal(gone.code, 1);
    const metrics = await (await fetch(`${tern.api}/metrics`)).text();
    assert.match(metrics, /^tern_dispositions_total\{outcome="Bounce"\} [1-9]/m);
    assert.doesNotMatch(metrics, /outcome="Admin/, 'operators’ actions are no delivery outcome');
  });

  it('acts on many ids, ALL, a selection or ids on stdin, and names what failed', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const sent = await sendMail({ port: tern.port, from: 'bulk@client.test', to: [`tempfail-bulk${n}@good.test`], body: message(`bulk ${n}`) });
      ids.push(`${queuedAs(sent.response)}.1`);
    }
    await tern.waitForCount((r) => r.type === 'TransientFailure' && String(r.recipient).startsWith('tempfail-bulk'), 3);

    const some = cli(['queue', 'hold', ids[0], ids[1], 'NOSUCHMESSAGE.1']);
    assert.equal(some.code, 1);
    assert.equal(some.out, `held ${ids[0]}\nheld ${ids[1]}\n`);
    assert.match(some.err, /NOSUCHMESSAGE\.1: .*\(404\)/);
    assert.match(some.err, /2 entries held; 1 failed: NOSUCHMESSAGE\.1/);
    assert.equal(cli(['queue', 'ls', '--json', '--sender', 'bulk@client.test', '--state', 'held']).json().total, 2);

    const all = cli(['queue', 'release', 'ALL', '--state', 'held', '--json']);
    assert.equal(all.code, 0, all.err);
    const lines = all.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; done: string });
    assert.deepEqual(lines.map((l) => l.id).sort(), [ids[0], ids[1]].sort());
    assert.ok(lines.every((l) => l.done === 'released'));
    await tern.waitFor((r) => r.type === 'TransientFailure' && r.id === ids[0] && r.attempt === 2);
    await tern.waitFor((r) => r.type === 'TransientFailure' && r.id === ids[1] && r.attempt === 2);

    const byDomain = cli(['queue', 'hold', '--domain', 'good.test', '--state', 'deferred']);
    assert.equal(byDomain.code, 0, byDomain.err);
    for (const id of ids) assert.match(byDomain.out, new RegExp(`^held ${id.replace('.', '\\.')}$`, 'm'));
    assert.equal(cli(['queue', 'ls', '--json', '--state', 'held', '--domain', 'good.test']).json().total, 3);

    const fromStdin = cli(['queue', 'rm', '-'], `${ids[0]}\n\n${ids[2]}\n`);
    assert.equal(fromStdin.code, 0, fromStdin.err);
    assert.equal(fromStdin.out, `removed ${ids[0]}\nremoved ${ids[2]}\n`);
    await tern.waitFor(admin('AdminRemove', ids[2]));
    assert.equal(cli(['queue', 'ls', '--json', '--sender', 'bulk@client.test']).json().total, 1);

    const res = await fetch(`${tern.api}/queue/hold`, { method: 'POST', body: JSON.stringify({ ids: [ids[1]], all: true }) });
    assert.equal(res.status, 400, 'ids and a selection at once are refused');
    const ndjson = await fetch(`${tern.api}/queue/release`, { method: 'POST', body: JSON.stringify({ ids: [ids[1]] }) });
    assert.equal(ndjson.headers.get('content-type'), 'application/x-ndjson');
    assert.deepEqual((await ndjson.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l)), [
      { target: ids[1], id: ids[1], done: 'released' },
      { summary: { action: 'release', done: 1, failed: 0 } },
    ]);
  });

  it('refuses extra arguments and bad usage with exit 2', () => {
    for (const args of [
      ['queue', 'hold'],
      ['queue', 'hold', 'ALL', 'X.1'],
      ['queue', 'rm', 'X.1', '--domain', 'good.test'],
      ['queue', 'show', 'X.1', 'X.2'],
      ['queue', 'ls', 'extra'],
      ['queue', 'flush', 'extra'],
      ['queue', 'ls', '--no-such-option'],
      ['config', 'check', 'extra'],
      ['health', 'extra'],
      ['start', 'extra'],
      ['domain', 'ls', 'extra'],
    ]) {
      const res = cli(args);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.err}`);
      assert.match(res.err, /usage: /, args.join(' '));
    }
  });
});
