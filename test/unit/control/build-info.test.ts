import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildInfo } from '../../../src/control/build-info.js';
import { tempDir } from '../../helpers/temp-dir.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

function checkout(files: Record<string, string>): string {
  const root = tempDir('tern-build-');
  writeFileSync(join(root, 'package.json'), '{"version":"9.8.7"}');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe('buildInfo: version, Node version, commit', () => {
  it('reads the version from package.json and the commit of a branch checkout (loose ref)', () => {
    const root = checkout({ '.git/HEAD': 'ref: refs/heads/main\n', '.git/refs/heads/main': `${A}\n` });
    assert.deepEqual(buildInfo(root, {}), { version: '9.8.7', nodeVersion: process.version, commit: A });
  });

  it('finds a packed ref, and a detached HEAD', () => {
    const packed = checkout({ '.git/HEAD': 'ref: refs/heads/main\n', '.git/packed-refs': `# pack-refs with: peeled\n${B} refs/heads/other\n${A} refs/heads/main\n` });
    assert.equal(buildInfo(packed, {}).commit, A);
    assert.equal(buildInfo(checkout({ '.git/HEAD': `${B}\n` }), {}).commit, B);
  });

  it('follows a worktree\'s .git file to its directory and the common directory', () => {
    const root = checkout({
      '.git': 'gitdir: repo.git/worktrees/wt\n',
      'repo.git/worktrees/wt/HEAD': 'ref: refs/heads/wip\n',
      'repo.git/worktrees/wt/commondir': '../..\n',
      'repo.git/refs/heads/wip': `${B}\n`,
    });
    assert.equal(buildInfo(root, {}).commit, B);
  });

  it('takes TERN_COMMIT first (an image built without .git), and says unknown when there is nothing', () => {
    assert.equal(buildInfo(checkout({ '.git/HEAD': `${B}\n` }), { TERN_COMMIT: 'abc123' }).commit, 'abc123');
    assert.deepEqual(buildInfo(checkout({}), {}), { version: '9.8.7', nodeVersion: process.version, commit: 'unknown' });
  });
});
