import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { writeWholeFile } from './durable-fs.js';

/** Where a segment's damaged bytes went and why. */
export interface SegmentDamage {
  readonly file: string;
  readonly error: string;
}

/** A stretch of a segment that held no valid record although it was written whole. */
export interface DamagedBytes {
  readonly offset: number;
  readonly length: number;
  readonly error: string;
}

/** A name not yet taken in corrupt/ (segment numbers are reused once a segment is gone). */
function asideName(corruptDir: string, base: string): string {
  let name = base;
  for (let n = 1; existsSync(join(corruptDir, name)); n++) name = `${base}.${n}`;
  return name;
}

/**
 * Keeps a copy of each damaged stretch of a segment in corrupt/, as `<segment>@<offset>`,
 * synced before the segment may be removed: the copy is then all that is left of it.
 */
export async function copyDamageAside(corruptDir: string, name: string, data: Buffer, damaged: readonly DamagedBytes[]): Promise<SegmentDamage[]> {
  const out: SegmentDamage[] = [];
  for (const d of damaged) {
    const file = asideName(corruptDir, `${name}@${d.offset}`);
    await writeWholeFile(join(corruptDir, file), [data.subarray(d.offset, d.offset + d.length)], 'wx');
    out.push({ file, error: d.error });
  }
  return out;
}

/**
 * Moves a whole segment file (and its done log) to corrupt/: one in which no record reads
 * back is never deleted, whatever it holds, so that the operator sees it and its bytes.
 */
export function moveSegmentAside(corruptDir: string, path: string, name: string, error: string): SegmentDamage {
  const file = asideName(corruptDir, name);
  renameSync(path, join(corruptDir, file));
  if (existsSync(`${path}.done`)) renameSync(`${path}.done`, join(corruptDir, `${file}.done`));
  return { file, error };
}
