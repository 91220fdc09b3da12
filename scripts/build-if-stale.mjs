#!/usr/bin/env node
// `npm start` runs this before the daemon: it compiles with tsc only when a source file is
// newer than the last build this script completed (or there is none), so that starting
// does not pay for a full compile (about 7 s) every time, and never runs stale code.
// `--always` (npm run build) compiles in any case, and stamps the build as well.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '..');
const stamp = join(root, 'dist', '.build-stamp');
// What tsconfig.json compiles, and what decides how.
const inputs = ['src', 'test', 'bench', 'plugins'].map((d) => join(root, d));
const settings = ['tsconfig.json', 'package-lock.json'].map((f) => join(root, f));

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return path.endsWith('.ts') || settings.includes(path) ? st.mtimeMs : 0;
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), 0);
}

const built = existsSync(stamp) ? statSync(stamp).mtimeMs : -1;
const changed = Math.max(...inputs.map(newest), ...settings.map(newest));
if (changed < built && !process.argv.includes('--always')) process.exit(0);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
if (!process.argv.includes('--always')) process.stderr.write('tern: compiling (sources changed since the last build)\n');
const res = spawnSync(process.execPath, [tsc, '-p', root], { stdio: 'inherit' });
if (res.status !== 0) process.exit(res.status ?? 1);
mkdirSync(dirname(stamp), { recursive: true });
writeFileSync(stamp, `${new Date().toISOString()}\n`);
