import { existsSync, statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { localError } from '../core/index.js';
import { loadConfig, REWRITE_FILE } from '../config/index.js';
import type { ConfigSource, FileChange } from '../config/index.js';
import { DeliveryStatusRewriter } from '../rewrite/index.js';
import type { Logger } from '../log/index.js';

/**
 * Settings bound once, at start: a reload cannot apply them (the sockets are open), so a
 * change is reported as needing a restart instead of being claimed as applied.
 */
const AT_START: Readonly<Record<string, readonly string[]>> = {
  'smtp.ini': ['listen', 'nodes'],
  'http.ini': ['listen', 'disabled'],
  // The Redis connection and this node's name in it are made once (issue #17).
  'redis.ini': ['*'],
};

const needsRestart = (file: string, key: string) => (AT_START[file]?.includes(key) || AT_START[file]?.includes('*')) ?? false;

export interface ReloaderOptions {
  readonly configDir: string;
  readonly logger: Logger;
  /** Told of every reload attempt (metrics). */
  readonly onReload?: (ok: boolean) => void;
}

/**
 * Reloads the config directory on SIGHUP, on a file change, and when the rewrite rules'
 * file changed (checked every rewrite_ttl, where file watching is unreliable). A reload
 * swaps the whole config through the ConfigSource, whose subscribers apply it, and says
 * which files and keys changed, which need a restart, and which files went.
 */
export class ConfigReloader {
  private lastError?: string;
  private watcher?: FSWatcher;
  private debounce?: NodeJS.Timeout;
  private rewriteTimer?: NodeJS.Timeout;
  private rewriteSeen = 0;
  private closed = false;

  constructor(
    private readonly source: ConfigSource,
    private readonly options: ReloaderOptions,
  ) {}

  /** Starts watching the directory and checking the rewrite rules' file. */
  start(): void {
    const { configDir, logger } = this.options;
    this.rewriteSeen = this.rewriteStamp();
    this.armRewriteCheck();
    try {
      this.watcher = watch(configDir, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.reload('file changed'), 200);
      });
      this.watcher.on('error', (err) => logger.warn({ error: err.message }, 'config watch failed; SIGHUP still reloads'));
    } catch (err) {
      logger.warn({ error: (err as Error).message }, 'config watch unavailable; SIGHUP still reloads');
    }
  }

  /** Stops watching and checking. Idempotent. */
  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    clearTimeout(this.rewriteTimer);
    this.watcher?.close();
  }

  reload(why: string): void {
    if (this.closed) return;
    const { configDir, logger } = this.options;
    let changes: FileChange[];
    let failed = 0;
    try {
      const next = loadConfig(configDir);
      const swapped = this.source.replace(next);
      changes = swapped.changes;
      failed = swapped.failures.length;
      for (const err of swapped.failures) {
        logger.error({ why, err: { message: (err as Error).message }, reply: localError() }, 'config reload: a part could not apply the new config');
      }
    } catch (err) {
      // A broken edit never takes the running daemon down: the previous config stays in force.
      // The same problem is reported once, not at every periodic check.
      this.options.onReload?.(false);
      const error = (err as Error).message;
      const level = error === this.lastError && why !== 'SIGHUP' ? 'debug' : 'error';
      this.lastError = error;
      logger[level]({ why, error, code: (err as { code?: string }).code }, 'config reload failed; keeping the previous config');
      return;
    }
    // A part that could not take the new config makes it a failed reload in the metrics too.
    this.options.onReload?.(failed === 0);
    this.lastError = undefined;
    this.report(why, changes);
  }

  private report(why: string, changes: readonly FileChange[]): void {
    const { logger } = this.options;
    // A file that went takes its settings with it: every key is back to its default, which
    // nobody meant to happen quietly (a deleted outbound.ini turns delivery back on).
    for (const c of changes.filter((c) => c.removed)) {
      logger.warn({ why, file: c.file, reverted: c.keys }, 'config file removed; its settings are back to their defaults');
    }
    const restart = changes.flatMap((c) => c.keys.filter((k) => needsRestart(c.file, k.key)).map((k) => ({ file: c.file, ...k })));
    for (const r of restart) {
      logger.warn({ why, file: r.file, key: r.key, running: r.was, configured: r.now }, 'config change needs a restart; the running value stays');
    }
    const applied = changes
      .filter((c) => !c.removed)
      .map((c) => ({ file: c.file, added: c.added || undefined, keys: c.keys.filter((k) => !needsRestart(c.file, k.key)).map((k) => k.key) }))
      .filter((c) => c.keys.length > 0 || c.added);
    logger.info(
      {
        why,
        files: changes.map((c) => c.file),
        changed: applied,
        restart_needed: restart.length ? restart.map((r) => ({ file: r.file, key: r.key })) : undefined,
        rewrite_rules: new DeliveryStatusRewriter(this.source.current.rewrite).size,
      },
      'config reloaded',
    );
  }

  private rewriteStamp(): number {
    const path = join(this.options.configDir, REWRITE_FILE);
    return existsSync(path) ? statSync(path).mtimeMs : 0;
  }

  private armRewriteCheck(): void {
    this.rewriteTimer = setTimeout(() => {
      const stamp = this.rewriteStamp();
      if (stamp !== this.rewriteSeen) {
        this.rewriteSeen = stamp;
        this.reload('rewrite_ttl');
      }
      if (!this.closed) this.armRewriteCheck();
    }, this.source.current.outbound.rewrite_ttl * 1000).unref();
  }
}
