import { join } from 'node:path';

/**
 * Queue shards (issue #16, `nodes=N`): worker K owns `queue/shard-K`, and every message id
 * it makes ends in `S<K>` (`…3F9A2S1`), so that a command naming an id goes straight to
 * that shard. Ids stay letters and digits, as the queue's files and every tool reading them
 * expect. An id of a single process ends in its hex random part, where no `S` occurs, so it
 * never looks sharded.
 */
export const SHARD_DIR_PREFIX = 'shard-';

export const shardSuffix = (shard: number): string => `S${shard}`;

export const shardDir = (queueDir: string, shard: number): string => join(queueDir, `${SHARD_DIR_PREFIX}${shard}`);

/** The shard a message or entry id names (`…SK` or `…SK.n`), or undefined for an unsharded id. */
export function shardOfId(id: string): number | undefined {
  const m = /S(\d{1,3})(?:\.\d+)?$/.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** K of a directory named `shard-K`, or undefined. */
export function shardOfDir(name: string): number | undefined {
  const m = /^shard-(\d{1,3})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
