import { ConfigError } from '../core/index.js';
import { collectConfig, foreignFiles, loadConfig } from '../config/index.js';
import type { ConfigWarning, TernConfig } from '../config/index.js';
import { loadPlugins } from '../hooks/index.js';
import type { LoadedPlugin } from '../hooks/index.js';

/** Everything `tern start` reads from the config directory before it runs. */
export interface Startup {
  readonly config: TernConfig;
  readonly plugins: readonly LoadedPlugin[];
  /** Files Tern ignores that a Haraka operator may expect to work; logged, never fatal. */
  readonly warnings: readonly ConfigWarning[];
}

/**
 * Reads the config directory as `tern start` does: every config file (the listener's key
 * and certificate, tls.ini's CA included), then the plugins (imported and initialised).
 * Throws the first ConfigError, which the CLI turns into exit 78.
 */
export async function loadStartup(dir: string): Promise<Startup> {
  const { config, plugins, problems, warnings } = await read(dir, false);
  if (problems.length) throw problems[0];
  return { config, plugins, warnings };
}

/**
 * `tern config check`: the same reading as loadStartup, through the same code, but every
 * problem is collected instead of stopping at the first, so that a config passes the check
 * exactly when `tern start` would accept it.
 */
export async function checkStartup(dir: string): Promise<{ problems: ConfigError[]; warnings: ConfigWarning[] }> {
  const { problems, warnings } = await read(dir, true);
  return { problems, warnings };
}

async function read(dir: string, collect: boolean): Promise<Startup & { problems: ConfigError[]; warnings: ConfigWarning[] }> {
  const { config, problems } = collect ? collectConfig(dir) : { config: loadConfig(dir), problems: [] as ConfigError[] };
  let plugins: LoadedPlugin[] = [];
  try {
    // Plugins load before anything runs, so a broken plugin stops the start like a broken config.
    plugins = await loadPlugins(dir);
  } catch (err) {
    if (!collect || !(err instanceof ConfigError)) throw err;
    problems.push(err);
  }
  return { config, plugins, problems, warnings: foreignFiles(dir) };
}
