/** The checkout a benchmark runs from: its root, the versions installed there, its commit. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root: the nearest folder above `start` that holds a package.json. */
export function findRepoRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${start}`);
    dir = parent;
  }
  return dir;
}

/** The installed version of `pkg`, from the repository's node_modules. */
export function versionOf(root: string, pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The commit the server was built from, and whether `paths` differed from it. */
export function revision(root: string, paths: readonly string[]): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = git('status', '--porcelain', '--', ...paths).length > 0;
    return `${git('rev-parse', '--short', 'HEAD')}${changed ? ` with uncommitted changes in ${paths.map((d) => `${d}/`).join(' or ')}` : ''}`;
  } catch {
    return 'unknown (no git)';
  }
}
