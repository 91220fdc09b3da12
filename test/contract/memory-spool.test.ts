import { MemorySpool } from '../../src/spool/index.js';
import { spoolContract } from './spool-contract.js';

/** The same suite as DiskSpool's: a key names one queue, and each make() after the first is a restart over it. */
function memoryQueues() {
  const latest = new Map<string, MemorySpool>();
  let count = 0;
  const make = (key: string) => {
    const spool = latest.get(key)?.afterRestart() ?? new MemorySpool();
    latest.set(key, spool);
    return spool;
  };
  return { make, fresh: () => `queue-${++count}` };
}

const { make, fresh } = memoryQueues();
spoolContract('MemorySpool', make, fresh);
