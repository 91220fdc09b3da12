/**
 * `npm run test:user`: the suite for a contributor who is not root. Every test file runs
 * but those in ROOT_ONLY, which are named on the way in and on the way out, so that
 * nobody takes a green run here for the whole suite. `npm test` (CI, as root) runs them all;
 * run by anyone else, the files in ROOT_ONLY fail at once saying why (helpers/root.ts),
 * never skip.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT_ONLY } from './helpers/root.js';
import { REPO_ROOT } from './helpers/tern-process.js';

const DIST_TEST = join(REPO_ROOT, 'dist/test');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : []));
}

/** test/e2e/postfix.test.ts for dist/test/e2e/postfix.test.js. */
const sourceOf = (file: string) => join('test', relative(DIST_TEST, file)).replace(/\.js$/, '.ts');

const all = testFiles(DIST_TEST).sort();
const left = all.filter((f) => ROOT_ONLY.includes(sourceOf(f)));
const run = all.filter((f) => !left.includes(f));
const missing = ROOT_ONLY.filter((f) => !left.some((l) => sourceOf(l) === f));
if (missing.length > 0) throw new Error(`ROOT_ONLY names files that do not exist: ${missing.join(', ')}`);

const notice = `test:user runs ${run.length} of ${all.length} test files; left out because they need root (${left.length}): ${left.map(sourceOf).join(', ')}. Run \`npm test\` as root for the whole suite.\n`;
process.stdout.write(notice);
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...run], { stdio: 'inherit' });
child.on('exit', (code, signal) => {
  process.stdout.write(notice);
  process.exitCode = code ?? (signal ? 1 : 0);
});
