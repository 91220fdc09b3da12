import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { FlakySink } from '../helpers/flaky-sink.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const SINK = '127.0.0.120';
const FROM: Record<'a' | 'b', string> = { a: '127.0.0.126', b: '127.0.0.127' };
const PREFIX = 'lift-e2e:';

interface QueueList {
  total: number;
  entries: { id: string; attempts: number; waiting: string | null }[];
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Issue 17: an operator who says "retry now" on one node (`tern queue flush`, `tern domain
 * resume`) means the cluster. The destination is backed off for two nodes; it comes back;
 * the operator lifts the backoff on one node, and the other node's parked entries go too.
 * The backoff lasts two minutes, far longer than any wait here, so that no probe's verdict
 * can explain the other node's deliveries: only the lift can.
 */
describe("the operator's flush and resume lift a shared backoff on every node", () => {
  let world: World;
  let redis: RedisServer;
  const sink = new FlakySink(SINK);
  const nodes: Partial<Record<'a' | 'b', TernProcess>> = {};

  const tern = (node: TernProcess, ...args: string[]) => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', node.api], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(res.status, 0, res.stderr);
    return res.stdout;
  };
  const queue = (node: TernProcess, domain: string) => JSON.parse(tern(node, 'queue', 'ls', '--json', '--domain', domain)) as QueueList;
  const parkedUnattempted = (node: TernProcess, domain: string, count: number) => {
    const q = queue(node, domain);
    return q.total === count && q.entries.every((e) => e.attempts === 0 && e.waiting === 'backoff');
  };
  const both = () => [nodes.a!, nodes.b!];

  /** A sends first and finds the destination down; B hears of it and parks its own mail without an attempt. */
  async function downOnBoth(domain: string, fromA: string, fromB: string[]): Promise<void> {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    sink.down = true;
    await sendMail({ port: a.port, from: 'app@client.test', to: [fromA], body: message(fromA) });
    assert.equal(((await a.waitFor(is('TransientFailure', fromA))).response as { code: number }).code, 421);
    await b.waitFor((r) => r.event === 'destination_backoff_shared' && r.domain === domain && r.node === 'node-a');
    for (const rcpt of fromB) await sendMail({ port: b.port, from: 'app@client.test', to: [rcpt], body: message(rcpt) });
    await until(() => parkedUnattempted(b, domain, fromB.length), `B parks ${fromB.join(', ')} for the backoff, unattempted`);
  }

  before(async () => {
    redis = await RedisServer.start();
    world = await new World({ tls: '127.0.0.117', dead: '127.0.0.118', plain: '127.0.0.119' }).start();
    for (const d of ['flush.test', 'resume.test']) world.dns.add(d, { type: 'MX', preference: 10, exchange: `mx.${d}` }).add(`mx.${d}`, { type: 'A', data: SINK });
    await sink.start(world.port);
    for (const n of ['a', 'b'] as const) {
      nodes[n] = await world.tern({
        outbound: 'temp_fail_intervals=1s*30\ndestination_backoff_min=120s\ndestination_backoff_max=120s',
        files: {
          'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nnode_id=node-${n}\nkey_prefix=${PREFIX}\n`,
          // Each node sends from its own address, so that the sink tells them apart.
          'routes.ini': `[flush.test]\nbind=${FROM[n]}\n[resume.test]\nbind=${FROM[n]}\n`,
        },
      });
    }
    for (const n of both()) await n.waitFor((r) => r.event === 'redis_up');
    // Both nodes listen on the health channel (their subscriptions are made once the link is up).
    await until(async () => (await redis.cli('PUBSUB', 'NUMSUB', `${PREFIX}ch:health`)).split('\n')[1] === '2', 'both nodes subscribed');
  });
  after(async () => {
    await Promise.all([nodes.a?.stop(), nodes.b?.stop()]);
    await sink.stop();
    await world?.stop();
    await redis?.stop();
  });

  it('`tern queue flush` on A: B delivers its parked entries too, with no probe and no attempt before', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    await downOnBoth('flush.test', 'x1@flush.test', ['y1@flush.test', 'y2@flush.test']);
    assert.deepEqual(sink.sessions, [{ from: FROM.a, down: true }], 'only A has connected');
    assert.equal(await redis.cli('EXISTS', `${PREFIX}{flush.test}:health`), '1', 'the cluster backs it off');

    sink.down = false;
    tern(a, 'queue', 'flush');
    const lifted = await a.waitFor((r) => r.event === 'destination_backoff_lifted');
    assert.equal(lifted.scope, 'cluster');
    assert.equal(lifted.domain, undefined, 'every destination A knows backed off');
    await b.waitFor((r) => r.event === 'destination_lift_shared' && r.domain === 'flush.test' && r.node === 'node-a');
    await a.waitFor(is('Delivery', 'x1@flush.test'));
    for (const rcpt of ['y1@flush.test', 'y2@flush.test']) await b.waitFor(is('Delivery', rcpt));

    assert.deepEqual([...sink.received].sort(), ['x1@flush.test', 'y1@flush.test', 'y2@flush.test']);
    assert.ok(sink.sessions.some((s) => s.from === FROM.b && !s.down), 'B itself delivered');
    assert.equal(sink.sessions.filter((s) => s.from === FROM.b && s.down).length, 0, 'B never tried while it was down');
    for (const n of both()) {
      assert.equal(n.records.filter((r) => r.event === 'destination_probe').length, 0, 'no probe: the lift released them');
      assert.equal(n.records.filter((r) => r.event === 'destination_up_missed').length, 0, 'released by the news, not by the watch');
      assert.equal(queue(n, 'flush.test').total, 0);
    }
    assert.equal(await redis.cli('EXISTS', `${PREFIX}{flush.test}:health`), '0', 'the shared record is gone');
  });

  it('`tern domain resume D` on B: A delivers its deferred entry too', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    const sessionsBefore = sink.sessions.length;
    await downOnBoth('resume.test', 'r1@resume.test', ['s1@resume.test']);

    sink.down = false;
    tern(b, 'domain', 'resume', 'resume.test');
    const lifted = await b.waitFor((r) => r.event === 'destination_backoff_lifted' && r.domain === 'resume.test');
    assert.equal(lifted.scope, 'cluster');
    await a.waitFor((r) => r.event === 'destination_lift_shared' && r.domain === 'resume.test' && r.node === 'node-b');
    await b.waitFor(is('Delivery', 's1@resume.test'));
    await a.waitFor(is('Delivery', 'r1@resume.test'));

    const sessions = sink.sessions.slice(sessionsBefore);
    assert.deepEqual(sessions.filter((s) => s.down), [{ from: FROM.a, down: true }], 'only the first attempt met it down');
    assert.ok(sessions.some((s) => s.from === FROM.a && !s.down) && sessions.some((s) => s.from === FROM.b && !s.down));
    for (const n of both()) {
      assert.equal(n.records.filter((r) => r.event === 'destination_probe').length, 0);
      assert.equal(queue(n, 'resume.test').total, 0);
    }
  });
});
