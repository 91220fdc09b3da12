/**
 * The messages of the limit coordination between a worker and the primary (`nodes=N`),
 * over node:cluster's IPC channel. Every message carries `tern: 'coord…'` so that it is told
 * apart from the daemon's own messages (ready, drained) on the same channel.
 */

/** What both ends need of an IPC channel: a worker's `process`, or the primary's `Worker`. */
export interface IpcChannel {
  send(message: unknown): void;
  onMessage(listener: (message: unknown) => void): () => void;
  /** false once the other end is gone for good (absent: the channel cannot tell). */
  connected?(): boolean;
}

export type CoordOp = 'acquireSlot' | 'releaseSlot' | 'takeTokens' | 'returnTokens';

/** worker → primary. `id` pairs the answer with its call; one-way calls carry one too. */
export interface CoordCall {
  readonly tern: 'coord';
  readonly id: number;
  readonly op: CoordOp;
  readonly args: readonly unknown[];
}

/** primary → worker: the answer to call `id`. */
export interface CoordReply {
  readonly tern: 'coord-reply';
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

/** primary → every worker: a slot of `key` may have come free. */
export interface CoordFreed {
  readonly tern: 'coord-freed';
  readonly key: string;
}

const isObject = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null;

export const isCoordCall = (m: unknown): m is CoordCall =>
  isObject(m) && m.tern === 'coord' && Number.isSafeInteger(m.id) && typeof m.op === 'string' && Array.isArray(m.args) && m.args.length <= 4;

export const isCoordReply = (m: unknown): m is CoordReply => isObject(m) && m.tern === 'coord-reply' && Number.isSafeInteger(m.id);

export const isCoordFreed = (m: unknown): m is CoordFreed => isObject(m) && m.tern === 'coord-freed' && typeof m.key === 'string';

/** A node:cluster worker's own `process` as a channel (undefined when it has none). */
export function processChannel(proc: NodeJS.Process = process): IpcChannel | undefined {
  if (!proc.send) return undefined;
  return {
    send: (message) => {
      // A channel that closed (the primary went away) drops the message: callers fall back on time-outs.
      if (proc.connected) proc.send!(message, undefined, undefined, () => undefined);
    },
    onMessage: (listener) => {
      proc.on('message', listener);
      return () => void proc.off('message', listener);
    },
    connected: () => proc.connected,
  };
}
