import { z } from 'zod';
import type { OverrideRecord } from '../cluster/index.js';
import { RecordListFile } from './record-file.js';

/** Where limit overrides outlive the process; read once at start, written at every change. */
export interface OverrideStore {
  load(): OverrideRecord[];
  save(overrides: readonly OverrideRecord[]): Promise<void>;
}

export const OVERRIDE_FILE = 'overrides.json';

const rate = z.object({ count: z.number().int().positive(), perMs: z.number().int().positive() });
const overrideSchema = z.object({
  destination: z.string().min(1).max(260),
  maxConnections: z.number().int().positive().optional(),
  maxMessageRate: rate.optional(),
  reason: z.string().max(1000),
  since: z.number().int().nonnegative(),
  until: z.number().int().nonnegative(),
  rule: z.string().max(64).optional(),
});

/** The limit overrides in `<queue>/overrides.json`, next to suspensions.json: once `tern domain override` answers, a crash or a restart keeps the override until its time is up. */
export class OverrideFile extends RecordListFile<OverrideRecord> implements OverrideStore {
  constructor(queueDir: string) {
    super(queueDir, OVERRIDE_FILE, 'overrides', overrideSchema, 'an override list');
  }
}
