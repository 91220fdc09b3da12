import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fsyncDir, writeFileSynced } from '../spool/index.js';

/**
 * A list of the operator's records (suspensions, overrides) in one JSON file of the queue
 * directory, `{ "<list>": [ … ] }`, written as the spool writes its files (temp → fsync →
 * rename → fsync of the directory): once the command answers, a crash or a restart keeps
 * the change. Read once at start; a damaged file stops the start, naming itself.
 */
export class RecordListFile<T> {
  private readonly path: string;
  private readonly schema: z.ZodType<Record<string, T[]>, z.ZodTypeDef, unknown>;

  constructor(
    private readonly queueDir: string,
    fileName: string,
    private readonly list: string,
    item: z.ZodType<T, z.ZodTypeDef, unknown>,
    /** What the file holds, for the message that says it is damaged ("a suspension list"). */
    private readonly what: string,
  ) {
    this.path = join(queueDir, fileName);
    this.schema = z.object({ [list]: z.array(item) }) as unknown as z.ZodType<Record<string, T[]>, z.ZodTypeDef, unknown>;
  }

  /** The records of the last run; none when the file does not exist. */
  load(): T[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let parsed: z.SafeParseReturnType<unknown, Record<string, T[]>>;
    try {
      parsed = this.schema.safeParse(JSON.parse(text));
    } catch (err) {
      throw new Error(`${this.path}: not JSON (${(err as Error).message}); fix or remove it`);
    }
    if (!parsed.success) throw new Error(`${this.path}: not ${this.what} (${parsed.error.issues[0]?.message}); fix or remove it`);
    return parsed.data[this.list];
  }

  async save(records: readonly T[]): Promise<void> {
    const body = JSON.stringify({ [this.list]: records }, null, 2) + '\n';
    await writeFileSynced(`${this.path}.tmp`, this.path, body);
    await fsyncDir(this.queueDir);
  }
}
