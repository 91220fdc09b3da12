import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DestinationGate } from '../../../src/scheduler/destinations.js';
import type { BackoffWatcher } from '../../../src/scheduler/destinations.js';

class FakeClock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
}

/** A watcher that records what the gate tells it and answers mayProbe as told. */
class Watcher implements BackoffWatcher {
  readonly calls: string[] = [];
  allow = true;
  wentDown(domain: string, backoffMs: number): void {
    this.calls.push(`down ${domain} ${backoffMs}`);
  }
  cameUp(domain: string): void {
    this.calls.push(`up ${domain}`);
  }
  cleared(domain: string): void {
    this.calls.push(`cleared ${domain}`);
  }
  forgotten(domain: string): void {
    this.calls.push(`forgotten ${domain}`);
  }
  probeEnded(domain: string): void {
    this.calls.push(`ended ${domain}`);
  }
  mayProbe(domain: string): boolean {
    this.calls.push(`may ${domain}`);
    return this.allow;
  }
}

function setup() {
  const clock = new FakeClock();
  const gate = new DestinationGate(clock, () => 5, { minMs: 1000, maxMs: 4000 });
  const watcher = new Watcher();
  gate.watch(watcher);
  return { clock, gate, watcher };
}

describe('DestinationGate and its BackoffWatcher (shared destination health)', () => {
  it('a healthy destination never reaches the watcher; only transitions do', () => {
    const { gate, watcher } = setup();
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(gate.admit('ok.test', `e${i}`), { go: true });
      gate.finished('ok.test', false);
    }
    assert.deepEqual(watcher.calls, []);
    gate.admit('ok.test', 'x');
    gate.finished('ok.test', true, { code: 421, text: 'no' });
    assert.deepEqual(watcher.calls, ['down ok.test 1000']);
  });

  it('an adopted backoff parks entries without an attempt, and nothing goes before the watcher allows the probe', () => {
    const { clock, gate, watcher } = setup();
    gate.adopt('far.test', 2000, 2000);
    assert.deepEqual(gate.admit('far.test', 'a'), { go: false, reason: 'backoff' });
    assert.deepEqual(gate.admit('far.test', 'b'), { go: false, reason: 'backoff' });
    assert.equal(gate.wakeAt(), clock.t + 2000);
    clock.t += 2000;
    watcher.allow = false;
    assert.deepEqual(gate.lapse().released, [], 'another node may be probing: still parked');
    assert.ok(watcher.calls.includes('may far.test'));
    assert.deepEqual(gate.admit('far.test', 'c'), { go: false, reason: 'backoff' });
    assert.equal(gate.reasonOf('c'), 'backoff');
    // This node's turn: the entries go again, the first as the probe.
    watcher.allow = true;
    assert.deepEqual(gate.probeTurn('far.test'), ['a', 'b', 'c']);
    assert.deepEqual(gate.admit('far.test', 'a'), { go: true });
    assert.deepEqual(gate.admit('far.test', 'b'), { go: false, reason: 'backoff' });
    assert.deepEqual(gate.finished('far.test', false), ['b'], 'the probe got a session: everyone goes');
    assert.ok(watcher.calls.includes('up far.test'));
  });

  it('an adopted backoff continues the doubling, and a shorter one does not cut a longer one short', () => {
    const { clock, gate, watcher } = setup();
    gate.adopt('d.test', 3000, 2000);
    gate.adopt('d.test', 500, 1000);
    assert.equal(gate.wakeAt(), clock.t + 3000);
    clock.t += 3000;
    assert.deepEqual(gate.admit('d.test', 'p'), { go: true }, 'the probe');
    gate.finished('d.test', true);
    assert.deepEqual(watcher.calls.filter((c) => c.startsWith('down')), ['down d.test 4000']);
  });

  it('probeTurn releases nothing while the backoff runs or a probe is out', () => {
    const { clock, gate } = setup();
    gate.adopt('d.test', 1000, 1000);
    gate.admit('d.test', 'a');
    assert.deepEqual(gate.probeTurn('d.test'), []);
    clock.t += 1000;
    assert.deepEqual(gate.admit('d.test', 'b'), { go: true }, 'the watcher allows: b probes');
    assert.deepEqual(gate.probeTurn('d.test'), []);
    assert.deepEqual(gate.probeTurn('unknown.test'), []);
  });

  it('a probe that ends without a verdict (no session tried) is neither up nor down: the backoff stays, another entry probes', () => {
    const { clock, gate, watcher } = setup();
    gate.admit('d.test', 'x');
    gate.finished('d.test', true);
    gate.admit('d.test', 'a');
    gate.admit('d.test', 'b');
    clock.t += 1000;
    assert.deepEqual(gate.lapse().released, ['a', 'b']);
    assert.deepEqual(gate.admit('d.test', 'a'), { go: true }, 'a probes');
    assert.deepEqual(gate.admit('d.test', 'b'), { go: false, reason: 'backoff' });
    // a's DNS lookup failed (or a hook delayed it, or shutdown cut it short).
    assert.deepEqual(gate.unsettled('d.test', 'a'), []);
    assert.ok(watcher.calls.includes('ended d.test'));
    assert.ok(!watcher.calls.includes('up d.test'), 'no "up": the other nodes keep their mail parked');
    assert.equal(gate.backedOff().length, 0, 'its time is over, but the backoff is not cleared:');
    assert.deepEqual(gate.lapse().released, ['b'], 'the next entry becomes the probe');
    assert.deepEqual(gate.admit('d.test', 'b'), { go: true });
    assert.deepEqual(gate.admit('d.test', 'c'), { go: false, reason: 'backoff' }, 'still one probe at a time');
    // An entry that was not the probe ending without a verdict changes nothing.
    assert.deepEqual(gate.unsettled('d.test', 'zzz'), []);
    assert.deepEqual(gate.admit('d.test', 'e'), { go: false, reason: 'backoff' });
    assert.deepEqual(gate.finished('d.test', false), ['c', 'e'], 'a session: everyone goes');
  });

  it('another node\'s backoff with nothing of it here is forgotten when it ends; one with parked entries or learnt here is kept', () => {
    const { clock, gate, watcher } = setup();
    for (let i = 0; i < 100; i++) gate.adopt(`far${i}.test`, 1000, 1000);
    gate.adopt('mine.test', 1000, 1000);
    gate.admit('mine.test', 'm');
    gate.admit('own.test', 'o');
    gate.finished('own.test', true);
    assert.equal(gate.backedOff().length, 102);
    clock.t += 1000;
    watcher.allow = false;
    gate.lapse();
    assert.equal(watcher.calls.filter((c) => c.startsWith('forgotten')).length, 100);
    assert.ok(!watcher.calls.includes('forgotten mine.test') && !watcher.calls.includes('forgotten own.test'));
    assert.equal(gate.closedUntil('far0.test'), undefined, 'gone from the gate');
    assert.ok(gate.closedUntil('mine.test') !== undefined, 'its entry still waits for the probe');
    assert.deepEqual(gate.admit('far0.test', 'f'), { go: true }, 'a later entry is not held by a backoff that ended');
  });

  it('a flush tells the watcher the backoff is cleared', () => {
    const { gate, watcher } = setup();
    gate.adopt('d.test', 1000, 1000);
    gate.admit('d.test', 'a');
    assert.deepEqual(gate.resetBackoff('d.test'), ['a']);
    assert.ok(watcher.calls.includes('cleared d.test'));
  });
});
