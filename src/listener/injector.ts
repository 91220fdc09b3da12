import type { IncomingMessage, QueueEntry } from '../spool/index.js';

/** Where the listener hands accepted mail; daemon/compose.ts connects it to the spool and the scheduler. */
export interface Injector {
  /** Starts receiving one message body into the queue. */
  receive(): Promise<IncomingMessage>;
  /** The entries are durable; delivery may start. */
  queued(entries: readonly QueueEntry[]): void;
}
