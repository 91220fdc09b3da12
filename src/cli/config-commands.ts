import { defaultConfig, foreignFiles, loadConfig, settingsByFile, shownValue, warningText } from '../config/index.js';
import type { ConfigWarning } from '../config/index.js';
import { checkStartup } from '../daemon/index.js';
import { out } from './commands.js';
import type { CliOptions } from './commands.js';
import { requireConfig } from './locations.js';

/** Warnings go to stderr, as postconf's do, so that stdout stays the answer (and --json stays JSON). */
function warn(warnings: readonly ConfigWarning[]): void {
  for (const w of warnings) process.stderr.write(`tern: warning: ${warningText(w)}\n`);
}

/**
 * `tern config check`: every problem, one line each; exit 78 (EX_CONFIG, as `tern start`)
 * when there is any. It reads what `tern start` reads, through the same code (config
 * files, the listener's key and certificate, plugins), so the two never disagree.
 */
export async function configCheck(o: CliOptions): Promise<number> {
  const dir = requireConfig(o.config);
  const { problems, warnings } = await checkStartup(dir);
  warn(warnings);
  if (o.json) out(JSON.stringify(problems.map((p) => ({ file: p.file, key: p.key, value: p.value, problem: p.problem }))) + '\n');
  else out(problems.length ? problems.map((p) => `${p.message}\n`).join('') : `config ${dir}: ok\n`);
  return problems.length ? 78 : 0;
}

const text = (value: unknown): string =>
  value === undefined || value === null ? '' : Array.isArray(value) ? value.map(text).join(', ') : typeof value === 'object' ? JSON.stringify(value) : String(value);

/**
 * `tern config show [-n]`: the effective configuration, defaults included, one
 * `file: key = value` line each (as `postconf`); `-n` only what differs from the built-in
 * defaults. Sizes are in bytes and durations in seconds, as Tern holds them. A broken
 * config stops it with the first problem and exit 78, as `tern start`.
 */
export function configShow(o: CliOptions): number {
  const dir = requireConfig(o.config);
  const settings = settingsByFile(loadConfig(dir));
  const defaults = settingsByFile(defaultConfig());
  warn(foreignFiles(dir));
  const shown: Record<string, Record<string, unknown>> = {};
  for (const [file, keys] of Object.entries(settings)) {
    for (const [key, value] of Object.entries(keys)) {
      if (o.nonDefault && JSON.stringify(value) === JSON.stringify(defaults[file]?.[key])) continue;
      (shown[file] ??= {})[key] = shownValue(key, value);
    }
  }
  if (o.json) out(JSON.stringify(shown, null, 2) + '\n');
  else out(Object.entries(shown).flatMap(([file, keys]) => Object.entries(keys).map(([key, value]) => `${file}: ${key} = ${text(value)}\n`)).join(''));
  return 0;
}
