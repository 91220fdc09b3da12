import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { OverrideRecord } from '../cluster/index.js';
import { fsyncDir, writeFileSynced } from '../spool/index.js';

/** Where limit overrides outlive the process; read once at start, written at every change. */
export interface OverrideStore {
  load(): OverrideRecord[];
  save(overrides: readonly OverrideRecord[]): Promise<void>;
}

export const OVERRIDE_FILE = 'overrides.json';

const rate = z.object({ count: z.number().int().positive(), perMs: z.number().int().positive() });
const fileSchema = z.object({
  overrides: z.array(
    z.object({
      destination: z.string().min(1).max(260),
      maxConnections: z.number().int().positive().optional(),
      maxMessageRate: rate.optional(),
      reason: z.string().max(1000),
      since: z.number().int().nonnegative(),
      until: z.number().int().nonnegative(),
      rule: z.string().max(64).optional(),
    }),
  ),
});

/**
 * The limit overrides in `<queue>/overrides.json`, next to suspensions.json and written as
 * it is (temp → fsync → rename → fsync of the directory): once `tern domain override`
 * answers, a crash or a restart keeps the override until its time is up.
 */
export class OverrideFile implements OverrideStore {
  private readonly path: string;

  constructor(private readonly queueDir: string) {
    this.path = join(queueDir, OVERRIDE_FILE);
  }

  /** The overrides of the last run; none when the file does not exist. A damaged file stops the start. */
  load(): OverrideRecord[] {
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
    if (!parsed.success) throw new Error(`${this.path}: not an override list (${parsed.error.issues[0]?.message}); fix or remove it`);
    return parsed.data.overrides;
  }

  async save(overrides: readonly OverrideRecord[]): Promise<void> {
    const body = JSON.stringify({ overrides }, null, 2) + '\n';
    await writeFileSynced(`${this.path}.tmp`, this.path, body);
    await fsyncDir(this.queueDir);
  }
}
