import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface BuildInfo {
  readonly version: string;
  readonly nodeVersion: string;
  /** The git commit Tern was built from, or "unknown". */
  readonly commit: string;
}

const COMMIT = /^[0-9a-f]{40}$/;

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/**
 * The commit of a git checkout at `root`: HEAD, a loose ref, or packed-refs, in the
 * directory of a worktree (`.git` a file naming it) or its common directory. Read
 * once at start from a few small files, never by running git, which a container may lack.
 */
export function gitCommit(root: string): string | undefined {
  const dotGit = join(root, '.git');
  if (!existsSync(dotGit)) return undefined;
  let gitDir = dotGit;
  if (statSync(dotGit).isFile()) {
    const pointer = /^gitdir: (.+)$/m.exec(read(dotGit) ?? '')?.[1];
    if (!pointer) return undefined;
    gitDir = resolve(root, pointer);
  }
  const head = read(join(gitDir, 'HEAD'));
  if (!head) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (\S+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const common = read(join(gitDir, 'commondir'));
  for (const dir of common ? [gitDir, resolve(gitDir, common)] : [gitDir]) {
    const loose = read(join(dir, ref));
    if (loose && COMMIT.test(loose)) return loose;
    const packed = read(join(dir, 'packed-refs'))
      ?.split('\n')
      .find((line) => line.endsWith(` ${ref}`))
      ?.split(' ')[0];
    if (packed && COMMIT.test(packed)) return packed;
  }
  return undefined;
}

/**
 * Version from package.json, Node's version, and the commit: `TERN_COMMIT` when set
 * (an image built without its .git directory passes it in), else the checkout's.
 */
export function buildInfo(root: string, env: NodeJS.ProcessEnv = process.env): BuildInfo {
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // An installation without its package.json still reports the rest.
  }
  const fromEnv = env.TERN_COMMIT?.trim();
  let commit = fromEnv ? fromEnv.slice(0, 64) : undefined;
  if (!commit) {
    try {
      commit = gitCommit(root);
    } catch {
      commit = undefined;
    }
  }
  return { version, nodeVersion: process.version, commit: commit ?? 'unknown' };
}
