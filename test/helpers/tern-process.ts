import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempDir } from './temp-dir.js';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Interface } from 'node:readline';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');

export type LogRecord = Record<string, unknown> & { msg?: string; type?: string };

/** Matches the disposition record of one type for one recipient, e.g. is('Delivery', 'bob@good.test'). */
export const is = (type: string, rcpt: string) => (r: LogRecord) => r.type === type && r.recipient === rcpt;

/** A config directory in a fresh temp folder, from a map of file name → contents. */
export function writeConfig(files: Record<string, string | Buffer>, dir = tempDir('tern-config-')): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

export function tempQueue(): string {
  return tempDir('tern-queue-');
}

/**
 * The real daemon as a child process (`bin/tern start`), its JSON log lines parsed as
 * they arrive so that tests can wait for disposition records.
 */
export class TernProcess {
  readonly records: LogRecord[] = [];
  readonly stderr: string[] = [];
  child!: ChildProcess;
  port = 0;
  /** The admin API's base URL, when it listens. */
  api = '';
  private waiters: { pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  private lines?: Interface;
  exited!: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly configDir: string,
    readonly queueDir: string,
  ) {}

  async start(): Promise<this> {
    this.child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tern'), 'start', '--config', this.configDir, '--queue', this.queueDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      // A daemon that dies on its own is a finding: show why in the test output.
      if (code !== 0 && signal === null) process.stderr.write(`tern exited with ${code}:\n${this.stderr.join('\n')}\n`);
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => {
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        rec = { msg: 'unparsable', line };
      }
      this.records.push(rec);
      this.waiters = this.waiters.filter((w) => (w.pred(rec) ? (w.resolve(rec), false) : true));
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    const listening = await Promise.race([
      this.waitFor((r) => r.msg === 'tern listening', 15000),
      this.exited.then(({ code }) => {
        throw new Error(`tern exited with ${code} before listening: ${this.stderr.join('\n')}`);
      }),
    ]);
    this.port = (listening.addresses as { port: number }[])[0].port;
    const admin = listening.admin as { host: string; port: number } | null;
    if (admin) this.api = `http://${admin.host}:${admin.port}`;
    return this;
  }

  /**
   * From now on log lines are read and dropped, not parsed: a benchmark's harness shares
   * the CPU with the daemon and must not spend it per message on the daemon's behalf.
   */
  discardLogs(): void {
    this.lines?.close();
    this.child.stdout!.on('data', () => undefined).resume();
  }

  /** Resolves with the first record (already logged or still to come) that matches. */
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs = 15000): Promise<LogRecord> {
    const found = this.records.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching log record within ${timeoutMs} ms; last records:\n${this.records.slice(-8).map((r) => JSON.stringify(r)).join('\n')}`));
      }, timeoutMs);
      const done = (r: LogRecord) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** Waits until `count` records match. */
  async waitForCount(pred: (r: LogRecord) => boolean, count: number, timeoutMs = 15000): Promise<LogRecord[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.records.filter(pred);
      if (hits.length >= count) return hits;
      if (Date.now() > deadline) throw new Error(`only ${hits.length}/${count} matching records within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  dispositions(type: string): LogRecord[] {
    return this.records.filter((r) => r.type === type);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
