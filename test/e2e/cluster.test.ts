import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { HoldingMx } from '../helpers/holding-mx.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, tempQueue } from '../helpers/tern-process.js';
import type { LogRecord, TernProcess } from '../helpers/tern-process.js';

/**
 * Issue #16, "every core": `smtp.ini nodes=2` runs a primary and two workers, each with a
 * queue shard of its own, behind one listener and one admin API.
 */
const queuedAs = (response: string) => /Queued as (\S+)/.exec(response)![1];
const shardOf = (id: string) => /S(\d+)(?:\.\d+)?$/.exec(id)?.[1];

function cli(tern: TernProcess, args: string[]) {
  const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api], { encoding: 'utf8', timeout: 20000 });
  return { code: res.status, out: res.stdout, err: res.stderr, json: () => JSON.parse(res.stdout) };
}

/** Sends one message a connection until both shards hold one of `to`'s messages (round robin spreads them). */
async function sendUntilBothShards(tern: TernProcess, to: (n: number) => string, max = 16): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 0; n < max; n++) {
    ids.push(queuedAs((await sendMail({ port: tern.port, from: 'app@sender.test', to: [to(n)], body: message(`m${n}`) })).response));
    if (new Set(ids.map(shardOf)).size === 2 && n >= 3) break;
  }
  return ids;
}

