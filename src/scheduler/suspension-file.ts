import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fsyncDir, writeFileSynced } from '../spool/index.js';
import type { Suspension } from './destinations.js';

/** Where suspensions outlive the process; the scheduler reads it once and writes every change. */
export interface SuspensionStore {
  load(): Suspension[];
  save(suspensions: readonly Suspension[]): Promise<void>;
}

export const SUSPENSION_FILE = 'suspensions.json';

const fileSchema = z.object({
  suspensions: z.array(
    z.object({
      domain: z.string().min(1).max(253),
      reason: z.string().max(1000),
      since: z.number().int().nonnegative(),
      until: z.number().int().nonnegative().optional(),
      rule: z.string().max(64).optional(),
    }),
  ),
});

/**
 * The operator's suspensions in `<queue>/suspensions.json`, written as the spool writes
 * its files (temp → fsync → rename → fsync of the directory): after `tern domain suspend`
 * answers, a crash or a restart keeps the suspension.
 */
export class SuspensionFile implements SuspensionStore {
  private readonly path: string;

  constructor(private readonly queueDir: string) {
    this.path = join(queueDir, SUSPENSION_FILE);
  }

  /** The suspensions of the last run; none when the file does not exist. A damaged file stops the start. */
  load(): Suspension[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let parsed: z.SafeParseReturnType<unknown, z.infer<typeof fileSchema>>;
    try {
      parsed = fileSchema.safeParse(JSON.parse(text));
    } catch (err) {
      throw new Error(`${this.path}: not JSON (${(err as Error).message}); fix or remove it`);
    }
    if (!parsed.success) throw new Error(`${this.path}: not a suspension list (${parsed.error.issues[0]?.message}); fix or remove it`);
    return parsed.data.suspensions;
  }

  async save(suspensions: readonly Suspension[]): Promise<void> {
    const body = JSON.stringify({ suspensions }, null, 2) + '\n';
    await writeFileSynced(`${this.path}.tmp`, this.path, body);
    await fsyncDir(this.queueDir);
  }
}
