/**
 * The hostile mail exchangers in a worker thread of their own, so that their work (a
 * flood is written as fast as Tern reads it) never delays the harness's event loop, which
 * times Tern's /health answers. Messages: in `{ specs, limits }` as workerData; out
 * `ready`, then `{ stats }` in answer to `stats` and `stop`; `cut` cuts every connection open, unanswered (after which it exits).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HostileServers } from './hostile-servers.js';
import type { HostileLimits, HostileServerSpec } from './hostile-servers.js';

const { specs, limits } = workerData as { specs: HostileServerSpec[]; limits: HostileLimits };
const servers = new HostileServers(specs, limits);
await servers.start();
parentPort!.postMessage('ready');
parentPort!.on('message', async (msg: string) => {
  if (msg === 'cut') return servers.cut();
  if (msg === 'stop') await servers.stop();
  parentPort!.postMessage({ stats: servers.stats });
  if (msg === 'stop') parentPort!.close();
});
