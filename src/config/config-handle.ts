import { configChanges } from './changes.js';
import type { FileChange } from './changes.js';
import type { TernConfig } from './load.js';

/** Told about each reload that changed something: the new config, the old one, and what differs file by file. */
export type ConfigListener = (next: TernConfig, prev: TernConfig, changes: readonly FileChange[]) => void;

/**
 * The config of the moment, for the parts that read it. A part reads `current` where it
 * uses a setting (so a reload reaches it without being told), and subscribes only for
 * what it derives from the config once (a TLS context, a resolver, a retry schedule).
 */
export interface ConfigHandle {
  readonly current: TernConfig;
  /** Calls `listener` after every reload that changed something; returns the unsubscribe. */
  subscribe(listener: ConfigListener): () => void;
}

/** A part's config: a handle that follows reloads, or one fixed config (tests, tools). */
export type ConfigInput = TernConfig | ConfigHandle;

/** The one writable handle: the daemon's reloader swaps the config through it. */
export class ConfigSource implements ConfigHandle {
  private readonly listeners = new Set<ConfigListener>();

  constructor(private config: TernConfig) {}

  get current(): TernConfig {
    return this.config;
  }

  subscribe(listener: ConfigListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Swaps in a newly loaded config and tells the subscribers, when anything changed.
   * A subscriber that throws does not keep the others from being told; its error is
   * returned for the caller to log.
   */
  replace(next: TernConfig): { changes: FileChange[]; failures: unknown[] } {
    const prev = this.config;
    const changes = configChanges(prev, next);
    this.config = next;
    const failures: unknown[] = [];
    if (changes.length === 0) return { changes, failures };
    for (const listener of [...this.listeners]) {
      try {
        listener(next, prev, changes);
      } catch (err) {
        failures.push(err);
      }
    }
    return { changes, failures };
  }
}

/** A handle for a part given either a handle or a fixed config. */
export function configHandle(input: ConfigInput): ConfigHandle {
  if ('subscribe' in input && typeof input.subscribe === 'function') return input;
  const fixed = input as TernConfig;
  return { current: fixed, subscribe: () => () => undefined };
}

/** True when a reload changed a setting of `file` (only keys for which `key` holds, when given). */
export function changed(changes: readonly FileChange[], file: string, key: (name: string) => boolean = () => true): boolean {
  return changes.some((c) => c.file === file && c.keys.some((k) => key(k.key)));
}
