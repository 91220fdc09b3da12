import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { World } from '../helpers/world.js';
import { FlakySink } from '../helpers/flaky-sink.js';
import { RedisServer } from '../helpers/redis-server.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const SINK = '127.0.0.216';
const FROM = { a: '127.0.0.214', b: '127.0.0.215' } as const;
const PREFIX = 'health-e2e:';

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface QueueList {
  total: number;
  entries: { id: string; attempts: number; waiting: string | null; recipients: { address: string }[] }[];
}

/**
 * Issue 17: two nodes on one Redis, one destination down. The node that finds it down
 * backs it off for the cluster: the other parks its mail for it without an attempt; when
 * the backoff ends exactly one node probes; when the destination is back, both deliver.
 */
describe('destination health shared by two nodes through Redis', () => {
  let world: World;
  let redis: RedisServer;
  const sink = new FlakySink(SINK);
  const nodes: Partial<Record<'a' | 'b', TernProcess>> = {};

  const queue = (tern: TernProcess): QueueList => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'queue', 'ls', '--json', '--domain', 'down.test', '--api', tern.api], { encoding: 'utf8', timeout: 15000 });
    assert.equal(res.status, 0, res.stderr);
    return JSON.parse(res.stdout) as QueueList;
  };
  const probes = () => (['a', 'b'] as const).flatMap((n) => nodes[n]!.records.filter((r) => r.event === 'destination_probe').map(() => n));

  before(async () => {
    redis = await RedisServer.start();
    world = await new World({ tls: '127.0.0.211', dead: '127.0.0.212', plain: '127.0.0.213' }).start();
    world.dns.add('down.test', { type: 'MX', preference: 10, exchange: 'mx.down.test' }).add('mx.down.test', { type: 'A', data: SINK });
    await sink.start(world.port);
    for (const n of ['a', 'b'] as const) {
      nodes[n] = await world.tern({
        outbound: 'temp_fail_intervals=1s*30\ndestination_backoff_min=4s\ndestination_backoff_max=4s',
        files: {
          'redis.ini': `[main]\nenabled=true\nurl=${redis.url}\nnode_id=node-${n}\nkey_prefix=${PREFIX}\n`,
          // Each node sends from its own address, so that the sink tells them apart.
          'routes.ini': `[down.test]\nbind=${FROM[n]}\n`,
        },
      });
    }
    for (const n of ['a', 'b'] as const) await nodes[n]!.waitFor((r) => r.event === 'redis_up');
    // The subscriptions are made once the link is up: both nodes listen on the health channel.
    await until(async () => (await redis.cli('PUBSUB', 'NUMSUB', `${PREFIX}ch:health`)).split('\n')[1] === '2', 'both nodes subscribed');
  });
  after(async () => {
    await Promise.all([nodes.a?.stop(), nodes.b?.stop()]);
    await sink.stop();
    await world?.stop();
    await redis?.stop();
  });

  it('one node connects while the destination is down; the other parks without attempts; one probe a round; both deliver once it is back', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    await sendMail({ port: a.port, from: 'app@client.test', to: ['x1@down.test'], body: message('x1') });
    const first = await a.waitFor(is('TransientFailure', 'x1@down.test'));
    assert.equal((first.response as { code: number }).code, 421);
    await b.waitFor((r) => r.event === 'destination_backoff_shared' && r.domain === 'down.test' && r.node === 'node-a');

    // B gets mail for the destination A found down: it waits, unattempted.
    await sendMail({ port: b.port, from: 'app@client.test', to: ['y1@down.test'], body: message('y1') });
    await sendMail({ port: b.port, from: 'app@client.test', to: ['y2@down.test'], body: message('y2') });
    // Both wait, unattempted, and `tern queue ls` says why.
    await until(() => {
      const parked = queue(b);
      return parked.total === 2 && parked.entries.every((e) => e.attempts === 0 && e.waiting === 'backoff');
    }, 'B parks y1 and y2 for the backoff');
    assert.deepEqual(sink.sessions, [{ from: FROM.a, down: true }], 'only A has connected');

    // The backoff ends: exactly one node probes (the sink still refuses).
    await Promise.race([a, b].map((n) => n.waitFor((r) => r.event === 'destination_probe', 20_000)));
    const [prober] = probes();
    const probeNode = nodes[prober]!;
    await probeNode.waitForCount((r) => r.type === 'TransientFailure', prober === 'a' ? 2 : 1, 15_000);
    // The other node hears the probe's verdict (the destination backed off again): this round is over for it.
    const other = prober === 'a' ? 'b' : 'a';
    await nodes[other]!.waitForCount((r) => r.event === 'destination_backoff_shared' && r.node === `node-${prober}`, other === 'b' ? 2 : 1);
    assert.deepEqual(probes(), [prober], 'one probe for the cluster');
    assert.equal(sink.sessions.length, 2, 'the first failure and one probe');
    assert.equal(sink.sessions[1].from, FROM[prober]);
    assert.equal(sink.sessions.filter((s) => s.from === FROM[other]).length, other === 'a' ? 1 : 0, 'the other node did not connect in this round');
    const otherQueue = queue(nodes[other]!);
    for (const e of otherQueue.entries) {
      assert.equal(e.attempts, other === 'a' ? 1 : 0, 'attempts unchanged');
      assert.equal(e.waiting, 'backoff');
    }

    // It comes back: the next round's probe finds it up, and every node releases its mail.
    sink.down = false;
    for (const rcpt of ['x1@down.test']) await a.waitFor(is('Delivery', rcpt), 20_000);
    for (const rcpt of ['y1@down.test', 'y2@down.test']) await b.waitFor(is('Delivery', rcpt), 20_000);
    assert.deepEqual([...sink.received].sort(), ['x1@down.test', 'y1@down.test', 'y2@down.test']);
    assert.equal(sink.sessions.filter((s) => s.down).length, 2, 'nothing more reached it while it was down');
    assert.equal(probes().length, 2, 'one probe in each round');
    assert.equal(queue(a).total + queue(b).total, 0);
  });

  it('a destination that answers costs no Redis command per message', async () => {
    const { a, b } = nodes as Record<'a' | 'b', TernProcess>;
    const PER_NODE = 20;
    // Every command Redis runs, in the order it runs them (MONITOR), from a marker before
    // the mail to a marker after the last delivery.
    const watcher = new Redis(redis.port, '127.0.0.1');
    const monitor = await watcher.monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => seen.push(args));
    const marker = async (text: string) => {
      await until(async () => {
        await redis.cli('ECHO', text);
        return seen.some((c) => c[0].toLowerCase() === 'echo' && c[1] === text);
      }, `MONITOR sees ${text}`);
      return seen.findIndex((c) => c[0].toLowerCase() === 'echo' && c[1] === text);
    };
    try {
      const from = await marker('busy-from');
      for (let i = 0; i < PER_NODE; i++) {
        await sendMail({ port: a.port, from: 'app@client.test', to: [`ha${i}@down.test`], body: message(`ha${i}`) });
        await sendMail({ port: b.port, from: 'app@client.test', to: [`hb${i}@down.test`], body: message(`hb${i}`) });
      }
      for (let i = 0; i < PER_NODE; i++) {
        await a.waitFor(is('Delivery', `ha${i}@down.test`));
        await b.waitFor(is('Delivery', `hb${i}@down.test`));
      }
      const to = await marker('busy-to');
      // What the mail to the destination cost: commands that name it (its keys, its MX
      // host's TLS memory, news of it). The nodes' periodic work (heartbeats, the policy
      // epoch check) names no destination and is no cost of the mail.
      const forIt = seen.slice(from + 1, to).filter((c) => c.some((arg) => arg.includes('down.test')));
      assert.ok(forIt.length < PER_NODE, `${2 * PER_NODE} messages cost ${forIt.length} commands: ${JSON.stringify(forIt.slice(0, 10))}`);
    } finally {
      monitor.disconnect();
      watcher.disconnect();
    }
  });
});
