/**
 * The project's root folder (package.json, assets/, openapi.yaml), found from this module's
 * location so that it resolves the same from `src/`, from the compiled `dist/src/` and in the
 * container image (/app).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder above `start` holding `package.json` and `assets/`. */
export function findProjectRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'assets'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No folder above ${start} holds package.json and assets/`);
    dir = parent;
  }
}

/**
 * The server's version: package.json's `version`, so the release number has one owner.
 * Throws naming the file when it holds none.
 */
export function projectVersion(root = findProjectRoot()): string {
  const file = join(root, 'package.json');
  const { version } = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string' || version === '') throw new Error(`${file} has no \`version\``);
  return version;
}
