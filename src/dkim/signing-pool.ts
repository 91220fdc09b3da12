import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DkimConfig } from '../config/index.js';
import type { SignOutcome } from './message-signer.js';
import type { FromWorker, ToWorker } from './signing-worker.js';

/** What the intake needs of a signer: the message's bytes as they go by, then the signatures. */
export interface BodySigner {
  /** Takes the next bytes of the message (synchronous; the signer keeps what it needs). */
  write(chunk: Buffer): void;
  /** The signatures, once every byte was written; never rejects. */
  finish(sender: string, now: number): Promise<SignOutcome>;
  /** The message is dropped: nothing more will come. */
  abort(): void;
}

/**
 * Bytes are sent to a worker in batches of about this much: a small message goes in one
 * message to the worker at its end, a large one streams (never held whole here).
 */
const BATCH = 64 * 1024;

/** Workers: one per spare core, at least one, at most four (an RSA-2048 signature is ~0.3 ms). */
const defaultWorkers = () => Math.max(1, Math.min(4, availableParallelism() - 1));

interface WorkerSlot {
  worker: Worker;
  pending: Map<number, (outcome: SignOutcome) => void>;
}

/**
 * DKIM signing in worker threads (ingest with signing on the event loop fell to ~55 % of
 * unsigned, see bench/README.md): the intake hands each message's bytes to a worker as
 * they arrive and awaits the signature fields at the end. Workers get the keys of each
 * dkim.ini load as a numbered version; a message is signed with the version it started
 * with. A worker that dies is replaced, and the messages it had go unsigned, with a
 * problem told (never a refusal).
 */
export class DkimSigningPool {
  private readonly slots: WorkerSlot[] = [];
  private version = 0;
  private config: DkimConfig;
  private nextId = 1;
  private turn = 0;
  private closed = false;
  /** Messages in progress per key version: a superseded version is dropped in the workers when none is left. */
  private readonly inUse = new Map<number, number>();

  constructor(config: DkimConfig, private readonly workers = defaultWorkers()) {
    this.config = config;
    this.version = 1;
    // No sections: no workers; they start with the first config that signs.
    if (this.active) this.ensureWorkers();
  }

  /** Whether any message can be signed with the current keys. */
  get active(): boolean {
    return this.config.domains.size > 0 && !this.closed;
  }

  /** A new dkim.ini: messages started from now on are signed with it. */
  update(config: DkimConfig): void {
    const previous = this.version;
    this.config = config;
    this.version++;
    if (this.active) {
      this.ensureWorkers();
      for (const slot of this.slots) this.post(slot, { type: 'ring', version: this.version, config });
    }
    if (!this.inUse.get(previous)) this.drop(previous);
  }

  private release(version: number): void {
    const left = (this.inUse.get(version) ?? 1) - 1;
    if (left > 0) return void this.inUse.set(version, left);
    this.inUse.delete(version);
    if (version !== this.version) this.drop(version);
  }

  private drop(version: number): void {
    for (const slot of this.slots) this.post(slot, { type: 'drop', version });
  }

  /** A signer for one message, or undefined when nothing is signed. */
  start(): BodySigner | undefined {
    if (!this.active) return undefined;
    const slot = this.slots[this.turn++ % this.slots.length];
    const id = this.nextId++;
    const version = this.version;
    let held: Buffer[] = [];
    let heldBytes = 0;
    let done = false;
    this.inUse.set(version, (this.inUse.get(version) ?? 0) + 1);
    const end = () => {
      if (done) return false;
      done = true;
      this.release(version);
      return true;
    };
    const take = (): Uint8Array<ArrayBuffer> | undefined => {
      if (heldBytes === 0) return undefined;
      // A copy of its own, transferred: the chunks stay the spool's, and no pooled
      // buffer they may share memory with is cloned whole.
      const bytes = new Uint8Array(heldBytes);
      let at = 0;
      for (const b of held) {
        bytes.set(b, at);
        at += b.length;
      }
      held = [];
      heldBytes = 0;
      return bytes;
    };
    const flush = () => {
      const bytes = take();
      if (bytes) this.post(slot, { type: 'bytes', id, version, bytes }, [bytes.buffer]);
    };
    return {
      write: (chunk) => {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= BATCH) flush();
      },
      finish: (sender, now) => {
        const bytes = take();
        return new Promise<SignOutcome>((resolve) => {
          if (!end() || !this.slots.includes(slot)) return resolve({ prefix: '', signatures: [], problems: ['signing worker gone'] });
          slot.pending.set(id, (outcome) => resolve(outcome));
          this.post(slot, { type: 'finish', id, version, sender, now, bytes }, bytes ? [bytes.buffer] : []);
        });
      },
      abort: () => {
        held = [];
        heldBytes = 0;
        if (end()) this.post(slot, { type: 'abort', id });
      },
    };
  }

  /** Stops the workers; messages waiting for a signature go unsigned. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const slot of slots) this.failAll(slot, 'signing stopped');
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private post(slot: WorkerSlot, msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    try {
      slot.worker.postMessage(msg, transfer);
    } catch {
      // A worker on its way out: its messages are failed by its exit handler.
    }
  }

  private ensureWorkers(): void {
    while (this.slots.length < this.workers) this.slots.push(this.spawn());
  }

  private spawn(): WorkerSlot {
    const worker = new Worker(new URL('./signing-worker.js', import.meta.url));
    // The workers never keep the daemon alive: its listener and timers do.
    worker.unref();
    const slot: WorkerSlot = { worker, pending: new Map() };
    worker.on('message', (msg: FromWorker) => {
      const resolve = slot.pending.get(msg.id);
      slot.pending.delete(msg.id);
      resolve?.(msg.outcome);
    });
    worker.on('error', () => undefined); // the exit that follows says it
    worker.on('exit', (code) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      this.failAll(slot, `signing worker exited (${code})`);
      if (this.active) this.ensureWorkers();
    });
    worker.postMessage({ type: 'ring', version: this.version, config: this.config } satisfies ToWorker);
    return slot;
  }

  private failAll(slot: WorkerSlot, problem: string): void {
    for (const resolve of slot.pending.values()) resolve({ prefix: '', signatures: [], problems: [problem] });
    slot.pending.clear();
  }
}
