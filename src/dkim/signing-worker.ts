import { parentPort } from 'node:worker_threads';
import type { DkimConfig } from '../config/index.js';
import { KeyRing } from './key-ring.js';
import { MessageSigner } from './message-signer.js';
import type { SignOutcome } from './message-signer.js';

/** What the pool sends a signing worker. */
export type ToWorker =
  | { readonly type: 'ring'; readonly version: number; readonly config: DkimConfig }
  | { readonly type: 'drop'; readonly version: number }
  | { readonly type: 'bytes'; readonly id: number; readonly version: number; readonly bytes: Uint8Array }
  /** The last bytes (a small message's only ones) come with it: one message to the worker. */
  | { readonly type: 'finish'; readonly id: number; readonly version: number; readonly sender: string; readonly now: number; readonly bytes?: Uint8Array }
  | { readonly type: 'abort'; readonly id: number };

/** What a signing worker answers to `finish`. */
export type FromWorker = { readonly id: number; readonly outcome: SignOutcome };

/**
 * A signing worker: the whole of DKIM signing (header parsing, body hashes, header
 * canonicalization, the private-key operation) off the main thread, where it would
 * take from every connection's share of the event loop. Messages are interleaved, each
 * known by its id and signed with the keys of the version it started with.
 */
function serve(port: NonNullable<typeof parentPort>): void {
  // A superseded ring goes when the pool says no message uses it any more ('drop').
  const rings = new Map<number, KeyRing>();
  const signers = new Map<number, { signer: MessageSigner; version: number }>();
  const signerOf = (id: number, version: number) => {
    let s = signers.get(id);
    if (!s) {
      const ring = rings.get(version);
      if (!ring) throw new Error(`no keys of version ${version}`);
      s = { signer: new MessageSigner(ring), version };
      signers.set(id, s);
    }
    return s.signer;
  };
  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'ring': {
        const config = { ...msg.config, domains: new Map([...msg.config.domains].map(([d, list]) => [d, list.map((s) => ({ ...s, privateKey: Buffer.from(s.privateKey) }))])) };
        try {
          rings.set(msg.version, new KeyRing(config));
        } catch {
          // Checked at config load already; should it fail here, messages of this version
          // are told 'no keys' and go unsigned, rather than the worker dying and respawning.
        }
        return;
      }
      case 'drop':
        rings.delete(msg.version);
        return;
      case 'bytes':
        write(msg.id, msg.version, msg.bytes);
        return;
      case 'finish': {
        if (msg.bytes) write(msg.id, msg.version, msg.bytes);
        let signer: MessageSigner;
        try {
          signer = signerOf(msg.id, msg.version);
        } catch (err) {
          port.postMessage({ id: msg.id, outcome: { prefix: '', signatures: [], problems: [(err as Error).message] } } satisfies FromWorker);
          return;
        }
        signers.delete(msg.id);
        signer.finish(msg.sender, msg.now).then(
          (outcome) => port.postMessage({ id: msg.id, outcome } satisfies FromWorker),
          (err: Error) => port.postMessage({ id: msg.id, outcome: { prefix: '', signatures: [], problems: [err.message] } } satisfies FromWorker),
        );
        return;
      }
      case 'abort':
        signers.delete(msg.id);
        return;
    }
  });
  function write(id: number, version: number, bytes: Uint8Array): void {
    try {
      signerOf(id, version).write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (err) {
      // Told at finish: the message goes unsigned.
      signers.set(id, { signer: failedSigner((err as Error).message), version });
    }
  }
}

/** A signer that only says why it cannot sign. */
function failedSigner(problem: string): MessageSigner {
  return {
    write: () => undefined,
    finish: async () => ({ prefix: '', signatures: [], problems: [`signing failed: ${problem}`] }),
  } as unknown as MessageSigner;
}

if (parentPort) serve(parentPort);
