import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Where a command reads its config directory from, and why there (for error lines). */
export interface ConfigLocation {
  readonly dir: string;
  /** `--config`, `TERN_CONFIG`, `./config` or `installation`. */
  readonly from: string;
  /** The directory was named by the operator (flag or environment), not found by default. */
  readonly explicit: boolean;
}

/** A config directory that is not there: exit 78 (EX_CONFIG) with one line naming it. */
export class MissingConfigDir extends Error {
  constructor(readonly location: ConfigLocation, tried: readonly string[]) {
    super(
      location.explicit
        ? `config directory ${location.dir} (from ${location.from}) does not exist`
        : `no config directory: neither ${tried.join(' nor ')} exists; give --config DIR or set TERN_CONFIG`,
    );
  }
}

/** The directory Tern is installed in: the one above bin/tern (dist/src/cli/ → three up). */
export const INSTALL_DIR = resolve(import.meta.dirname, '../../..');

const isDir = (path: string) => existsSync(path) && statSync(path).isDirectory();

/**
 * The config directory: `--config`, else `TERN_CONFIG`, else `./config`, else the
 * installation's `config/` (the systemd unit's WorkingDirectory), so that an operator's
 * `tern queue ls` from any directory finds the daemon the unit runs.
 */
export function locateConfig(flag: string | undefined, env: NodeJS.ProcessEnv, cwd = process.cwd()): ConfigLocation {
  if (flag !== undefined) return { dir: flag, from: '--config', explicit: true };
  if (env.TERN_CONFIG) return { dir: env.TERN_CONFIG, from: 'TERN_CONFIG', explicit: true };
  const installed = join(INSTALL_DIR, 'config');
  if (!isDir(join(cwd, 'config')) && resolve(cwd) !== INSTALL_DIR && isDir(installed)) return { dir: installed, from: 'installation', explicit: false };
  return { dir: './config', from: './config', explicit: false };
}

/** The location, checked: throws MissingConfigDir when it is not a directory. */
export function requireConfig(location: ConfigLocation): string {
  if (isDir(location.dir)) return location.dir;
  throw new MissingConfigDir(location, location.explicit ? [location.dir] : ['./config', join(INSTALL_DIR, 'config')]);
}

/**
 * The queue directory for `tern start`: `--queue`, else `TERN_QUEUE`, else `queue/` beside
 * a config directory found by default (`./queue`, or the installation's), else `./queue`.
 */
export function locateQueue(flag: string | undefined, env: NodeJS.ProcessEnv, config: ConfigLocation): string {
  if (flag !== undefined) return flag;
  if (env.TERN_QUEUE) return env.TERN_QUEUE;
  return config.from === 'installation' ? join(dirname(config.dir), 'queue') : './queue';
}
