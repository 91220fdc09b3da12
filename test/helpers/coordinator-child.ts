import { IpcCoordinator, processChannel } from '../../src/cluster/index.js';
import type { ConnectionLease, DestinationLimits } from '../../src/cluster/index.js';

/**
 * A worker's half of the coordination, in a process of its own (forked by
 * test/integration/ipc-coordinator.test.ts with an IPC channel, as node:cluster forks a
 * worker): it runs the real IpcCoordinator and does what the test asks, answering on the
 * same channel. Argv: workers, index, timeout ms.
 */
const [workers, index, timeoutMs] = process.argv.slice(2).map(Number);
const channel = processChannel()!;
const coordinator = new IpcCoordinator({ channel, timeoutMs, workers, index });
coordinator.onFreed((key) => channel.send({ tern: 'test-freed', key }));

type Ask = { tern: 'test-do'; rid: number; op: 'acquire' | 'release' | 'take' | 'close'; key: string; limits: DestinationLimits; leaseId?: string; wanted?: number };

channel.onMessage((m) => {
  const ask = m as Ask;
  if (ask?.tern !== 'test-do') return;
  const done = (result: unknown) => channel.send({ tern: 'test-done', rid: ask.rid, result });
  switch (ask.op) {
    case 'acquire':
      return void coordinator.acquireSlot(ask.key, ask.limits, ask.leaseId!).then(done);
    case 'release':
      coordinator.releaseSlot({ key: ask.key, id: ask.leaseId! } satisfies ConnectionLease);
      return done(null);
    case 'take':
      return void coordinator.takeTokens(ask.key, ask.limits, ask.wanted!).then(done);
    case 'close':
      return void coordinator.close().then(() => {
        done(null);
        process.disconnect();
      });
  }
});
channel.send({ tern: 'test-up' });
