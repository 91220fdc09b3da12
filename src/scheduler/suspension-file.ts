import { z } from 'zod';
import type { Suspension } from './destinations.js';
import { RecordListFile } from './record-file.js';

/** Where suspensions outlive the process; the scheduler reads it once and writes every change. */
export interface SuspensionStore {
  load(): Suspension[];
  save(suspensions: readonly Suspension[]): Promise<void>;
}

export const SUSPENSION_FILE = 'suspensions.json';

const suspensionSchema = z.object({
  domain: z.string().min(1).max(253),
  reason: z.string().max(1000),
  since: z.number().int().nonnegative(),
  until: z.number().int().nonnegative().optional(),
  rule: z.string().max(64).optional(),
});

/** The operator's suspensions in `<queue>/suspensions.json`: after `tern domain suspend` answers, a crash or a restart keeps the suspension. */
export class SuspensionFile extends RecordListFile<Suspension> implements SuspensionStore {
  constructor(queueDir: string) {
    super(queueDir, SUSPENSION_FILE, 'suspensions', suspensionSchema, 'a suspension list');
  }
}
