import { closeSync, openSync, readFileSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, TernError } from '../core/index.js';

export const LOCK_FILE = 'tern.lock';

/** The kernel's start time of a process (/proc/<pid>/stat field 22): a pid reused later has another. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number, started: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // Where /proc tells, a process of that pid started at another time is not the holder
  // (a container's pid 1 of an earlier run, a pid reused).
  const now = startTime(pid);
  return now === undefined || started === undefined || now === started;
}

/**
 * One process at a time per queue directory. Two would attempt the same entries and both
 * write their state: mail sent twice, states overwritten. This happens when a supervisor
 * restarts a killed `nodes=N` primary while its old workers still drain, or when an
 * operator starts a second daemon on the same queue. The lock is a file naming the
 * holder's pid and start time; one whose holder is gone (SIGKILL, a crash, another boot
 * or container) is taken over.
 */
export class QueueLock {
  private held = false;

  constructor(private readonly dir: string) {}

  get path(): string {
    return join(this.dir, LOCK_FILE);
  }

  /** Takes the lock, or throws `TERN_ERR_QUEUE_IN_USE` (exit 75: try again later) naming the holder. */
  take(): void {
    const mine = `${process.pid} ${startTime(process.pid) ?? '-'}\n`;
    for (let tries = 0; tries < 3; tries++) {
      try {
        const fd = openSync(this.path, 'wx', 0o640);
        try {
          writeSync(fd, mine);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.held = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: string;
      try {
        holder = readFileSync(this.path, 'utf8');
      } catch {
        continue; // released meanwhile
      }
      const [pidText, started] = holder.trim().split(' ');
      const pid = Number(pidText);
      // This process again (a spool reopened in-process, tests): it is ours already.
      if (pid === process.pid) {
        this.held = true;
        return;
      }
      if (Number.isSafeInteger(pid) && pid > 0 && alive(pid, started === '-' ? undefined : started)) {
        const error = new TernError(ErrorCode.QUEUE_IN_USE, {
          code: 451,
          enhanced: '4.3.0',
          text: `queue directory ${this.dir} is in use by process ${pid}; one process per queue (try again once it has stopped)`,
        });
        throw Object.assign(error, { exitCode: 75 });
      }
      try {
        unlinkSync(this.path);
      } catch {
        // another process took it over first: the next round reads its lock
      }
    }
    throw new Error(`could not take ${this.path}`);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      const [pid] = readFileSync(this.path, 'utf8').trim().split(' ');
      if (Number(pid) === process.pid) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}
