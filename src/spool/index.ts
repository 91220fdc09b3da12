export { DiskSpool } from './disk-spool.js';
export { MemorySpool } from './memory-spool.js';
export { EntryNotFoundError } from './types.js';
export type { Spool, QueueEntry, EntryDraft, EntryHead, IncomingMessage, RecoveryReport, RecoveryOptions } from './types.js';
export { encodeEntry, decodeEntry } from './entry-codec.js';
export { entryHead } from './entry-head.js';
export { writeFileSynced, fsyncDir } from './durable-fs.js';
export { SHARD_DIR_PREFIX, shardDir, shardOfDir, shardOfId } from './shards.js';
