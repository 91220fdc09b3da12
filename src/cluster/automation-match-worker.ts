import { workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

/** A rule as the worker needs it: its name and its pattern as written. */
export interface RuleSource {
  readonly name: string;
  readonly source: string;
}

/** What the daemon sends a match worker. */
export type ToMatchWorker =
  /** The rule set of the moment (each config load that changed it): replaces the one held. */
  | { readonly type: 'rules'; readonly rules: readonly RuleSource[] }
  /** Match one reply line against these rules, in this order, answering each. */
  | { readonly type: 'match'; readonly id: number; readonly line: string; readonly names: readonly string[] };

/** What a match worker answers: `ready` once listening, then one answer per rule of a `match`, in order. */
export type FromMatchWorker = { readonly type: 'ready' } | { readonly type: 'answer'; readonly id: number; readonly index: number; readonly matched: boolean };

/**
 * A match worker: automation.ini's patterns run here, off the event loop, because a
 * backtracking regex on a reply a hostile server chose can take far longer than any static
 * check predicts. Each rule's answer is posted as soon as it is known, so that the daemon,
 * when one rule overruns its bound and this thread is terminated, knows which rule it was
 * and which were answered already.
 */
function serve(port: MessagePort): void {
  let rules = new Map<string, RegExp>();
  port.on('message', (msg: ToMatchWorker) => {
    if (msg.type === 'rules') {
      const next = new Map<string, RegExp>();
      for (const r of msg.rules) {
        try {
          next.set(r.name, new RegExp(r.source, 'i'));
        } catch {
          // Compiled at config load already: a pattern that fails here never matches.
        }
      }
      rules = next;
      return;
    }
    msg.names.forEach((name, index) => {
      let matched = false;
      try {
        matched = rules.get(name)?.test(msg.line) ?? false;
      } catch {
        // A pattern that throws on this line (V8's backtrack stack overflow) does not match it.
      }
      port.postMessage({ type: 'answer', id: msg.id, index, matched } satisfies FromMatchWorker);
    });
  });
  port.postMessage({ type: 'ready' } satisfies FromMatchWorker);
}

const port = (workerData as { port?: MessagePort } | undefined)?.port;
if (port) serve(port);
