import assert from 'node:assert/strict';

/**
 * The test files that need root, relative to the repository: they start a real Postfix
 * (its master process runs as root and hands work to the `postfix` user). Everything else
 * listens on ports the kernel picks and runs as any user; `npm run test:user` runs all
 * but these.
 */
export const ROOT_ONLY: readonly string[] = ['test/e2e/postfix.test.ts', 'test/integration/dsn-postfix-parity.test.ts'];

/**
 * Fails (never skips) a root-only test run by another user, saying what to run instead:
 * a skipped interop test would read as a pass.
 */
export function requireRoot(why: string): void {
  assert.equal(process.getuid?.(), 0, `${why} needs root; as another user run \`npm run test:user\`, which leaves out ${ROOT_ONLY.join(', ')}`);
}
