import { Writable } from 'node:stream';
import { createLogger } from '../../src/log/index.js';

/** A real pino logger whose records are kept, parsed, for a test to look at. */
export function recordingLogger() {
  const records: Record<string, unknown>[] = [];
  const logger = createLogger({
    destination: new Writable({
      write: (chunk: Buffer, _e, cb) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) records.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    }) as never,
  });
  return { logger, records };
}
