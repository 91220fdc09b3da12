import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileSync, readFully, writeFully } from './durable-fs.js';
import type { DirSync } from './durable-fs.js';

export const segmentName = (no: number) => no.toString(16).padStart(8, '0');
export const SEGMENT_FILE = /^([0-9a-f]{8})$/;
export const MOVING_MARKER = /^([0-9a-f]{8})\.moving$/;

/** One segment file of `seg/` and its done log: what is in it, what of it is still queued. */
export class Segment {
  readonly path: string;
  readonly donePath: string;
  /** Messages of this segment still queued. */
  readonly live = new Set<string>();
  /** Records written to it (live or not). */
  records = 0;
  /** Records written but not yet durable (their fdatasync is running): not live yet, not gone. */
  pending = 0;
  /** When it stopped taking appends. */
  sealedAt?: number;
  /** While the segment's last live messages are copied out and it is removed. */
  retiring?: Promise<void>;
  /** Group commit of appends; started after the event loop's turn so that its appends share it. */
  readonly dataSync: FileSync;
  private doneFd?: number;
  private doneSync?: FileSync;
  private doneReady?: Promise<void>;

  constructor(
    readonly no: number,
    dir: string,
    readonly fd: number,
    public size: number,
  ) {
    this.path = join(dir, segmentName(no));
    this.donePath = `${this.path}.done`;
    this.dataSync = new FileSync(fd, true);
  }

  /** `length` bytes from `offset` (a body or a trailer), in one read. */
  read(offset: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    readFully(this.fd, buf, offset, `segment ${segmentName(this.no)}`);
    return buf;
  }

  /**
   * Lists messages in the done log (created on first use, its name made durable through
   * `dirSync`). Written, not synced: see syncDone().
   */
  async appendDone(messageIds: readonly string[], dirSync: DirSync): Promise<void> {
    this.doneReady ??= (async () => {
      this.doneFd = openSync(this.donePath, 'a', 0o640);
      this.doneSync = new FileSync(this.doneFd);
      await dirSync.sync();
    })();
    this.doneReady.catch(() => (this.doneReady = undefined));
    await this.doneReady;
    writeFully(this.doneFd!, Buffer.from(messageIds.map((id) => `${id}\n`).join('')));
  }

  syncDone(): Promise<void> {
    return this.doneSync ? this.doneSync.sync() : Promise.resolve();
  }

  close(): void {
    closeSync(this.fd);
    if (this.doneFd !== undefined) closeSync(this.doneFd);
  }
}

/** The message ids a done log lists (none when it does not exist). */
export function readDoneLog(path: string): string[] {
  try {
    return readFileSync(path, 'latin1').split('\n').filter(Boolean);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
