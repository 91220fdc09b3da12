import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { closedError } from '../../../src/core/index.js';
import type { Closable } from '../../../src/core/index.js';
import { createLogger } from '../../../src/log/index.js';
import { Lifecycle } from '../../../src/daemon/lifecycle.js';
import { closeWithin, runShutdownSteps } from '../../../src/daemon/index.js';

/** A real pino logger whose records the test reads back. */
function capture() {
  const records: Record<string, unknown>[] = [];
  const logger = createLogger({
    destination: new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) records.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    }) as never,
  });
  return { logger, records };
}

/** A part whose close never finishes: only destroy() ends it. */
class Hanging implements Closable {
  destroyed = 0;
  private closing?: Promise<void>;
  get closed() {
    return this.closing !== undefined;
  }
  close(): Promise<void> {
    this.closing ??= new Promise(() => undefined);
    return this.closing;
  }
  destroy(): void {
    this.destroyed++;
  }
}

describe('shutdown', () => {
  it('runs every step even when one throws or rejects, and logs each failure with its step and reply', async () => {
    const { logger, records } = capture();
    const ran: string[] = [];
    const { failed } = await runShutdownSteps(
      [
        { step: 'one', run: () => void ran.push('one') },
        { step: 'two', run: () => { throw new Error('boom'); } },
        { step: 'three', run: () => Promise.reject(closedError('queue')) },
        { step: 'four', run: async () => void ran.push('four') },
      ],
      logger,
    );
    await new Promise<void>((r) => logger.flush(() => r()));
    assert.deepEqual(ran, ['one', 'four']);
    assert.deepEqual(failed, ['two', 'three']);
    const logged = records.filter((r) => r.msg === 'shutdown step failed; going on');
    assert.deepEqual(logged.map((r) => r.step), ['two', 'three']);
    assert.deepEqual(logged.map((r) => (r.reply as { code: number }).code), [451, 421]);
    assert.equal((logged[1].err as { code: string }).code, 'TERN_ERR_CLOSED');
  });

  it('resolves stopped when a step fails, and shutdown() twice is one shutdown', async () => {
    const { logger } = capture();
    let finished = 0;
    const lifecycle = new Lifecycle({
      logger,
      handleSignals: false,
      hangup: () => undefined,
      steps: () => [{ step: 'spool', run: () => Promise.reject(new Error('disk gone')) }],
      finish: () => void finished++,
    });
    const first = lifecycle.shutdown();
    assert.equal(lifecycle.shutdown(), first);
    await lifecycle.stopped;
    await first;
    assert.equal(finished, 1, 'the steps after the failing one ran, once');
  });

  it('resolves stopped even when the last step (finish) fails', async () => {
    const { logger, records } = capture();
    const lifecycle = new Lifecycle({ logger, handleSignals: false, hangup: () => undefined, steps: () => [], finish: () => Promise.reject(new Error('flush failed')) });
    void lifecycle.shutdown();
    await lifecycle.stopped;
    await new Promise<void>((r) => logger.flush(() => r()));
    assert.ok(records.some((r) => r.step === 'finish'));
  });

  it('destroys a part whose close() does not finish within the bound', async () => {
    const part = new Hanging();
    assert.equal(await closeWithin(part, 10), false);
    assert.equal(part.destroyed, 1);
  });
});