describe('nodes=2: two workers, one listener, one admin API', () => {
  let world: World;
  let tern: TernProcess;

  before(async () => {
    world = await new World({ tls: '127.0.0.241', dead: '127.0.0.242', plain: '127.0.0.243' }).start();
    tern = await world.tern({ smtp: 'nodes=2', outbound: 'temp_fail_intervals=1h*10' });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('accepts mail on both workers, each id naming its shard, and delivers all of it', async () => {
    const ids = await sendUntilBothShards(tern, (n) => `ok${n}@good.test`);
    assert.deepEqual(new Set(ids.map(shardOf)), new Set(['0', '1']), 'both workers took connections');
    await world.mx.waitForMail(ids.length);
    const deliveries = await tern.waitForCount((r) => r.type === 'Delivery' && ids.includes(r.message_id as string), ids.length);
    for (const d of deliveries) assert.equal(String(d.shard), shardOf(d.message_id as string), 'a worker delivers its own shard, and says so');
    const listening = tern.records.find((r) => r.msg === 'tern listening')!;
    assert.equal(listening.nodes, 2);
    assert.equal((listening.workers as unknown[]).length, 2);
  });

  it('merges ls over the shards, sends show/hold/release/rm to the shard in the id, and flush and suspend to every worker', async () => {
    const ids = await sendUntilBothShards(tern, (n) => `tempfail-q${n}@other.test`);
    await tern.waitForCount((r) => r.type === 'TransientFailure' && ids.includes(r.message_id as string), ids.length);

    const ls = cli(tern, ['queue', 'ls', '--json', '--domain', 'other.test', '--limit', '1000']).json();
    assert.equal(ls.total, ids.length);
    assert.deepEqual(ls.entries.map((e: { message_id: string }) => e.message_id).sort(), [...ids].sort());
    const page = cli(tern, ['queue', 'ls', '--json', '--domain', 'other.test', '--offset', '1', '--limit', '2']).json();
    assert.deepEqual(page.entries.map((e: { id: string }) => e.id), ls.entries.slice(1, 3).map((e: { id: string }) => e.id), 'pages of the merged listing, in arrival order');

    const one = ids.find((id) => shardOf(id) === '1')!;
    const zero = ids.find((id) => shardOf(id) === '0')!;
    assert.equal(cli(tern, ['queue', 'show', one, '--json']).json().message_id, one);
    const failures = (id: string, attempt: number) => (r: LogRecord) => r.type === 'TransientFailure' && r.message_id === id && r.attempt === attempt;

    // Every entry is deferred for an hour: nothing is in flight while the operator acts.
    const bulk = cli(tern, ['queue', 'hold', 'ALL', '--domain', 'other.test']);
    assert.equal(bulk.code, 0, bulk.err);
    assert.match(bulk.err, new RegExp(`${ids.length} entries held`), 'a selection reaches every shard');
    assert.equal(cli(tern, ['queue', 'release', `${one}.1`]).code, 0);
    await tern.waitFor((r) => r.type === 'AdminRelease' && r.id === `${one}.1` && r.shard === 1);
    await tern.waitFor(failures(one, 2));

    const flushed = cli(tern, ['queue', 'flush', '--json']).json();
    assert.equal(flushed.flushed, 1, 'the one deferred entry (shard 1) is due now; held ones stay');
    assert.deepEqual(new Set((await tern.waitForCount((r) => r.msg === 'queue flushed by the operator', 2)).map((r) => r.shard)), new Set([0, 1]), 'flush reaches every worker');
    await tern.waitFor(failures(one, 3));

    const held = cli(tern, ['queue', 'hold', `${one}.1`, '--reason', 'looking']);
    assert.equal(held.code, 0, held.err);
    const hold = await tern.waitFor((r) => r.type === 'AdminHold' && r.id === `${one}.1` && r.admin !== undefined && (r.admin as { reason: string | null }).reason === 'looking');
    assert.equal(hold.shard, 1);
    assert.deepEqual(hold.admin, { client: '127.0.0.1', reason: 'looking' });
    const rm = cli(tern, ['queue', 'rm', zero]);
    assert.equal(rm.code, 0, rm.err);
    await tern.waitFor((r) => r.type === 'AdminRemove' && r.message_id === zero && r.shard === 0);
    assert.equal(cli(tern, ['queue', 'show', zero]).code, 1, 'gone from its shard');
    assert.equal(cli(tern, ['queue', 'ls', '--json', '--state', 'held', '--domain', 'other.test']).json().total, ids.length - 1);

    assert.equal(cli(tern, ['domain', 'suspend', 'other.test', '--reason', 'maintenance']).code, 0);
    const suspended = await tern.waitForCount((r) => r.msg === 'delivery to domain suspended by the operator', 2);
    assert.deepEqual(new Set(suspended.map((r) => r.shard)), new Set([0, 1]));
    assert.deepEqual(cli(tern, ['domain', 'ls', '--json']).json().suspended, ['other.test']);
    assert.equal(cli(tern, ['domain', 'resume', 'other.test']).code, 0);
    assert.deepEqual(cli(tern, ['domain', 'ls', '--json']).json().suspended, []);
    assert.equal(cli(tern, ['domain', 'suspend', 'not a domain']).code, 2);
  });

  it('serves one /metrics for the machine, a series per shard, that promtool accepts; health sums the shards', async () => {
    const text = await (await fetch(`${tern.api}/metrics`)).text();
    assert.match(text, /^tern_messages_received_total\{shard="0"\} [1-9]/m);
    assert.match(text, /^tern_messages_received_total\{shard="1"\} [1-9]/m);
    assert.match(text, /^process_cpu_seconds_total\{shard="primary"\}/m);
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    const health = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'health', '--api', tern.api, '--json'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(health.status, 0, health.stderr);
    assert.equal(JSON.parse(health.stdout).workers.length, 2);
  });

  it('passes SIGHUP to every worker: each flushes and reloads', async () => {
    tern.signal('SIGHUP');
    const flushed = await tern.waitForCount((r) => r.msg === 'queue flushed', 2);
    assert.deepEqual(new Set(flushed.map((r) => r.shard)), new Set([0, 1]));
    await tern.waitFor((r) => r.msg === 'SIGHUP sent to every worker');
  });
});

describe('nodes=2: a worker killed mid-delivery, adoption of a single process queue, SIGTERM', () => {
  let world: World;
  const holding = new HoldingMx('127.0.0.248');
  let tern: TernProcess | undefined;

  before(async () => {
    world = await new World({ tls: '127.0.0.245', dead: '127.0.0.246', plain: '127.0.0.247' }).start();
    world.dns.add('held.test', { type: 'MX', preference: 10, exchange: 'mx.held.test' }).add('mx.held.test', { type: 'A', data: holding.host });
    await holding.start(world.port);
  });
  after(async () => {
    await tern?.stop();
    await holding.stop();
    await world?.stop();
  });

  it('adopts the queue of a single process, delivers it, and lets the worker go once it is empty', async () => {
    const queue = tempQueue();
    // The MX refuses for now: the single process defers.
    holding.refusing = true;
    holding.holding = false;
    const single = await world.tern({ outbound: 'temp_fail_intervals=1s*30' }, queue);
    const old = queuedAs((await sendMail({ port: single.port, from: 'app@sender.test', to: ['old@held.test'], body: message('old') })).response);
    assert.equal(shardOf(old), undefined, 'a single process makes ids without a shard');
    await single.waitFor((r) => r.type === 'TransientFailure' && r.message_id === old);
    assert.equal((await single.stop()).code, 0);
    holding.refusing = false;
    tern = await world.tern({ smtp: 'nodes=2', outbound: 'temp_fail_intervals=1s*30' }, queue);
    const listening = tern.records.find((r) => r.msg === 'tern listening')!;
    assert.deepEqual((listening.workers as { shard: number | string; takes_mail: boolean }[]).map((w) => [w.shard, w.takes_mail]), [[0, true], [1, true], ['queue', false]]);
    const delivered = await tern.waitFor((r) => r.type === 'Delivery' && r.message_id === old, 20_000);
    assert.equal(delivered.shard, 'queue');
    await tern.waitFor((r) => r.msg === 'shard delivered; its worker is not restarted', 20_000);
    assert.equal(existsSync(join(queue, 'seg')), false, 'the next start adopts nothing');
    assert.equal((await tern.stop()).code, 0);
    assert.deepEqual(tern.records.filter((r) => r.level === 'error' || r.msg === 'shutdown step failed; going on'), [], 'a worker that never listened stops cleanly');
    tern = undefined;
  });

  it('delivers the shards past N when nodes goes down (3 → 2), and removes them once empty', async () => {
    const queue = tempQueue();
    holding.refusing = true;
    holding.holding = false;
    const three = await world.tern({ smtp: 'nodes=3', outbound: 'temp_fail_intervals=1s*30' }, queue);
    const ids: string[] = [];
    for (let n = 0; n < 12 && !ids.some((id) => shardOf(id) === '2'); n++) {
      ids.push(queuedAs((await sendMail({ port: three.port, from: 'app@sender.test', to: [`s${n}@held.test`], body: message(`s${n}`) })).response));
    }
    const third = ids.find((id) => shardOf(id) === '2')!;
    assert.ok(third, 'the third worker took a connection');
    await three.waitFor((r) => r.type === 'TransientFailure' && r.message_id === third);
    assert.equal((await three.stop()).code, 0);
    holding.refusing = false;
    tern = await world.tern({ smtp: 'nodes=2', outbound: 'temp_fail_intervals=1s*30' }, queue);
    const listening = tern.records.find((r) => r.msg === 'tern listening')!;
    assert.deepEqual((listening.workers as { shard: number | string; takes_mail: boolean }[]).map((w) => [w.shard, w.takes_mail]), [[0, true], [1, true], [2, false]]);
    const delivered = await tern.waitFor((r) => r.type === 'Delivery' && r.message_id === third, 20_000);
    assert.equal(delivered.shard, 2);
    assert.equal(cli(tern, ['queue', 'show', third]).code, 1, 'nothing of it left queued');
    await tern.waitFor((r) => r.msg === 'shard delivered; its worker is not restarted', 20_000);
    assert.equal(existsSync(join(queue, 'shard-2')), false);
    for (const id of ids) await tern.waitFor((r) => r.type === 'Delivery' && r.message_id === id, 20_000);
    assert.equal((await tern.stop()).code, 0);
    tern = undefined;
  });

  it('restarts a worker SIGKILLed while it delivers; its shard, held mail included, is delivered', async () => {
    holding.holding = true;
    tern = await world.tern({ smtp: 'nodes=2', outbound: 'temp_fail_intervals=1s*30' });
    const t = tern;
    const pids = Object.fromEntries((t.records.find((r) => r.msg === 'tern listening')!.workers as { shard: number; pid: number }[]).map((w) => [String(w.shard), w.pid]));
    const ids: string[] = [];
    for (let n = 0; n < 8; n++) ids.push(queuedAs((await sendMail({ port: t.port, from: 'app@sender.test', to: [`k${n}@held.test`], body: message(`k${n}`) })).response));
    assert.ok(ids.some((id) => shardOf(id) === '1'));
    const victim = ids.find((id) => shardOf(id) === '1')!;
    const rcpt = `k${ids.indexOf(victim)}@held.test`;
    await holding.until(() => holding.held.includes(rcpt));
    process.kill(pids['1'], 'SIGKILL');
    const died = await t.waitFor((r) => r.msg === 'worker died; restarting it');
    assert.equal(died.shard, 1);
    assert.equal(died.signal, 'SIGKILL');
    const restarted = await t.waitFor((r) => r.msg === 'worker restarted');
    assert.notEqual(restarted.pid, pids['1']);
    holding.release();
    // Every acknowledged message arrives: the restarted worker recovers shard 1 and delivers it.
    await holding.until(() => ids.every((_, n) => holding.delivered.includes(`k${n}@held.test`)), 30_000).catch((err) => {
      throw new Error(`${err.message}\n${t.records.filter((r) => r.type || /worker/.test(String(r.msg))).map((r) => JSON.stringify(r)).join('\n')}`);
    });
    const redelivered = await t.waitFor((r: LogRecord) => r.type === 'Delivery' && r.message_id === victim, 30_000);
    assert.equal(redelivered.shard, 1);
    // SIGTERM: every worker drains and stops, then the primary exits 0.
    const exit = await t.stop();
    assert.equal(exit.code, 0);
    assert.ok(t.records.some((r) => r.msg === 'tern stopped; every worker stopped'));
    assert.equal(t.records.filter((r) => r.msg === 'tern stopped; queue intact').length, 2);
    tern = undefined;
  });
});
