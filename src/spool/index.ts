export { DiskSpool } from './disk-spool.js';
export type { Spool, QueueEntry, EntryDraft, IncomingMessage, RecoveryReport } from './types.js';
export { encodeEntry, decodeEntry } from './entry-codec.js';
