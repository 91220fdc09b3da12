import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../core/index.js';
import type { LoadedPlugin, TernPlugin } from './types.js';

/**
 * Loads the plugins listed in config/plugins, one a line: a path to an ES module (absolute,
 * or relative to the directory above config/), or a bare name for `plugins/<name>.js` there
 * (or its compiled `dist/plugins/<name>.js`). The module's default export, or the module
 * itself, holds the hook functions.
 */
export async function loadPlugins(configDir: string): Promise<LoadedPlugin[]> {
  const list = join(configDir, 'plugins');
  if (!existsSync(list)) return [];
  const home = dirname(resolve(configDir));
  const plugins: LoadedPlugin[] = [];
  const lines = readFileSync(list, 'utf8').split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const candidates = /[/\\]|\.m?js$/.test(line)
      ? [isAbsolute(line) ? line : join(home, line)]
      : [join(home, 'plugins', `${line}.js`), join(home, 'dist', 'plugins', `${line}.js`)];
    const path = candidates.find((c) => existsSync(c));
    if (!path) throw new ConfigError('plugins', `line ${i + 1}`, line, `no module at ${candidates.join(' or ')}`);
    let mod: { default?: TernPlugin } & TernPlugin;
    try {
      mod = (await import(pathToFileURL(path).href)) as typeof mod;
    } catch (err) {
      throw new ConfigError('plugins', `line ${i + 1}`, line, `cannot load ${path}: ${(err as Error).message}`);
    }
    const plugin = mod.default ?? mod;
    try {
      await plugin.init?.({ configDir: resolve(configDir) });
    } catch (err) {
      throw new ConfigError('plugins', `line ${i + 1}`, line, `init failed: ${(err as Error).message}`);
    }
    plugins.push({ name: plugin.name ?? line, plugin });
  }
  return plugins;
}
